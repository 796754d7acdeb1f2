// Debian's Chromium driven by playwright-core (never a downloaded browser), headless, with the
// flags that keep it off the network; every page a journey visits is shot full-page at 1280 and
// at 375 px wide into e2e/artifacts/ (gitignored; CI keeps them) and checked (`a11y.js`).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { axeViolations, describeBlocking, horizontalOverflow } from './a11y.js';

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

/** The two widths every page is shot at: a desktop window and a small phone. */
export const DESKTOP_WIDTH = 1280;
export const PHONE_WIDTH = 375;

/**
 * A journey's screenshots and page checks, numbered in the order it takes them. `take` is what a
 * journey calls on every page it visits: the page at both widths, and the page's accessibility
 * and phone-layout checks (`support/a11y.js`).
 */
export class Screenshots {
  constructor(journey) {
    this.journey = journey;
    this.count = 0;
    mkdirSync(artifacts, { recursive: true });
  }

  /**
   * Full-page PNGs of `page` as it is now, `<journey>-<nn>-<name>.1280.png` and
   * `<journey>-<nn>-<name>.375.png` (the viewport resized for each, then restored), and the
   * axe report `<journey>-<nn>-<name>.axe.json` (every violation at each width). Throws, after
   * the screenshots are saved, listing every axe violation of impact `serious` or `critical`
   * and whatever sticks out sideways at 375 px. `check: false` only for a page that is not
   * Gatehouse's (a journey's own stand-in relying party).
   */
  async take(page, name, { check = true } = {}) {
    this.count += 1;
    const base = path.join(artifacts, `${this.journey}-${String(this.count).padStart(2, '0')}-${name}`);
    const original = page.viewportSize();
    const violations = {};
    let overflow = [];
    try {
      await page.setViewportSize({ width: DESKTOP_WIDTH, height: original?.height ?? 720 });
      await page.screenshot({ path: `${base}.${DESKTOP_WIDTH}.png`, fullPage: true });
      if (check) violations[DESKTOP_WIDTH] = await axeViolations(page);
      await page.setViewportSize({ width: PHONE_WIDTH, height: 812 });
      await page.screenshot({ path: `${base}.${PHONE_WIDTH}.png`, fullPage: true });
      if (check) {
        violations[PHONE_WIDTH] = await axeViolations(page);
        overflow = await horizontalOverflow(page);
      }
    } finally {
      if (original) await page.setViewportSize(original);
    }
    if (!check) return;
    writeFileSync(`${base}.axe.json`, `${JSON.stringify({ url: page.url(), violations }, null, 2)}\n`);
    const problems = describeBlocking(violations);
    if (overflow.length > 0) problems.push(`[${PHONE_WIDTH} px] wider than the screen: ${overflow.join('; ')}`);
    if (problems.length > 0) {
      throw new Error(
        `${path.basename(base)} (${page.url()}) fails its page checks:\n  - ${problems.join('\n  - ')}`,
      );
    }
  }

  /** A full-page PNG of `page` at its current size, `<journey>-<nn>-failure.png`, no checks. */
  async failure(page) {
    this.count += 1;
    const file = path.join(artifacts, `${this.journey}-${String(this.count).padStart(2, '0')}-failure.png`);
    await page.screenshot({ path: file, fullPage: true });
  }
}
