// The hosted pages the other journeys do not reach, each through the UI a person would use, so
// every one of them gets the page checks (`support/a11y.js`: axe-core, nothing wider than a
// 375 px screen) and its two screenshots:
// 1. forgot password → the emailed reset link → a new password; a refused sign-in; an
//    authenticator app set up from /account (QR code, then backup codes) and codes by email;
//    an invitation to an organization; consent with an organization to pick; the organization
//    chooser; the device flow (enter, confirm, approved); an authorization request that cannot
//    go back (unknown client); an error page; sign-out confirmation; the second step of a
//    sign-in with a code sent by email; the profile (saved) and "Your data"; RP-initiated
//    logout's confirmation and "signed out".
//    The account's address is long (58 characters, nowhere to break a line): it must wrap,
//    not push the page sideways.
// 2. The same kind of pages in French (longer words), with the error and rule messages shown;
//    an account signed up there, then deleted from "Vos données".
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';
import { SmtpSink } from '../support/smtp.js';

const EMAIL = 'maximiliane.vonhohenzollernsigmaringen@accounts.example.org';
const PASSWORD = 'Juniper-lattice-morning-63!';
const NEW_PASSWORD = 'Harbour-quill-sundial-58?';
const OWNER = 'owner@example.com';
const OWNER_PASSWORD = 'Orchid-pylon-marmalade-19!';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

let smtp;
let gatehouse;
let browser;
let adminKey;

before(async () => {
  smtp = await SmtpSink.start();
  gatehouse = await Gatehouse.start({ smtp });
  adminKey = JSON.parse(await gatehouse.cli('admin-key', 'create', '--json', '--name', 'e2e')).key;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  await smtp?.stop();
});

