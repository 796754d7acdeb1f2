// Sign-in through an upstream OpenID provider in a real browser (issue #23): the upstream is a
// second Gatehouse (its own data, its own hosted /login), published on 127.0.0.1 while this
// server is published on localhost (cookies ignore ports: one host name each). This server has
// the upstream as provider `corp` ("Corp SSO") in its TOML configuration file.
// 1. /login → "Continue with Corp SSO" → the upstream's /login → back signed in on /account,
//    the identity listed under "Linked accounts".
// 2. A third application's authorization-code flow (PKCE) on this server, from a fresh browser
//    context: /login → "Continue with Corp SSO" → the upstream's /login → this server's
//    consent → the relying party with a code; the ID token names the same user, amr with fed.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse, freePort } from '../support/gatehouse.js';

const EMAIL = 'ada@corp.example';
const PASSWORD = 'Granite-harbour-sextant-42!';
const CLIENT_ID = 'gatehouse-downstream';
const CLIENT_SECRET = randomBytes(24).toString('hex');

let upstream;
let gatehouse;
let browser;
let adminKey;
// Journey 1's user on this server (the ID token's `sub` in journey 2).
let userId;
// The third application's redirect URI: a local server that records what the browser brings.
let relyingParty;
let REDIRECT_URI;
const callbacks = [];

before(async () => {
  relyingParty = http.createServer((request, response) => {
    const url = new URL(request.url, REDIRECT_URI);
    // Only the redirect URI counts (the browser also asks this origin for its favicon).
    if (url.pathname === '/callback') callbacks.push(url);
    response.writeHead(200, { 'content-type': 'text/plain' }).end('relying party');
  });
  await new Promise((resolve) => relyingParty.listen(0, '127.0.0.1', resolve));
  REDIRECT_URI = `http://127.0.0.1:${relyingParty.address().port}/callback`;

  // This server's port first: the upstream registers its callback before it starts.
  const port = await freePort();
  // The provider's ID tokens are checked for RS256, the OpenID default.
  upstream = await Gatehouse.start({
    issuerHost: '127.0.0.1',
    settings: { GATEHOUSE_SIGNING_ALGORITHM: 'RS256' },
  });
  await upstream.cli('user', 'create', '--json', '--email', EMAIL, '--password', PASSWORD, '--first-name', 'Ada', '--verified');
  await upstream.cli(
    'client', 'create', '--json', '--name', 'Gatehouse downstream',
    '--client-id', CLIENT_ID, '--secret', CLIENT_SECRET,
    '--redirect-uri', `http://localhost:${port}/sso/corp/callback`, '--skip-consent',
    '--scope', 'openid', '--scope', 'email', '--scope', 'profile',
  );
  gatehouse = await Gatehouse.start({
    port,
    configFile: [
      '[[identity_providers]]',
      'id = "corp"',
      'kind = "oidc"',
      'name = "Corp SSO"',
      `issuer = "${upstream.url}"`,
      `client_id = "${CLIENT_ID}"`,
      `client_secret = "${CLIENT_SECRET}"`,
      'trust_email_verified = true',
      '',
    ].join('\n'),
  });
  adminKey = JSON.parse(await gatehouse.cli('admin-key', 'create', '--json', '--name', 'e2e')).key;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  await upstream?.stop();
  relyingParty?.closeAllConnections();
  await new Promise((resolve) => (relyingParty ? relyingParty.close(resolve) : resolve()));
});

function base64url(bytes) {
  return Buffer.from(bytes).toString('base64url');
}

function logs() {
  return `\n--- gatehouse log ---\n${gatehouse?.log()}\n--- upstream log ---\n${upstream?.log()}`;
}

