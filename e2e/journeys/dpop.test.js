// DPoP (RFC 9449, issue #27) driven by an independent client library, panva's oauth4webapi,
// with the sign-in in a real browser. Gatehouse runs with server nonces required, so the
// library's nonce handling (use_dpop_nonce, DPoP-Nonce, retry) is exercised too. A public
// client registered with --require-dpop binds its authorization code ahead (dpop_jkt), runs
// the code flow with a proof, calls userinfo with `Authorization: DPoP` and a proof, and
// refreshes with a proof of the same key. The negative cases: the same tokens without the key
// (a plain bearer call, a refresh with another key) are refused.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';

const EMAIL = 'holder@example.com';
const PASSWORD = 'Lantern-quarry-mosaic-58!';

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
  gatehouse = await Gatehouse.start({
    settings: { GATEHOUSE_SIGNING_ALGORITHM: 'RS256', GATEHOUSE_OAUTH_DPOP_REQUIRE_NONCE: 'true' },
  });
  await gatehouse.cli('user', 'create', '--json', '--email', EMAIL, '--password', PASSWORD, '--verified');
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  relyingParty?.closeAllConnections();
  await new Promise((resolve) => relyingParty?.close(resolve) ?? resolve());
});

/** Runs `request` and processes its answer with `process`, once more after use_dpop_nonce. */
async function withNonceRetry(request, process) {
  try {
    return await process(await request());
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    return process(await request());
  }
}

test('oauth4webapi binds the code, the tokens and every call to its DPoP key', async () => {
  const shots = new Screenshots('dpop');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    const created = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'Agent', '--public', '--require-dpop',
        '--skip-consent', '--redirect-uri', REDIRECT_URI,
        '--scope', 'openid', '--scope', 'email', '--scope', 'offline_access',
      ),
    );
    const issuer = new URL(gatehouse.url);
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
    );
    assert.ok(as.dpop_signing_alg_values_supported.includes('ES256'), 'ES256 proofs are advertised');
    const client = { client_id: created.client_id };
    const clientAuth = oauth.None();
    const keyPair = await oauth.generateKeyPair('ES256');
    const DPoP = oauth.DPoP(client, keyPair);

    // The authorization request names the key its code will be bound to.
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authorize = new URL(as.authorization_endpoint);
    for (const [name, value] of Object.entries({
      client_id: client.client_id,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid email offline_access',
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      dpop_jkt: await DPoP.calculateThumbprint(),
    })) {
      authorize.searchParams.set(name, value);
    }
    await page.goto(authorize.href);
    await page.waitForURL(/\/login\?/);
    await page.getByLabel('Email or username').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${REDIRECT_URI}**`);
    assert.equal(callbacks.length, 1);
    const callback = oauth.validateAuthResponse(as, client, callbacks[0], state);

    // The exchange: the server first asks for its nonce; the library retries with it.
    const tokens = await withNonceRetry(
      () => oauth.authorizationCodeGrantRequest(
        as, client, clientAuth, callback, REDIRECT_URI, codeVerifier, { DPoP, ...insecure },
      ),
      (response) => oauth.processAuthorizationCodeResponse(as, client, response),
    );
    assert.equal(tokens.token_type, 'dpop');
    assert.ok(tokens.refresh_token);
    const sub = oauth.getValidatedIdTokenClaims(tokens).sub;

    // userinfo with Authorization: DPoP and a proof (ath) of the same key.
    const userinfo = await withNonceRetry(
      () => oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure }),
      (response) => oauth.processUserInfoResponse(as, client, sub, response),
    );
    assert.equal(userinfo.email, EMAIL);

    // The same token without the key: refused, with a DPoP challenge.
    const bearer = await fetch(as.userinfo_endpoint, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assert.equal(bearer.status, 401);
    assert.match(bearer.headers.get('www-authenticate'), /^DPoP /);

    // A refresh with another key is refused and does not spend the token; with the key, it
    // rotates and the new access token is bound again.
    const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    await assert.rejects(
      withNonceRetry(
        () => oauth.refreshTokenGrantRequest(
          as, client, clientAuth, tokens.refresh_token, { DPoP: thief, ...insecure },
        ),
        (response) => oauth.processRefreshTokenResponse(as, client, response),
      ),
      (error) => error.error === 'invalid_grant',
    );
    const refreshed = await withNonceRetry(
      () => oauth.refreshTokenGrantRequest(
        as, client, clientAuth, tokens.refresh_token, { DPoP, ...insecure },
      ),
      (response) => oauth.processRefreshTokenResponse(as, client, response),
    );
    assert.equal(refreshed.token_type, 'dpop');
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    const again = await withNonceRetry(
      () => oauth.userInfoRequest(as, client, refreshed.access_token, { DPoP, ...insecure }),
      (response) => oauth.processUserInfoResponse(as, client, sub, response),
    );
    assert.equal(again.email, EMAIL);

    // A token request without a proof: this client requires DPoP.
    const plain = await oauth.refreshTokenGrantRequest(
      as, client, clientAuth, refreshed.refresh_token, insecure,
    );
    assert.equal(plain.status, 400);
    assert.equal((await plain.json()).error, 'invalid_dpop_proof');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
});