/** `fetch` on the server, JSON in and out, failing on an unexpected status. */
async function api(method, path, { token = adminKey, body, status = [200, 201] } = {}) {
  const response = await fetch(new URL(path, gatehouse.url), {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  assert.ok([status].flat().includes(response.status), `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** RFC 6238 with the server's parameters (SHA-1, 6 digits, 30 s) from the base32 secret. */
function totp(secret) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const character of secret.replace(/[\s=]/g, '').toUpperCase()) {
    bits += alphabet.indexOf(character).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const digest = createHmac('sha1', key).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  return String((digest.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

/** The six-digit code of the first "verification code" message to `address` after `count`. */
async function emailedCode(address, count) {
  const message = await smtp.waitFor(address, 'verification code', 20_000, { after: count });
  const code = message.subject().match(/\b(\d{6})\b/);
  assert.ok(code, message.subject());
  return code[1];
}

/** An authorization request of `client_id` (PKCE), as a URL on the server. */
function authorizeUrl(clientId, scope) {
  const authorize = new URL('/oauth2/authorize', gatehouse.url);
  for (const [name, value] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    scope,
    state: 'tour',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWpd9b7i9uBXM',
    code_challenge_method: 'S256',
  })) {
    authorize.searchParams.set(name, value);
  }
  return authorize.href;
}

async function signIn(page, email, password) {
  await page.goto('/login');
  await page.getByLabel('Email or username').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

test('every other hosted page, in English, for an account with a long address', async () => {
  const shots = new Screenshots('pages');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    const user = JSON.parse(
      await gatehouse.cli('user', 'create', '--json', '--email', EMAIL, '--password', PASSWORD, '--first-name', 'Maximiliane', '--verified'),
    );
    const owner = JSON.parse(
      await gatehouse.cli('user', 'create', '--json', '--email', OWNER, '--password', OWNER_PASSWORD, '--verified'),
    );

    // Forgot password → the emailed link → a new password.
    await page.goto('/login');
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.waitForURL(/\/forgot-password/);
    await shots.take(page, 'forgot-password');
    await page.getByLabel('Email address').fill(EMAIL);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await page.getByText('a link to reset its password is on its way').waitFor();
    await shots.take(page, 'forgot-password-sent');
    const reset = await smtp.waitFor(EMAIL, 'Reset your');
    const link = reset.linkFor('/reset-password');
    assert.ok(link, reset.text());
    await page.goto(link);
    await shots.take(page, 'reset-password');
    await page.getByLabel('New password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await page.getByText('Your password was changed').waitFor();
    await shots.take(page, 'reset-password-done');

    // A refused sign-in, then the right one.
    await signIn(page, EMAIL, PASSWORD);
    await page.getByText('The email, username or password is not correct.').waitFor();
    await shots.take(page, 'login-refused');
    await page.getByLabel('Password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${gatehouse.url}/account`);
    await page.getByText(`Signed in as ${EMAIL}.`).waitFor();

    // An authenticator app: the QR code and key, the code, the backup codes.
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
    await shots.take(page, 'mfa-enrol');
    const secret = await page.locator('code').innerText();
    await page.getByLabel('The 6-digit code the app shows').fill(totp(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
    assert.equal(await page.locator('ul.codes li').count(), 10);
    await shots.take(page, 'backup-codes');
    await page.getByRole('link', { name: 'Continue' }).click();
    await page.getByText('Two-step verification is on.').waitFor();

    // Codes by email: the code sent, then confirmed.
    let mails = smtp.messagesTo(EMAIL).length;
    await page.getByRole('button', { name: 'Get codes by email' }).click();
    await page.getByText('We sent a code to your email address').waitFor();
    await shots.take(page, 'mfa-email-confirm');
    await page.getByLabel('Code').fill(await emailedCode(EMAIL, mails));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.waitForURL(/\/account/);
    await page.getByText('Codes by email').first().waitFor();
    await shots.take(page, 'account-mfa');

    // Organizations: a member of one already, invited to another.
    const first = await api('POST', '/v1/admin/organizations', {
      body: { name: 'Northwind Traders', slug: 'northwind', owner_user_id: owner.id },
    });
    await api('POST', `/v1/admin/organizations/${first.id}/members`, {
      body: { user_id: user.id, role: 'member' },
    });
    const second = await api('POST', '/v1/admin/organizations', {
      body: { name: 'Contoso Pharmaceuticals International', slug: 'contoso', owner_user_id: owner.id },
    });
    const ownerTokens = await api('POST', '/v1/auth/sign-in', {
      token: '',
      body: { email: OWNER, password: OWNER_PASSWORD },
    });
    await api('POST', `/v1/organizations/${second.id}/invitations`, {
      token: ownerTokens.access_token,
      body: { email: EMAIL, role: 'member' },
    });
    const invitation = await smtp.waitFor(EMAIL, 'You are invited');
    await page.goto(invitation.linkFor('/invitations/accept'));
    await page.getByText('Join Contoso Pharmaceuticals International').waitFor();
    await shots.take(page, 'invitation');
    await page.getByRole('button', { name: 'Accept and join' }).click();
    await page.waitForLoadState();
    await shots.take(page, 'invitation-accepted');

    // Consent with an organization to pick, and the chooser of a client that skips consent.
    const thirdParty = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'Quarterly Planning Dashboard', '--public',
        '--redirect-uri', REDIRECT_URI, '--scope', 'openid', '--scope', 'organization',
      ),
    );
    await page.goto(authorizeUrl(thirdParty.client_id, 'openid organization'));
    await page.getByRole('group', { name: 'Which organization?' }).waitFor();
    await shots.take(page, 'consent-organizations');
    const firstParty = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'Intranet', '--public', '--skip-consent',
        '--redirect-uri', REDIRECT_URI, '--scope', 'openid', '--scope', 'organization',
      ),
    );
    await page.goto(authorizeUrl(firstParty.client_id, 'openid organization'));
    await page.getByRole('heading', { name: 'Continue to Intranet with which organization?' }).waitFor();
    await shots.take(page, 'choose-organization');

    // The device flow: the code typed, confirmed, approved.
    const device = JSON.parse(
      await gatehouse.cli(
        'client', 'create', '--json', '--name', 'Living-room television', '--public',
        '--grant-type', 'urn:ietf:params:oauth:grant-type:device_code', '--scope', 'openid',
      ),
    );
    const started = await fetch(new URL('/oauth2/device_authorization', gatehouse.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: device.client_id, scope: 'openid' }),
    });
    const authorization = await started.json();
    assert.equal(started.status, 200, JSON.stringify(authorization));
    await page.goto('/device');
    await shots.take(page, 'device');
    await page.getByLabel('The code shown on your device').fill('BCDF-GHJK');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByText('This code is not valid or has expired.').waitFor();
    await shots.take(page, 'device-invalid');
    await page.getByLabel('The code shown on your device').fill(authorization.user_code);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Connect Living-room television?' }).waitFor();
    await shots.take(page, 'device-confirm');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.getByRole('heading', { name: 'Device connected' }).waitFor();
    await shots.take(page, 'device-approved');

    // Requests that cannot go on.
    await page.goto(authorizeUrl('no-such-client', 'openid'));
    await page.getByRole('heading', { name: 'This sign-in request cannot be completed' }).waitFor();
    await shots.take(page, 'oauth-error');
    await page.goto('/sso/no-such-provider');
    await page.getByRole('link', { name: 'Back to sign in' }).waitFor();
    await shots.take(page, 'error');

    // Sign out (confirmed), then the second step of a sign-in with a code by email.
    await page.goto('/logout');
    await shots.take(page, 'logout');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login/);
    await signIn(page, EMAIL, NEW_PASSWORD);
    await page.waitForURL(/\/mfa/);
    await shots.take(page, 'mfa');
    mails = smtp.messagesTo(EMAIL).length;
    await page.getByRole('button', { name: 'Email me a code' }).click();
    await page.getByText('A code is on its way').waitFor();
    await shots.take(page, 'mfa-code-sent');
    await page.getByLabel('Email', { exact: true }).check();
    await page.getByLabel('Code', { exact: true }).fill(await emailedCode(EMAIL, mails));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(`${gatehouse.url}/account`);
    await shots.take(page, 'account');

    // The profile (saved) and the account's data.
    await page.getByRole('link', { name: 'Profile and password' }).click();
    await page.waitForURL(/\/account\/profile/);
    await shots.take(page, 'account-profile');
    await page.getByLabel('Last name').fill('von Hohenzollern-Sigmaringen');
    await page.getByRole('button', { name: 'Save the profile' }).click();
    await page.getByText('Your profile is saved.').waitFor();
    await shots.take(page, 'account-profile-saved');
    await page.goto('/account/privacy');
    await page.getByRole('heading', { name: 'Delete your account' }).waitFor();
    await shots.take(page, 'account-privacy');

    // RP-initiated logout without an ID token: confirmed, then "signed out".
    await page.goto('/oauth2/end_session');
    await page.getByRole('heading', { name: 'Sign out of Gatehouse?' }).waitFor();
    await shots.take(page, 'end-session');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
    await shots.take(page, 'signed-out');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
  }
});

