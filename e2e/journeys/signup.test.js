// Sign up on /signup → the verification email arrives in the sink → follow its link → sign in
// on /login → land on /account.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';
import { SmtpSink } from '../support/smtp.js';

const EMAIL = 'ada@example.com';
const PASSWORD = 'Quasar-trail-mix-81!';

let smtp;
let gatehouse;
let browser;

before(async () => {
  smtp = await SmtpSink.start();
  gatehouse = await Gatehouse.start({
    smtp,
    settings: { GATEHOUSE_REQUIRE_EMAIL_VERIFICATION: 'true' },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  await smtp?.stop();
});

test('sign up, verify the email from the sink, sign in, land on /account', async () => {
  const shots = new Screenshots('signup');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  const page = await context.newPage();
  try {
    // /login offers sign-up.
    await page.goto('/login');
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.waitForURL(/\/signup/);
    await shots.take(page, 'signup');

    await page.getByLabel('Email address').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('First name (optional)').fill('Ada');
    await page.getByRole('button', { name: 'Create the account' }).click();
    await page.getByText('Check your email').waitFor();
    await shots.take(page, 'signup-sent');

    const mail = await smtp.waitFor(EMAIL, 'Confirm your email');
    const link = mail.linkFor('/verify-email');
    assert.ok(link, `no /verify-email link in:\n${mail.text()}`);
    await page.goto(link);
    await shots.take(page, 'verify-email');
    await page.getByRole('button', { name: 'Confirm my address' }).click();
    await page.getByText('Your email address is confirmed').waitFor();
    await shots.take(page, 'verify-email-done');

    await page.goto('/login');
    await shots.take(page, 'login');
    await page.getByLabel('Email or username').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${gatehouse.url}/account`);
    await page.getByText(`Signed in as ${EMAIL}.`).waitFor();
    await shots.take(page, 'account');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
  }
});
