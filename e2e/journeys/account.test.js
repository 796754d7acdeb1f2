// The account journeys of the self-service pages: a person changes their name, then their email
// address (the link arrives at the new address through the SMTP sink, the old one gets a
// notice), then their password; ends a session signed in elsewhere; takes back an
// application's access; downloads their data. Every page is checked and screenshotted.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';
import { SmtpSink } from '../support/smtp.js';

const EMAIL = 'ada@example.com';
const NEW_EMAIL = 'ada.lovelace@example.org';
const PASSWORD = 'Quasar-trail-mix-81!';
const NEW_PASSWORD = 'Harbour-quill-sundial-58?';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

let smtp;
let gatehouse;
let browser;

before(async () => {
  smtp = await SmtpSink.start();
  gatehouse = await Gatehouse.start({ smtp });
  await gatehouse.cli('user', 'create', '--email', EMAIL, '--password', PASSWORD, '--verified');
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  await smtp?.stop();
});

async function signIn(page, email, password) {
  await page.getByLabel('Email or username').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

test('change the name, the email (through the sink) and the password; end a session; remove an application; download the data', async () => {
  const shots = new Screenshots('account');
  const elsewhere = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB', acceptDownloads: true });
  // The application's redirect URI is not served: the browser is answered here instead.
  await context.route(`${REDIRECT_URI}**`, (route) => route.fulfill({ status: 200, body: 'back at the application' }));
  const page = await context.newPage();
  const other = await elsewhere.newPage();
  try {
    // A second browser: a session to end later.
    await other.goto('/login');
    await signIn(other, EMAIL, PASSWORD);
    await other.waitForURL(`${gatehouse.url}/account`);

    await page.goto('/login?return_to=%2Faccount%2Fprofile');
    await signIn(page, EMAIL, PASSWORD);
    await page.waitForURL(`${gatehouse.url}/account/profile`);
    await shots.take(page, 'profile');

    // The name.
    await page.getByLabel('First name').fill('Ada');
    await page.getByLabel('Last name').fill('Lovelace');
    await page.getByRole('button', { name: 'Save the profile' }).click();
    await page.getByText('Your profile is saved.').waitFor();

    // The email address: a link to the new address, a notice to the current one.
    await page.getByLabel('New email address').fill(NEW_EMAIL);
    await page.getByRole('button', { name: 'Change the email address' }).click();
    await page.getByText('A link is on its way to the new address').waitFor();
    await shots.take(page, 'profile-email-sent');
    const notice = await smtp.waitFor(EMAIL, 'email address was asked for');
    assert.ok(!notice.linkFor('/change-email'), 'the current address got the link');
    const mail = await smtp.waitFor(NEW_EMAIL, 'Confirm your new email address');
    const link = mail.linkFor('/change-email');
    assert.ok(link, `no /change-email link in:\n${mail.text()}`);
    await page.goto(link);
    await shots.take(page, 'change-email');
    await page.getByRole('button', { name: 'Confirm the new address' }).click();
    await page.getByText('Your account now uses this address.').waitFor();
    await shots.take(page, 'change-email-done');

    // The password: the other browser is signed out by the change.
    await page.goto('/account/profile');
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByLabel('New password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change the password' }).click();
    await page.getByText('Your password is changed.').waitFor();
    await other.goto('/account');
    await other.waitForURL(/\/login/);

    // Signed in elsewhere with the new address and password; that session ended from here.
    await signIn(other, NEW_EMAIL, NEW_PASSWORD);
    await other.waitForURL(`${gatehouse.url}/account`);
    await page.goto('/account');
    const sessions = page.getByRole('button', { name: 'Sign out there' });
    assert.equal(await sessions.count(), 1, 'one other session');
    await shots.take(page, 'account');
    await sessions.click();
    await page.waitForURL(`${gatehouse.url}/account`);
    assert.equal(await page.getByRole('button', { name: 'Sign out there' }).count(), 0);
    await other.goto('/account');
    await other.waitForURL(/\/login/);

    // An application given access, then the access taken back.
    const client = JSON.parse(
      await gatehouse.cli('client', 'create', '--json', '--name', 'Shop', '--public', '--redirect-uri', REDIRECT_URI),
    );
    const authorize = new URL('/oauth2/authorize', gatehouse.url);
    for (const [name, value] of Object.entries({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT_URI,
      scope: 'openid email',
      state: 'journey',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWpd9b7i9uBXM',
      code_challenge_method: 'S256',
    })) {
      authorize.searchParams.set(name, value);
    }
    await page.goto(authorize.toString());
    await page.getByRole('heading', { name: 'Shop wants to access your account' }).waitFor();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(/127\.0\.0\.1:9\/callback\?code=/);
    await page.goto('/account');
    await page.getByText('Shop').first().waitFor();
    await page.getByRole('button', { name: 'Remove access' }).click();
    await page.getByText('No application has access to your account.').waitFor();

    // The data, as a file.
    await page.goto('/account/privacy');
    await shots.take(page, 'privacy');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download my data' }).click(),
    ]);
    const data = JSON.parse(await readFile(await download.path(), 'utf8'));
    assert.equal(data.profile.email, NEW_EMAIL);
    assert.equal(data.profile.first_name, 'Ada');
    assert.ok(!JSON.stringify(data).includes(NEW_PASSWORD), 'the export holds the password');
  } catch (error) {
    await shots.failure(page);
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
    await elsewhere.close();
  }
});