test('the pages in French, with their error and rule messages', async () => {
  const shots = new Screenshots('pages-fr');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'fr-FR' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  try {
    await page.goto('/login');
    assert.equal(await page.locator('html').getAttribute('lang'), 'fr');
    await shots.take(page, 'login');
    await page.locator('#identifier').fill('personne@example.com');
    await page.locator('#password').fill('pas-le-bon-mot-de-passe');
    await page.locator('form[action="/login"] button[type="submit"]').click();
    await page.locator('#login-error').waitFor();
    await shots.take(page, 'login-refused');

    await page.goto('/signup');
    await page.locator('#email').fill('jeanbaptiste.delacroixdemontmorency@exemple.fr');
    await page.locator('#password').fill('court');
    await page.locator('form[action="/signup"] button[type="submit"]').click();
    await page.locator('#signup-issues').waitFor();
    await shots.take(page, 'signup-rules');
    // A real account this time (signed in at once: no verification asked here), then deleted.
    await page.locator('#password').fill('Tournesol-brouette-quartier-74!');
    await page.locator('form[action="/signup"] button[type="submit"]').click();
    await page.waitForURL(`${gatehouse.url}/account`);
    await shots.take(page, 'account');
    await page.goto('/account/privacy');
    await page.locator('input[name="confirm"]').check();
    await page.locator('form[action="/account/delete"] button[type="submit"]').click();
    await page.getByRole('heading', { level: 1 }).waitFor();
    assert.notEqual(new URL(page.url()).pathname, '/account/privacy', 'the account was deleted');
    await shots.take(page, 'account-deleted');

    await page.goto('/forgot-password');
    await shots.take(page, 'forgot-password');
    await page.goto('/sso/no-such-provider');
    await shots.take(page, 'error');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
  }
});
