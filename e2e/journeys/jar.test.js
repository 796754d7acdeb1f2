// Signed request objects (JAR, RFC 9101, issue #27) made by an independent client library,
// panva's oauth4webapi (issueRequestObject), for a client that authenticates with
// private_key_jwt: pushed inside a PAR request, then sent by value to /oauth2/authorize,
// with the sign-in in a real browser. Only the object's parameters count; an object signed
// by another key is refused with invalid_request_object.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';

const EMAIL = 'signer@example.com';
const PASSWORD = 'Meadow-cipher-trellis-63!';

let gatehouse;
let browser;
let relyingParty;
let REDIRECT_URI;
const callbacks = [];
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

/** An ES256 key pair and its public JWK (kid `k1`). */
async function signingKey(kid) {
  const { privateKey, publicKey } = await oauth.generateKeyPair('ES256');
  const jwk = { ...(await crypto.subtle.exportKey('jwk', publicKey)), kid, alg: 'ES256', use: 'sig' };
  delete jwk.key_ops;
  delete jwk.ext;
  return { key: { key: privateKey, kid }, jwk };
}

test('oauth4webapi request objects, pushed and by value, are the only parameters that count', async () => {
  const shots = new Screenshots('jar');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    const { key, jwk } = await signingKey('k1');
    const jwksFile = path.join(gatehouse.directory, 'client-jwks.json');
    await writeFile(jwksFile, JSON.stringify({ keys: [jwk] }));
    const created = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'Signing application', '--jwks-file', jwksFile,
        '--skip-consent', '--redirect-uri', REDIRECT_URI, '--scope', 'openid', '--scope', 'email',
      ),
    );
    const issuer = new URL(gatehouse.url);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
    );
    assert.equal(as.request_parameter_supported, true);
    assert.ok(as.request_object_signing_alg_values_supported.includes('ES256'));
    const client = { client_id: created.client_id };
    const clientAuth = oauth.PrivateKeyJwt(key);

    const flow = async (send) => {
      const codeVerifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const nonce = oauth.generateRandomNonce();
      const requestObject = await oauth.issueRequestObject(as, client, new URLSearchParams({
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope: 'openid email',
        code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      }), key);
      const before = callbacks.length;
      await send(requestObject);
      await page.waitForURL(/\/login\?|\/callback\?/);
      if (page.url().includes('/login?')) {
        await page.getByLabel('Email or username').fill(EMAIL);
        await page.getByLabel('Password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        await page.waitForURL(`${REDIRECT_URI}**`);
      }
      assert.equal(callbacks.length, before + 1);
      const callback = oauth.validateAuthResponse(as, client, callbacks.at(-1), state);
      const answer = await oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as, client, clientAuth, callback, REDIRECT_URI, codeVerifier, insecure,
        ),
        { expectedNonce: nonce, requireIdToken: true },
      );
      assert.equal(oauth.getValidatedIdTokenClaims(answer).email, EMAIL);
    };

    // Pushed: the object travels over the back channel, the browser carries a request_uri.
    await flow(async (requestObject) => {
      const pushed = await oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(
          as, client, clientAuth, new URLSearchParams({ request: requestObject }), insecure,
        ),
      );
      const authorize = new URL(as.authorization_endpoint);
      authorize.searchParams.set('client_id', client.client_id);
      authorize.searchParams.set('request_uri', pushed.request_uri);
      await page.goto(authorize.href);
    });

    // By value: a state beside the object does not count (the library checks the object's).
    await flow(async (requestObject) => {
      const authorize = new URL(as.authorization_endpoint);
      authorize.searchParams.set('client_id', client.client_id);
      authorize.searchParams.set('response_type', 'code');
      authorize.searchParams.set('request', requestObject);
      authorize.searchParams.set('state', 'not-the-real-state');
      await page.goto(authorize.href);
    });

    // Another key's object: refused at the push.
    const { key: stranger } = await signingKey('k1');
    const forged = await oauth.issueRequestObject(as, client, new URLSearchParams({
      response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'openid',
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
      code_challenge_method: 'S256',
    }), stranger);
    const refused = await oauth.pushedAuthorizationRequest(
      as, client, clientAuth, new URLSearchParams({ request: forged }), insecure,
    );
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).error, 'invalid_request_object');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
});
