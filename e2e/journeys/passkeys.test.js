// Passkeys in a real browser with the DevTools virtual authenticator: add one on /account
// after a password sign-up, sign out, sign in on /login with the passkey and no username (the
// button); the same passkey sign-in inside an OIDC authorization-code flow (the code exchanged
// at the token endpoint); and the autofill (conditional UI) sign-in on a fresh page.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';
import { SmtpSink } from '../support/smtp.js';
import { addVirtualAuthenticator, withoutAutofill } from '../support/webauthn.js';

const EMAIL = 'grace@example.com';
const PASSWORD = 'Velvet-orbit-lantern-27?';

let smtp;
let gatehouse;
let browser;
// The relying party's redirect URI: a local server that records what the browser brings back.
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
  smtp = await SmtpSink.start();
  gatehouse = await Gatehouse.start({ smtp });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  await smtp?.stop();
  relyingParty?.closeAllConnections();
  await new Promise((resolve) => (relyingParty ? relyingParty.close(resolve) : resolve()));
});

function base64url(bytes) {
  return Buffer.from(bytes).toString('base64url');
}

async function signOut(page) {
  await page.goto('/account');
  const signedOut = page.waitForResponse(
    (response) => response.request().method() === 'POST' && new URL(response.url()).pathname === '/logout',
  );
  await page.getByRole('button', { name: 'Sign out' }).last().click();
  await signedOut;
  await page.goto('/account');
  await page.waitForURL(/\/login/);
}

test('add a passkey on /account, sign in with it without a username, and inside an OIDC code flow', async () => {
  const shots = new Screenshots('passkeys');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  await withoutAutofill(page);
  const authenticator = await addVirtualAuthenticator(context, page);
  try {
    // A password account, signed in at once (no verification required here).
    await page.goto('/signup');
    await page.getByLabel('Email address').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create the account' }).click();
    await page.waitForURL(`${gatehouse.url}/account`);
    // A password sign-in without a passkey is offered one.
    await page.getByText('Sign in faster next time').waitFor();
    await shots.take(page, 'account-offer');

    await page.getByLabel('Name of the new passkey (optional)').fill('Laptop');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.waitForURL(/\/account#passkeys$/);
    const item = page.locator('ul.passkeys li');
    await item.first().waitFor();
    assert.equal(await item.count(), 1);
    assert.match(await item.first().innerText(), /Laptop/);
    assert.match(await item.first().innerText(), /never used/);
    assert.equal((await authenticator.credentials()).length, 1, 'a resident credential');
    await shots.take(page, 'account-passkeys');
    await smtp.waitFor(EMAIL, 'passkey');

    // Sign out, then sign in with the passkey alone: no username typed.
    await signOut(page);
    await page.goto('/login');
    const button = page.getByRole('button', { name: 'Sign in with a passkey' });
    await button.waitFor();
    assert.equal(
      await page.getByLabel('Email or username').getAttribute('autocomplete'),
      'username webauthn',
    );
    await shots.take(page, 'login-passkey');
    await button.click();
    await page.waitForURL(`${gatehouse.url}/account`);
    await page.getByText(`Signed in as ${EMAIL}.`).waitFor();
    assert.match(await page.locator('ul.passkeys li').first().innerText(), /last used/);
    await shots.take(page, 'account-after-passkey');

    // The OIDC authorization-code flow (public client, PKCE) with a passkey sign-in.
    await signOut(page);
    const created = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'e2e relying party', '--public',
        '--redirect-uri', REDIRECT_URI, '--skip-consent',
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
    await shots.take(page, 'oidc-login');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${REDIRECT_URI}**`);
    assert.equal(callbacks.length, 1, 'the browser came back to the relying party once');
    const callback = callbacks[0];
    assert.equal(callback.searchParams.get('state'), state);
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
    assert.equal(claims.nonce, nonce);
    assert.ok(claims.amr.includes('mfa'), `amr ${claims.amr}`);
    assert.ok(claims.amr.includes('hwk') || claims.amr.includes('swk'), `amr ${claims.amr}`);
    const userinfo = await fetch(new URL('/oauth2/userinfo', gatehouse.url), {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assert.equal((await userinfo.json()).email, EMAIL);

    // Autofill: a page where conditional mediation is available signs in from the username
    // field's passkey suggestion, which the virtual authenticator accepts at once.
    await signOut(page);
    const autofill = await context.newPage();
    await addVirtualAuthenticator(context, autofill, await authenticator.credentials());
    await autofill.goto('/login');
    await autofill.waitForURL(`${gatehouse.url}/account`);
    await autofill.getByText(`Signed in as ${EMAIL}.`).waitFor();
    await autofill.close();
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
  }
});

test('sign up with an email then a passkey (no password), then sign in with it', async () => {
  const email = 'hopper@example.com';
  const shots = new Screenshots('passkey-signup');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  await withoutAutofill(page);
  const authenticator = await addVirtualAuthenticator(context, page);
  try {
    await page.goto('/signup');
    await page.getByLabel('Email address').fill(email);
    await shots.take(page, 'signup');
    await page.getByRole('button', { name: 'Sign up with a passkey instead (no password)' }).click();
    await page.waitForURL(`${gatehouse.url}/account`);
    await page.getByText(`Signed in as ${email}.`).waitFor();
    assert.equal(await page.locator('ul.passkeys li').count(), 1);
    assert.equal((await authenticator.credentials()).length, 1);
    await shots.take(page, 'account');

    await signOut(page);
    await page.goto('/login');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${gatehouse.url}/account`);
    await page.getByText(`Signed in as ${email}.`).waitFor();
    // The account's only way to sign in cannot be removed.
    await page.getByRole('button', { name: 'Remove' }).click();
    await page.getByText('This is the last way to sign in').waitFor();
    assert.equal(await page.locator('ul.passkeys li').count(), 1);
    await shots.take(page, 'last-method');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
  }
});
