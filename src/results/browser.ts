/**
 * Looking at a page the way a reader would: headless Chromium (the system's, driven by
 * playwright-core) opens it, and we record what rendered (SVG charts and their marks, images and
 * whether they decoded) and every request the page made.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { SVG_ANIMATION, URL_ATTRIBUTES } from './report';

/** Flags for a quiet, offline, unprivileged headless Chromium (containers have no sandbox or GPU). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

/** The Chromium to drive: CHROMIUM_PATH, else Debian's /usr/bin/chromium, else other usual places; null if none. */
export function findChromium(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return candidates.find((p): p is string => !!p && fs.existsSync(p)) ?? null;
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error('no Chromium found (install Debian\'s chromium, or set CHROMIUM_PATH)');
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60_000 });
}

export interface PageInspection {
  url: string;
  title: string;
  /** Every request the page made, in order (the page itself first). */
  requests: string[];
  /** Requests to anything but the page itself and data: URIs. */
  externalRequests: string[];
  /** Each chart (a Vega SVG inline or as an <img>): how many marks it drew, their types, whether it is on screen. */
  charts: { kind: 'svg' | 'img'; marks: number; markTypes: string[]; rendered: boolean }[];
  images: { src: string; naturalWidth: number; complete: boolean }[];
  /** Console errors and uncaught exceptions. */
  errors: string[];
  /** alert/confirm/prompt/beforeunload dialogs the page opened (dismissed at once): script ran. */
  dialogs: string[];
  /** In the rendered DOM: script elements, event-handler attributes, javascript: URLs. */
  unsafe: string[];
  screenshot?: string;
}

/**
 * What rendered in the page now: the charts (inline Vega SVGs, and <img>s showing a Vega SVG through
 * a data URI, as Jupyter's HTML forms of a chart do), with the marks each drew, and every image.
 */
export async function inspectRendered(page: Page, root = 'body'): Promise<Pick<PageInspection, 'charts' | 'images'>> {
  return page.evaluate((sel) => {
    const scope = document.querySelector(sel) ?? document.body;
    const describe = (svg: Element) => {
      const groups = Array.from(svg.querySelectorAll('g.role-mark'));
      const marks = groups.reduce((n, g) => n + g.querySelectorAll(':scope > path, :scope > text, :scope > line, :scope > rect, :scope > g > path').length, 0);
      const markTypes = [...new Set(groups.map((g) => (Array.from(g.classList).find((c) => c.startsWith('mark-')) ?? 'mark-?').slice(5)))];
      return { marks, markTypes };
    };
    const inline = Array.from(scope.querySelectorAll('svg'))
      .filter((svg) => svg.querySelector('.role-mark') !== null)
      .map((svg) => ({ kind: 'svg' as const, ...describe(svg), rendered: svg.getBoundingClientRect().width > 0 }));
    const prefix = 'data:image/svg+xml;base64,';
    const pictured = Array.from(scope.querySelectorAll('img'))
      .filter((img) => img.getAttribute('src')?.startsWith(prefix))
      .map((img) => {
        const bytes = Uint8Array.from(atob(img.getAttribute('src')!.slice(prefix.length)), (c) => c.charCodeAt(0));
        const svg = new DOMParser().parseFromString(new TextDecoder().decode(bytes), 'image/svg+xml').documentElement;
        return { kind: 'img' as const, ...describe(svg), rendered: img.complete && img.naturalWidth > 0 };
      })
      .filter((c) => c.markTypes.length > 0);
    const images = Array.from(scope.querySelectorAll('img')).map((img) => ({
      src: img.currentSrc.slice(0, 64),
      naturalWidth: img.naturalWidth,
      complete: img.complete,
    }));
    return { charts: [...inline, ...pictured], images };
  }, root);
}

/**
 * Elements of the live page that could run script: <script>, on* attributes, javascript: URLs in
 * URL attributes (the same ones htmlViolations judges: alt or title text is not a URL).
 */
export async function unsafeElements(page: Page): Promise<string[]> {
  return page.evaluate(({ urlAttributes, svgAnimation }) => {
    const found: string[] = [];
    for (const e of Array.from(document.querySelectorAll('*'))) {
      const tag = e.tagName.toLowerCase();
      if (tag === 'script') found.push('<script>');
      for (const a of Array.from(e.attributes)) {
        if (/^on/i.test(a.name)) found.push(`<${tag} ${a.name}>`);
        const name = a.name.toLowerCase();
        if (!urlAttributes.includes(name) && !(svgAnimation.includes(tag) && ['values', 'from', 'to', 'by'].includes(name))) continue;
        // runs in the page, so the pattern is inline; browsers ignore control characters in a URL's scheme
        // eslint-disable-next-line no-control-regex
        if (/^(javascript|vbscript):/i.test(a.value.replace(/[\x00-\x20]/g, ''))) found.push(`<${tag} ${a.name}="${a.value.slice(0, 40)}">`);
      }
    }
    return found;
  }, { urlAttributes: [...URL_ATTRIBUTES], svgAnimation: [...SVG_ANIMATION] });
}

/**
 * Opens `url` (a file path or URL) in a fresh page, waits for it to load, and reports what it
 * rendered and requested; with `screenshot`, saves a full-page PNG there.
 */
export async function inspectPage(url: string, opts: { screenshot?: string; browser?: Browser; width?: number } = {}): Promise<PageInspection> {
  const target = /^[a-z]+:/i.test(url) ? url : `file://${path.resolve(url)}`;
  const browser = opts.browser ?? (await launchChromium());
  try {
    const context = await browser.newContext({ viewport: { width: opts.width ?? 1280, height: 900 }, offline: true });
    const page = await context.newPage();
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      d.dismiss().catch(() => undefined);
    });
    await page.goto(target, { waitUntil: 'load', timeout: 60_000 });
    const rendered = await inspectRendered(page);
    const unsafe = await unsafeElements(page);
    const title = await page.title();
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    await context.close();
    const externalRequests = requests.filter((r) => r !== target && !r.startsWith('data:'));
    return { url: target, title, requests, externalRequests, ...rendered, errors, dialogs, unsafe, screenshot: opts.screenshot };
  } finally {
    if (!opts.browser) await browser.close();
  }
}

/** Problems a reader would see in an inspected report: no charts, empty charts, broken images, fetches. */
export function reportProblems(r: PageInspection): string[] {
  const problems: string[] = [];
  if (r.charts.length === 0) problems.push('no chart rendered');
  r.charts.forEach((c, i) => {
    if (c.marks === 0) problems.push(`chart ${i + 1} has no marks`);
    else if (!c.rendered) problems.push(`chart ${i + 1} is not displayed`);
  });
  r.images.forEach((img, i) => {
    if (!(img.complete && img.naturalWidth > 0)) problems.push(`image ${i + 1} did not load (${img.src})`);
  });
  if (r.externalRequests.length) problems.push(`the page requested ${r.externalRequests.length} resource(s): ${r.externalRequests.slice(0, 3).join(', ')}`);
  if (r.errors.length) problems.push(`console errors: ${r.errors.slice(0, 3).join('; ')}`);
  if (r.dialogs?.length) problems.push(`the page opened ${r.dialogs.length} dialog(s) (a script ran): ${r.dialogs.slice(0, 3).join('; ')}`);
  if (r.unsafe?.length) problems.push(`${r.unsafe.length} element(s) could run script: ${r.unsafe.slice(0, 3).join(', ')}`);
  return problems;
}
