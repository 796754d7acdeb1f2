// What every visited hosted page must pass besides the journey's own assertions: axe-core (npm,
// pinned) finds no violation of impact `serious` or `critical`, and at 375 px wide nothing sticks
// out of the page sideways (no horizontal scrolling on a phone). Violations of lower impact are
// kept in the page's `.axe.json` report next to its screenshots, without failing the journey.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** The impacts that fail a journey. */
export const BLOCKING_IMPACTS = new Set(['serious', 'critical']);

/**
 * axe-core's violations on `page` as it is now, each as `{ id, impact, help, helpUrl, nodes:
 * [{ target, impact, summary }] }` (a violation's impact is its worst node's). axe is evaluated through DevTools (`Runtime.evaluate`), which the
 * page's CSP does not govern, so the browser context needs no `bypassCSP` and the journeys keep
 * running under the pages' real CSP. Every rule axe enables by default runs; none is turned off.
 */
export async function axeViolations(page) {
  // (An element with id="axe" would also be `window.axe`: look for axe's own `run`.)
  if (!(await page.evaluate(() => typeof window.axe?.run === 'function'))) {
    await page.evaluate(axeSource);
  }
  return page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ['violations'] });
    return results.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      helpUrl: violation.helpUrl,
      nodes: violation.nodes.map((node) => ({
        target: node.target.map(String).join(' '),
        impact: node.impact ?? violation.impact,
        // The first check's own words: for contrast it names the colours and the ratio.
        summary: [...node.any, ...node.all, ...node.none].map((check) => check.message).find(Boolean) ?? '',
      })),
    }));
  });
}

/**
 * What reaches past the right edge of the viewport (the page scrolls sideways), as readable
 * descriptions: the outermost elements whose box does, and the elements whose text does (a long
 * word overflows its box without widening it). Empty when the page fits.
 */
export async function horizontalOverflow(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth <= width) return [];
    const offenders = [];
    const add = (element) => {
      if (!offenders.some((outer) => outer.contains(element))) offenders.push(element);
    };
    // Content past the edge inside a box that scrolls or clips sideways (a wide table in its own
    // scroller) does not widen the page; but an absolutely positioned element escapes every
    // such box up to its containing block (visually hidden text in a scrolled-away cell).
    const clipped = (element, inFlow) => {
      let escaping = !inFlow && ['absolute', 'fixed'].includes(getComputedStyle(element).position);
      if (getComputedStyle(element).position === 'fixed') return false;
      for (let box = inFlow ? element : element.parentElement; box && box !== document.body; box = box.parentElement) {
        const style = getComputedStyle(box);
        if (escaping && style.position === 'static') continue;
        if (style.overflowX !== 'visible') return true;
        escaping = style.position === 'absolute';
      }
      return false;
    };
    for (const element of document.body.querySelectorAll('*')) {
      const box = element.getBoundingClientRect();
      if (box.width > 0 && box.right > width + 0.5 && !clipped(element, false)) add(element);
    }
    const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    while (texts.nextNode()) {
      range.selectNodeContents(texts.currentNode);
      const parent = texts.currentNode.parentElement;
      if (range.getBoundingClientRect().right > width + 0.5 && !clipped(parent, true)) add(parent);
    }
    const describe = (element) => {
      const classes = [...element.classList].map((name) => `.${name}`).join('');
      const text = (element.textContent ?? '').trim().replace(/\s+/g, ' ').slice(0, 60);
      return `${element.localName}${element.id ? `#${element.id}` : ''}${classes} "${text}"`;
    };
    return [
      `the page is ${document.documentElement.scrollWidth} px wide in a ${width} px viewport`,
      ...offenders.slice(0, 5).map(describe),
    ];
  });
}

/**
 * The blocking violations (impact `serious` or `critical`) of axe runs at several widths
 * (`{ [width]: violations }`), one readable line per rule and element, with the widths it
 * failed at.
 */
export function describeBlocking(violationsByWidth) {
  const widthsOf = new Map();
  for (const [width, violations] of Object.entries(violationsByWidth)) {
    for (const violation of violations) {
      for (const node of violation.nodes) {
        if (!BLOCKING_IMPACTS.has(node.impact)) continue;
        const line =
          `${violation.id} (${node.impact}) at \`${node.target}\`: ${violation.help}` +
          `${node.summary ? ` — ${node.summary}` : ''} (${violation.helpUrl})`;
        widthsOf.set(line, [...(widthsOf.get(line) ?? []), `${width} px`]);
      }
    }
  }
  return [...widthsOf].map(([line, widths]) => `[${widths.join(', ')}] ${line}`);
}
