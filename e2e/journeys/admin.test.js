// The admin dashboard in a real browser: an admin (created with `gatehouse user create --admin`)
// signs in on /login on the way to /admin, reads the overview, finds a user by address, ends
// one of the user's sessions, suspends and unsuspends the account, registers an application
// (its secret shown once), and reads the audit log filtered on the suspension. Every page is
// screenshotted. A second journey reads the keys page and impersonates the user (a reason, the
// banner on the account page, stopping) and finds it in the audit log.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse } from '../support/gatehouse.js';
import { SmtpSink } from '../support/smtp.js';

const ADMIN = 'root@example.com';
const USER = 'ada@example.com';
const PASSWORD = 'Quasar-trail-mix-81!';

let smtp;
let gatehouse;
let browser;

before(async () => {
  smtp = await SmtpSink.start();
  gatehouse = await Gatehouse.start({ smtp });
  await gatehouse.cli('user', 'create', '--email', ADMIN, '--password', PASSWORD, '--admin', '--verified');
  await gatehouse.cli('user', 'create', '--email', USER, '--password', PASSWORD, '--verified');
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await gatehouse?.stop();
  await smtp?.stop();
});

/** Signs `email` in on the login page `page` shows. */
async function signIn(page, email) {
  await page.getByLabel('Email or username').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

test('an admin finds a user, ends a session, suspends and unsuspends, reads the audit log', async () => {
  const shots = new Screenshots('admin');
  // The user signs in elsewhere: a session for the admin to end.
  const userContext = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  const userPage = await userContext.newPage();
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  const page = await context.newPage();
  try {
    await userPage.goto('/login');
    await signIn(userPage, USER);
    await userPage.waitForURL(`${gatehouse.url}/account`);

    // To /admin through /login.
    await page.goto('/admin');
    await page.waitForURL(/\/login\?return_to=%2Fadmin/);
    await signIn(page, ADMIN);
    await page.waitForURL(`${gatehouse.url}/admin`);
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    const charts = page.locator('figure.chart svg[role="img"]');
    assert.equal(await charts.count(), 3, 'three charts');
    await shots.take(page, 'overview');

    // Users: the list, then a search by address.
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.waitForURL(`${gatehouse.url}/admin/users`);
    await page.getByRole('link', { name: USER }).waitFor();
    await shots.take(page, 'users');
    await page.getByLabel('Find by email, username or id').fill(USER);
    await page.getByRole('button', { name: 'Find' }).click();
    await page.waitForURL(/\/admin\/users\?q=/);
    await page.getByRole('link', { name: USER }).click();
    await page.waitForURL(/\/admin\/users\/usr_/);
    await page.getByRole('heading', { name: USER, level: 1 }).waitFor();
    await shots.take(page, 'user');

    // End the user's session: the user's browser is signed out.
    const sessions = page.locator('section[aria-labelledby="sessions-heading"] tbody tr');
    assert.equal(await sessions.count(), 1, 'one active session');
    await sessions.first().getByRole('button', { name: /^End/ }).click();
    await page.getByText('No active session.').waitFor();
    await userPage.goto('/account');
    await userPage.waitForURL(/\/login/);

    // Suspend, then unsuspend.
    await page.getByRole('button', { name: 'Suspend' }).click();
    await page.getByRole('button', { name: 'Unsuspend' }).waitFor();
    await shots.take(page, 'user-suspended');
    await page.getByRole('button', { name: 'Unsuspend' }).click();
    await page.getByRole('button', { name: 'Suspend' }).waitFor();

    // Register an application: its secret is shown once, then never again.
    await page.getByRole('link', { name: 'Applications' }).click();
    await page.waitForURL(`${gatehouse.url}/admin/clients`);
    await shots.take(page, 'clients');
    await page.getByRole('link', { name: 'Register an application' }).click();
    await page.getByLabel('Name').fill('Shop');
    await page.getByLabel('Redirect URIs', { exact: true }).fill('https://shop.example/callback');
    await shots.take(page, 'client-new');
    await page.getByRole('button', { name: 'Register an application' }).click();
    await page.getByRole('heading', { name: 'Application registered' }).waitFor();
    const secret = (await page.locator('code.secret').textContent()).trim();
    assert.match(secret, /^gtc_/);
    await shots.take(page, 'client-secret');
    await page.getByRole('link', { name: 'Continue to the application' }).click();
    await page.getByRole('heading', { name: 'Shop', level: 1 }).waitFor();
    assert.ok(!(await page.content()).includes(secret), 'the secret is shown again');
    await shots.take(page, 'client');

    // The audit log, filtered on the suspension.
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.waitForURL(`${gatehouse.url}/admin/audit`);
    await page.getByLabel('Action').fill('user.suspended');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/action=user.suspended/);
    const rows = page.locator('tbody tr');
    assert.equal(await rows.count(), 1, 'one suspension');
    await shots.take(page, 'audit');

    // The page at a phone's width: no sideways scrolling of the page itself.
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto('/admin');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the overview is ${overflow}px wider than a 375px screen`);
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
    await userContext.close();
  }
});

test('an admin reads the keys, then impersonates a user for a while and stops', async () => {
  const shots = new Screenshots('admin-impersonation');
  const context = await browser.newContext({ baseURL: gatehouse.url, locale: 'en-GB' });
  const page = await context.newPage();
  try {
    await page.goto('/admin/keys');
    await page.waitForURL(/\/login\?return_to=%2Fadmin%2Fkeys/);
    await signIn(page, ADMIN);
    await page.waitForURL(`${gatehouse.url}/admin/keys`);
    await page.getByRole('heading', { name: 'Token signing keys' }).waitFor();
    await shots.take(page, 'keys');

    // The user's page: impersonate with a reason.
    await page.goto(`/admin/users?q=${encodeURIComponent(USER)}`);
    await page.getByRole('link', { name: USER }).click();
    await page.waitForURL(/\/admin\/users\/usr_/);
    const userUrl = page.url();
    await page.getByLabel('Reason').fill('Ticket 12: the account page looks wrong');
    await page.getByLabel('For (minutes)').selectOption('15');
    await page.getByRole('button', { name: 'Start impersonating' }).click();
    await page.waitForURL(`${gatehouse.url}/account`);
    const banner = page.getByRole('status').filter({ hasText: 'You are acting as' });
    await banner.waitFor();
    assert.match(await banner.textContent(), new RegExp(USER.replace('.', '\\.')));
    await shots.take(page, 'impersonating');
    // The dashboard is not the user's.
    const refused = await page.goto('/admin');
    assert.equal(refused.status(), 403);

    // Stopping brings the admin back to the user's page, still signed in.
    await page.goto('/account');
    await page.getByRole('button', { name: 'Stop impersonating' }).click();
    await page.waitForURL(userUrl);
    await page.getByRole('heading', { name: USER, level: 1 }).waitFor();
    assert.ok(!(await page.content()).includes('You are acting as'));

    // The audit log has it, with the reason.
    await page.goto('/admin/audit?action=user.impersonated');
    const rows = page.locator('tbody tr');
    assert.equal(await rows.count(), 1, 'one impersonation');
    assert.match(await rows.first().textContent(), /Ticket 12/);
    await shots.take(page, 'audit-impersonation');
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
  }
});
