// The SDK in a real browser: examples/react-app (Vite + @gatehouse/react) is built and served on
// one origin, Gatehouse runs on another with GATEHOUSE_CORS_ALLOWED_ORIGINS naming the app's
// origin, and Chromium signs up, signs out, signs in through the React SignIn component, creates
// an organization and switches to it, adds a passkey and signs in with it (DevTools virtual
// authenticator), every call going cross-origin to Gatehouse.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { Screenshots, launch } from '../support/browser.js';
import { Gatehouse, freePort, repository } from '../support/gatehouse.js';
import { addVirtualAuthenticator } from '../support/webauthn.js';

const run = promisify(execFile);
const EMAIL = 'ada.sdk@example.com';
const PASSWORD = 'Lantern-quartz-harbour-58!';
const exampleDirectory = path.join(repository, 'examples', 'react-app');

let gatehouse;
let app;
let appOrigin;
let browser;

/** Builds the SDK packages (tsc), installs the example's packages when needed, `vite build`. */
async function buildExample(gatehouseUrl) {
  const options = { cwd: exampleDirectory, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 };
  await run(path.join(repository, 'sdk', 'js', 'run'), ['build'], options);
  const lock = path.join(exampleDirectory, 'package-lock.json');
  const installed = path.join(exampleDirectory, 'node_modules', '.package-lock.json');
  if (!existsSync(installed) || statSync(lock).mtimeMs > statSync(installed).mtimeMs) {
    await run('npm', ['ci', '--no-audit', '--no-fund'], options);
  }
  await run('npx', ['vite', 'build', '--logLevel', 'warn'], {
    ...options,
    env: { ...process.env, VITE_GATEHOUSE_URL: gatehouseUrl },
  });
}

/** Serves the built app (SPA fallback). */
function serveApp(port) {
  const root = path.join(exampleDirectory, 'dist');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, `http://127.0.0.1:${port}`);
    let file = path.join(root, path.normalize(url.pathname).replace(/^(\.\.[/\\])+/, ''));
    if (!file.startsWith(root) || !existsSync(file) || statSync(file).isDirectory()) file = path.join(root, 'index.html');
    response.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  const appPort = await freePort();
  // The app and Gatehouse on two ports of localhost: two origins, one registrable domain, so
  // the app's passkeys can use Gatehouse's relying-party id (`localhost`).
  appOrigin = `http://localhost:${appPort}`;
  const port = await freePort();
  const passkeys = { GATEHOUSE_PASSKEYS_ORIGINS: `${appOrigin},http://localhost:${port}` };
  gatehouse = await Gatehouse.start({ port, settings: { ...passkeys, GATEHOUSE_CORS_ALLOWED_ORIGINS: appOrigin } });
  await buildExample(gatehouse.url);
  app = await serveApp(appPort);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  app?.closeAllConnections();
  await new Promise((resolve) => (app ? app.close(resolve) : resolve()));
  await gatehouse?.stop();
});

/** The journey; `expectedOrigin` is where every /v1 call must go. */
async function journey(expectedOrigin) {
  const shots = new Screenshots('sdk');
  const context = await browser.newContext({ baseURL: appOrigin, locale: 'en-GB' });
  const page = await context.newPage();
  const apiOrigins = new Set();
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/v1/')) apiOrigins.add(url.origin);
  });
  const consoleErrors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  try {
    await page.goto('/');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shots.take(page, 'sign-in');

    await page.getByRole('button', { name: 'No account yet? Create one' }).click();
    await page.getByRole('heading', { name: 'Create an account' }).waitFor();
    await page.getByLabel('Email address').fill(EMAIL);
    await page.getByLabel('Password').fill('password');
    await page.getByRole('button', { name: 'Create the account' }).click();
    await page.getByRole('alert').filter({ hasText: 'Choose a stronger password.' }).waitFor();
    await shots.take(page, 'sign-up-refused');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('First name (optional)').fill('Ada');
    await page.getByRole('button', { name: 'Create the account' }).click();
    await page.getByRole('heading', { name: 'Hello, Ada' }).waitFor();
    await shots.take(page, 'signed-up');

    // The account menu, by keyboard: it opens on its first item; sign out from it.
    const menuButton = page.getByRole('button', { name: 'Account menu for Ada' });
    await menuButton.focus();
    await page.keyboard.press('Enter');
    const signOut = page.getByRole('menuitem', { name: 'Sign out' });
    await signOut.waitFor();
    assert.equal(await signOut.evaluate((element) => element === document.activeElement), true);
    await shots.take(page, 'account-menu');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();

    // A wrong password, then the right one, through <SignIn>.
    await page.getByLabel('Email address').fill(EMAIL);
    await page.getByLabel('Password').fill('Wrong-password-00!');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'The email or password is not right.' }).waitFor();
    await shots.take(page, 'sign-in-refused');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Hello, Ada' }).waitFor();
    await page.getByText(`Signed in as ${EMAIL}.`).waitFor();

    // An organization, chosen in <OrganizationSwitcher>: the token now carries it.
    await page.getByLabel('Organization name').fill('Acme Labs');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.getByRole('status').filter({ hasText: 'Created Acme Labs.' }).waitFor();
    await page.getByLabel('Organization', { exact: true }).selectOption({ label: 'Acme Labs' });
    await page.getByText(`Signed in as ${EMAIL} in acme-labs as owner.`).waitFor();
    await shots.take(page, 'organization');

    // A passkey through registerPasskey (WebAuthn L3 JSON), then a sign-in with it alone.
    await addVirtualAuthenticator(context, page);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByRole('status').filter({ hasText: 'Passkey added' }).waitFor();
    await shots.take(page, 'passkey-added');
    await page.getByRole('button', { name: 'Account menu for Ada' }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('heading', { name: 'Hello, Ada' }).waitFor();
    await page.getByText(`Signed in as ${EMAIL}.`).waitFor();

    assert.deepEqual([...apiOrigins], [expectedOrigin], `the app called Gatehouse at ${[...apiOrigins].join(', ')}`);
    // The refused sign-up (422) and sign-in (401) are logged by the browser as failed loads;
    // anything else on the console is the app's or the SDK's error.
    assert.deepEqual(consoleErrors.filter((text) => !/^Failed to load resource: the server responded with a status of (401|422)/.test(text)), []);
  } catch (error) {
    await shots.failure(page).catch(() => {});
    error.message += `\n--- gatehouse log ---\n${gatehouse.log()}`;
    throw error;
  } finally {
    await context.close();
  }
}

test('cross-origin (CORS): sign up, sign out, sign in through the React components, switch organization, passkey', async () => {
  const gatehouseOrigin = new URL(gatehouse.url).origin;
  assert.notEqual(gatehouseOrigin, appOrigin);
  await journey(gatehouseOrigin);
});