/** The users of this server with `email`, through the admin API. */
async function usersNamed(email) {
  const response = await fetch(new URL(`/v1/admin/users?email=${encodeURIComponent(email)}`, gatehouse.url), {
    headers: { authorization: `Bearer ${adminKey}` },
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.data;
}

/** On this server's /login: the provider's button, then the upstream's own sign-in form. */
async function continueWithCorp(page, shots, prefix) {
  const button = page.getByRole('link', { name: 'Continue with Corp SSO' });
  await button.waitFor();
  assert.match(await button.getAttribute('href'), /^\/sso\/corp\?return_to=/);
  await shots.take(page, `${prefix}-login`);
  await button.click();
  // The upstream's authorize sends the browser to its own /login.
  await page.waitForURL(`${upstream.url}/login?**`);
  await shots.take(page, `${prefix}-upstream-login`);
  await page.getByLabel('Email or username').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

test('on /login, continue with the upstream provider, sign in there, land on /account with the identity linked', async () => {
  const shots = new Screenshots('sso');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    await page.goto('/account');
    await page.waitForURL(/\/login\?/);
    await continueWithCorp(page, shots, 'account');
    await page.waitForURL(`${gatehouse.url}/account`);
    await page.getByText(`Signed in as ${EMAIL}.`).waitFor();
    await page.getByRole('heading', { name: 'Linked accounts' }).waitFor();
    const linked = page.locator('ul.linked-accounts li');
    assert.equal(await linked.count(), 1);
    const identity = await linked.first().innerText();
    assert.ok(identity.includes('Corp SSO') && identity.includes(EMAIL), identity);
    // Linked already: no button to link it again.
    assert.equal(await page.getByRole('link', { name: 'Link Corp SSO' }).count(), 0);
    await shots.take(page, 'account');

    // A new account here, its address verified by the trusted provider.
    const users = await usersNamed(EMAIL);
    assert.equal(users.length, 1, JSON.stringify(users));
    assert.equal(users[0].email_verified, true);
    userId = users[0].id;
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += logs();
    throw error;
  } finally {
    await context.close();
  }
});

test('inside a third application\'s OIDC code flow, continue with the upstream provider: the same user, amr fed', async () => {
  assert.ok(userId, 'the first journey signed the user in');
  const shots = new Screenshots('sso-oidc');
  // A fresh context: signed in neither here nor upstream.
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    // Not first-party: this server asks for consent.
    const created = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'Third application', '--public',
        '--redirect-uri', REDIRECT_URI,
        '--scope', 'openid', '--scope', 'email', '--scope', 'profile',
      ),
    );
    const verifier = base64url(randomBytes(32));
    const challenge = base64url(createHash('sha256').update(verifier).digest());
    const state = base64url(randomBytes(16));
    const nonce = base64url(randomBytes(16));
    const authorize = new URL('/oauth2/authorize', gatehouse.url);
    for (const [name, value] of Object.entries({
      response_type: 'code',
      client_id: created.client_id,
      redirect_uri: REDIRECT_URI,
      scope: 'openid email profile',
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    })) {
      authorize.searchParams.set(name, value);
    }
    await page.goto(authorize.href);
    await page.waitForURL(/\/login\?/);
    await continueWithCorp(page, shots, 'oidc');

    // Back through this server's authorize: the consent page for the third application.
    await page.getByRole('heading', { name: 'Third application wants to access your account' }).waitFor();
    assert.equal(new URL(page.url()).origin, gatehouse.url);
    await page.getByText(`Signed in as ${EMAIL}.`).waitFor();
    await shots.take(page, 'oidc-consent');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${REDIRECT_URI}**`);
    // The journey's own stand-in relying party (text/plain), not a Gatehouse page: shot only.
    await shots.take(page, 'oidc-relying-party', { check: false });
    assert.equal(callbacks.length, 1, 'the browser came back to the relying party once');
    const callback = callbacks[0];
    assert.equal(callback.searchParams.get('state'), state);
    assert.equal(callback.searchParams.get('iss'), gatehouse.url);
    const code = callback.searchParams.get('code');
    assert.ok(code, `no code in ${callback}`);

    const token = await fetch(new URL('/oauth2/token', gatehouse.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        client_id: created.client_id,
        code_verifier: verifier,
      }),
    });
    const tokens = await token.json();
    assert.equal(token.status, 200, JSON.stringify(tokens));
    assert.ok(tokens.access_token && tokens.id_token, JSON.stringify(tokens));
    const claims = JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url').toString());
    assert.equal(claims.iss, gatehouse.url);
    assert.equal(claims.aud, created.client_id);
    assert.equal(claims.nonce, nonce);
    assert.equal(claims.sub, userId, 'the user of the first journey, found by the identity');
    assert.ok(Array.isArray(claims.amr) && claims.amr.includes('fed'), `amr ${claims.amr}`);
    // Still one account for the address.
    assert.equal((await usersNamed(EMAIL)).length, 1);
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += logs();
    throw error;
  } finally {
    await context.close();
  }
});
