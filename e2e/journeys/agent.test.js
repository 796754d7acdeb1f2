// The MCP authorization profile end to end (issue #27), the agent driven by an independent
// client library, panva's oauth4webapi, and the resource served by
// crates/gatehouse-verify/examples/mcp_resource_server.rs. The agent calls the MCP endpoint
// with no token, follows its 401 to the protected-resource metadata (RFC 9728) and from there
// to Gatehouse, registers itself (dynamic client registration, open mode: a public client),
// asks the person's consent in a real browser, runs the code flow with PKCE for that resource
// (RFC 8707) and calls the tools with its audience-bound token, then with a DPoP-bound one
// and a proof per call. Refused by the resource: a
// token for Gatehouse itself (another audience), and a DPoP-bound token presented as a bearer
// token. A refresh for a resource that was not granted is refused by Gatehouse; the
// registration is then read and deleted with the registration access token (RFC 7592).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse, freePort } from '../support/gatehouse.js';

const EMAIL = 'operator@example.com';
const PASSWORD = 'Harbour-lantern-quill-71!';
const mcpBinary = process.env.MCP_RESOURCE_SERVER_BINARY
  ?? path.resolve(import.meta.dirname, '..', '..', 'target', 'debug', 'examples', 'mcp_resource_server');
let TOOLS;
let mcp;

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
  TOOLS = `http://127.0.0.1:${await freePort()}/mcp`;
  await gatehouse.cli(
    'resource-server', 'create', '--json', '--identifier', TOOLS, '--name', 'Tools',
    '--scope', 'tools:call',
  );
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_')),
  );
  mcp = spawn(mcpBinary, [], {
    env: { ...env, ISSUER_URL: gatehouse.url, RESOURCE_URL: TOOLS },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    mcp.on('exit', (code) => reject(new Error(`the MCP example exited (${code})`)));
    mcp.stdout.on('data', (chunk) => { if (String(chunk).includes('MCP resource')) resolve(); });
  });
  browser = await launch();
});

after(async () => {
  mcp?.kill();
  await browser?.close();
  await gatehouse?.stop();
  agent?.closeAllConnections();
  await new Promise((resolve) => agent?.close(resolve) ?? resolve());
});

/** The claims of a JWT (the agent reads what it was given; verification is the API's). */
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

/** A JSON-RPC call to the MCP endpoint with `authorization` (if any). */
function callTools(method, authorization, params = {}) {
  return fetch(TOOLS, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
}

test('the MCP profile: an agent finds Gatehouse from the resource, registers itself and calls the tools with an audience-bound token', async () => {
  const shots = new Screenshots('agent');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    // The resource says where its tokens come from (RFC 9728).
    const challenge = await callTools('tools/list');
    assert.equal(challenge.status, 401);
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge.headers.get('www-authenticate'))?.[1];
    assert.ok(metadataUrl, challenge.headers.get('www-authenticate'));
    const resource = await (await fetch(metadataUrl)).json();
    assert.equal(resource.resource, TOOLS);
    assert.deepEqual(resource.scopes_supported, ['tools:call']);
    const issuer = new URL(resource.authorization_servers[0]);
    assert.equal(issuer.href.replace(/\/$/, ''), gatehouse.url);
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
        { additionalParameters: { resource: TOOLS }, ...insecure },
      ),
    );
    const access = claims(tokens.access_token);
    assert.equal(access.aud, TOOLS, 'the token is for the tools resource only');
    assert.equal(access.scope, 'tools:call');

    // The tools answer it.
    const listed = await callTools('tools/list', `Bearer ${tokens.access_token}`);
    assert.equal(listed.status, 200);
    assert.equal((await listed.json()).result.tools[0].name, 'echo');
    const called = await callTools('tools/call', `Bearer ${tokens.access_token}`,
      { name: 'echo', arguments: { text: 'hello' } });
    assert.equal((await called.json()).result.content[0].text, `hello (for ${access.sub})`);

    // A token for Gatehouse itself is for another audience: refused by the resource.
    const signedIn = await fetch(`${gatehouse.url}/v1/auth/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    });
    const firstParty = (await signedIn.json()).access_token;
    assert.equal((await callTools('tools/list', `Bearer ${firstParty}`)).status, 401);

    // With DPoP, the refreshed token is bound to the agent's key: the resource takes it with
    // a proof of that key per call, and refuses it as a bearer token (no proof).
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const bound = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(
        as, client, oauth.None(), tokens.refresh_token,
        { DPoP, additionalParameters: { resource: TOOLS }, ...insecure },
      ),
    );
    assert.equal(bound.token_type, 'dpop');
    assert.equal(claims(bound.access_token).cnf.jkt, await DPoP.calculateThumbprint());
    assert.equal((await callTools('tools/list', `Bearer ${bound.access_token}`)).status, 401);
    const proven = await oauth.protectedResourceRequest(
      bound.access_token, 'POST', new URL(TOOLS),
      new Headers({ 'content-type': 'application/json' }),
      JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
      { DPoP, ...insecure },
    );
    assert.equal(proven.status, 200);
    assert.equal((await proven.json()).result.tools[0].name, 'echo');

    // A refresh for a resource that was not granted is refused.
    const refused = await oauth.refreshTokenGrantRequest(
      as, client, oauth.None(), bound.refresh_token,
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
