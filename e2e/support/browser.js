// Debian's Chromium driven by playwright-core (never a downloaded browser), headless, with the
// flags that keep it off the network; full-page screenshots of every page a journey visits go
// to e2e/artifacts/ (gitignored; CI keeps them).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const artifacts = path.resolve(here, '..', 'artifacts');
export const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launch() {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Numbers a journey's screenshots in the order it takes them. */
export class Screenshots {
  constructor(journey) {
    this.journey = journey;
    this.count = 0;
    mkdirSync(artifacts, { recursive: true });
  }

  /** A full-page PNG of `page` as it is now: `<journey>-<nn>-<name>.png`. */
  async take(page, name) {
    this.count += 1;
    const file = path.join(artifacts, `${this.journey}-${String(this.count).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }
}
