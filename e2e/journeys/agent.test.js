// An MCP-style agent (issue #27) driven by an independent client library, panva's
// oauth4webapi: it discovers Gatehouse, registers itself (dynamic client registration, open
// mode: a public client), asks the person's consent in a real browser, and runs the code flow
// with PKCE for one resource (RFC 8707) with DPoP, so its access token is audience-bound and
// sender-constrained. The registration is then read and deleted with the registration access
// token (RFC 7592); a token for a resource that was not granted is refused.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';

const EMAIL = 'operator@example.com';
const PASSWORD = 'Harbour-lantern-quill-71!';
const TOOLS = 'https://mcp.example.com/mcp';

let gatehouse;
let browser;
let agent;
let REDIRECT_URI;
const callbacks = [];
const insecure = { [oauth.allowInsecureRequests]: true };

before(async () => {
  agent = http.createServer((request, response) => {
    const url = new URL(request.url, REDIRECT_URI);
    if (url.pathname === '/callback') callbacks.push(url);
    response.writeHead(200, { 'content-type': 'text/plain' }).end('agent');
  });
  await new Promise((resolve) => agent.listen(0, '127.0.0.1', resolve));
  REDIRECT_URI = `http://127.0.0.1:${agent.address().port}/callback`;
  gatehouse = await Gatehouse.start({
    settings: { GATEHOUSE_SIGNING_ALGORITHM: 'RS256', GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION: 'open' },
  });
  await gatehouse.cli('user', 'create', '--json', '--email', EMAIL, '--password', PASSWORD, '--verified');
  await gatehouse.cli(
    'resource-server', 'create', '--json', '--identifier', TOOLS, '--name', 'Tools',
    '--scope', 'tools:call',
  );
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  agent?.closeAllConnections();
  await new Promise((resolve) => agent?.close(resolve) ?? resolve());
});

/** The claims of a JWT (the agent reads what it was given; verification is the API's). */
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

test('an agent registers itself and gets a DPoP-bound token for one resource', async () => {
  const shots = new Screenshots('agent');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    const issuer = new URL(gatehouse.url);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    );
    assert.equal(as.registration_endpoint, `${gatehouse.url}/oauth2/register`);

    const registered = await oauth.processDynamicClientRegistrationResponse(
      await oauth.dynamicClientRegistrationRequest(as, {
        client_name: 'Agent',
        redirect_uris: [REDIRECT_URI],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        scope: 'tools:call offline_access',
      }, insecure),
    );
    assert.equal(registered.client_secret, undefined, 'a public client');
    const client = { client_id: registered.client_id };
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));

    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authorize = new URL(as.authorization_endpoint);
    for (const [name, value] of Object.entries({
      client_id: client.client_id,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'tools:call offline_access',
      resource: TOOLS,
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
    })) {
      authorize.searchParams.set(name, value);
    }
    await page.goto(authorize.href);
    await page.waitForURL(/\/login\?/);
    await page.getByLabel('Email or username').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    // A client that registered itself is never trusted to skip the person's consent.
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${REDIRECT_URI}**`);
    const callback = oauth.validateAuthResponse(as, client, callbacks.at(-1), state);

    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as, client, oauth.None(), callback, REDIRECT_URI, codeVerifier,
        { DPoP, additionalParameters: { resource: TOOLS }, ...insecure },
      ),
    );
    assert.equal(tokens.token_type, 'dpop');
    const access = claims(tokens.access_token);
    assert.equal(access.aud, TOOLS, 'the token is for the tools resource only');
    assert.equal(access.scope, 'tools:call');
    assert.equal(access.cnf.jkt, await DPoP.calculateThumbprint());

    // A refresh for a resource that was not granted is refused.
    const refused = await oauth.refreshTokenGrantRequest(
      as, client, oauth.None(), tokens.refresh_token,
      { DPoP, additionalParameters: { resource: 'https://other.example.com/' }, ...insecure },
    );
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).error, 'invalid_target');

    // The agent manages its registration with its registration access token.
    const manage = (method) => fetch(registered.registration_client_uri, {
      method,
      headers: { authorization: `Bearer ${registered.registration_access_token}` },
    });
    const read = await manage('GET');
    assert.equal(read.status, 200);
    assert.equal((await read.json()).client_name, 'Agent');
    assert.equal((await manage('DELETE')).status, 204);
    assert.equal((await manage('GET')).status, 401);
  } catch (error) {
    await shots.failure(page).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
});
