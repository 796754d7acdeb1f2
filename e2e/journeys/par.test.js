// Pushed authorization requests (RFC 9126, issue #27) driven by an independent client library,
// panva's oauth4webapi, with the sign-in in a real browser: discovery advertises the PAR
// endpoint; the relying party pushes its request (client_secret_basic, PKCE, state, nonce),
// sends the browser to /oauth2/authorize with only client_id and request_uri, the person signs
// in on the hosted page, and oauth4webapi validates the callback (state, iss) and the code
// exchange (ID token: signature, nonce, at_hash). The client is registered with
// --require-par: its plain authorization request is an error page, and the request_uri,
// once used, starts no second authorization.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';

const EMAIL = 'pushing@example.com';
const PASSWORD = 'Granite-harbour-sextant-42!';

let gatehouse;
let browser;
let relyingParty;
let REDIRECT_URI;
const callbacks = [];
// Plain http on loopback: the library refuses it unless told.
const insecure = { [oauth.allowInsecureRequests]: true };

before(async () => {
  relyingParty = http.createServer((request, response) => {
    const url = new URL(request.url, REDIRECT_URI);
    if (url.pathname === '/callback') callbacks.push(url);
    response.writeHead(200, { 'content-type': 'text/plain' }).end('relying party');
  });
  await new Promise((resolve) => relyingParty.listen(0, '127.0.0.1', resolve));
  REDIRECT_URI = `http://127.0.0.1:${relyingParty.address().port}/callback`;
  gatehouse = await Gatehouse.start({ settings: { GATEHOUSE_SIGNING_ALGORITHM: 'RS256' } });
  await gatehouse.cli('user', 'create', '--json', '--email', EMAIL, '--password', PASSWORD, '--verified');
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  relyingParty?.closeAllConnections();
  await new Promise((resolve) => relyingParty?.close(resolve) ?? resolve());
});

test('oauth4webapi pushes its request, the browser signs in with only the request_uri, the code flow completes once', async () => {
  const shots = new Screenshots('par');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    const created = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'Pushing application', '--require-par',
        '--skip-consent', '--redirect-uri', REDIRECT_URI, '--scope', 'openid', '--scope', 'email',
      ),
    );
    const issuer = new URL(gatehouse.url);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
    );
    assert.equal(as.pushed_authorization_request_endpoint, `${gatehouse.url}/oauth2/par`);
    assert.equal(as.require_pushed_authorization_requests, false, 'not for every client');
    const client = { client_id: created.client_id };
    const clientAuth = oauth.ClientSecretBasic(created.client_secret);

    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    // The library sends what it is given (and the client_id): the request is a code flow.
    const parameters = new URLSearchParams({
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid email',
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const pushed = await oauth.processPushedAuthorizationResponse(
      as,
      client,
      await oauth.pushedAuthorizationRequest(as, client, clientAuth, parameters, insecure),
    );
    assert.match(pushed.request_uri, /^urn:ietf:params:oauth:request_uri:/);
    assert.equal(pushed.expires_in, 60);

    // Only client_id and request_uri travel through the browser.
    const authorize = new URL(as.authorization_endpoint);
    authorize.searchParams.set('client_id', client.client_id);
    authorize.searchParams.set('request_uri', pushed.request_uri);
    await page.goto(authorize.href);
    await page.waitForURL(/\/login\?/);
    await page.getByLabel('Email or username').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${REDIRECT_URI}**`);
    assert.equal(callbacks.length, 1, 'the browser came back to the relying party once');

    const callback = oauth.validateAuthResponse(as, client, callbacks[0], state);
    const answer = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as, client, clientAuth, callback, REDIRECT_URI, codeVerifier, insecure,
      ),
      { expectedNonce: nonce, requireIdToken: true },
    );
    const claims = oauth.getValidatedIdTokenClaims(answer);
    assert.equal(claims.iss, gatehouse.url);
    assert.equal(claims.aud, client.client_id);
    assert.equal(claims.email, EMAIL);

    // The request_uri is spent: a second authorization with it is an error page.
    const again = await page.goto(authorize.href);
    assert.equal(again.status(), 400);
    await page.getByText('request_uri', { exact: false }).first().waitFor();
    // This client must push: its plain request is refused, never redirected.
    const plain = new URL(as.authorization_endpoint);
    for (const [name, value] of parameters) plain.searchParams.set(name, value);
    plain.searchParams.set('client_id', client.client_id);
    const refused = await page.goto(plain.href);
    assert.equal(refused.status(), 400);
    assert.equal(new URL(page.url()).origin, gatehouse.url);
    assert.equal(callbacks.length, 1, 'no second visit to the relying party');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
});
