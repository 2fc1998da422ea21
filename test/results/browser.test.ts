/**
 * The report and a notebook as a reader sees them: headless Chromium (Debian's, via playwright-core)
 * opens the report offline, and the classic Jupyter Notebook server shows an executed results
 * notebook. Skipped, with the reason, where Chromium or Jupyter is not installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { projectRoot } from '../../src/config';
import { findChromium, inspectPage, inspectRendered, launchChromium, reportProblems } from '../../src/results/browser';
import { writeReport } from '../../src/results/report';
import { makeFixtureRun, makeHostileRun, HOSTILE_CLASSES, tinyPngBase64 } from './fixtures';
import { ensureKernel, jupyterEnv } from '../../src/jupyter/kernel';
import { freePort, stopServer, waitForServer } from '../server-helpers';

const chromium = findChromium();
const noChromium = chromium ? false : 'no Chromium (apt-get install chromium chromium-driver, or set CHROMIUM_PATH)';

test('the report renders offline in Chromium: every chart drawn, every image decoded, no request', { skip: noChromium, timeout: 60_000 }, async (t) => {
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-browser-'));
  t.after(() => fs.rmSync(run, { recursive: true, force: true }));
  await makeFixtureRun(run);
  const report = await writeReport(run);
  const screenshot = path.join(run, 'report.png');
  const r = await inspectPage(report, { screenshot });
  assert.deepEqual(r.requests, [r.url], 'only the page itself was loaded');
  assert.deepEqual(r.externalRequests, []);
  assert.equal(r.charts.length, 2, 'training curves and confusion matrix');
  for (const c of r.charts) assert.deepEqual([c.kind, c.rendered], ['svg', true], 'inline SVG, on screen');
  assert.ok(r.charts[0].markTypes.includes('line') && r.charts[0].markTypes.includes('rule'), JSON.stringify(r.charts[0]));
  assert.ok(r.charts[1].markTypes.includes('rect') && r.charts[1].marks >= 9 + 9, JSON.stringify(r.charts[1]));
  assert.equal(r.images.length, 5);
  for (const img of r.images) assert.ok(img.complete && img.naturalWidth > 0, `image ${img.src} decoded`);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(reportProblems(r), []);
  assert.ok(fs.statSync(screenshot).size > 10_000, 'a full-page screenshot was saved in the run folder');
  assert.equal(r.title, `Run ${path.basename(run)}`);

  // the command line does the same check on demand
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  fs.rmSync(screenshot);
  const c = spawnSync(process.execPath, [cli, 'report', '--run', run, '--check', '--json'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(c.status, 0, c.stderr);
  const out = JSON.parse(c.stdout);
  assert.deepEqual(out.check, { screenshot, charts: 2, images: 5, problems: [] });
  assert.ok(fs.existsSync(screenshot));
});

test('a report of class names holding markup runs nothing in Chromium, fetches nothing, shows every image and the names as written', { skip: noChromium, timeout: 60_000 }, async (t) => {
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-browser-'));
  t.after(() => fs.rmSync(run, { recursive: true, force: true }));
  await makeHostileRun(run);
  const report = await writeReport(run);
  const browser = await launchChromium();
  t.after(() => browser.close());
  const r = await inspectPage(report, { browser });
  assert.deepEqual(r.dialogs, [], 'no alert/confirm/prompt');
  assert.deepEqual(r.requests, [r.url], 'only the page itself was loaded');
  assert.deepEqual(r.unsafe, [], 'no script element, handler attribute or javascript: URL in the DOM');
  assert.deepEqual(r.errors, []);
  assert.equal(r.images.length, HOSTILE_CLASSES.length + 2, 'the grid, the chart as <img>, the old attack\'s image');
  for (const img of r.images) assert.ok(img.complete && img.naturalWidth > 0, `image ${img.src} shown`);
  assert.deepEqual(r.charts.map((c) => [c.kind, c.rendered]), [['svg', true], ['img', true]]);
  // the names as written: captions, alt texts, table cells and chart axis labels
  const page = await (await browser.newContext({ offline: true })).newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => undefined); });
  await page.goto(r.url);
  const seen = await page.evaluate(() => ({
    captions: Array.from(document.querySelectorAll('figcaption')).map((e) => e.textContent),
    alts: Array.from(document.querySelectorAll('figure img')).map((e) => e.getAttribute('alt')),
    cells: Array.from(document.querySelectorAll('td')).map((e) => e.textContent),
    labels: Array.from(document.querySelectorAll('svg .role-axis-label text')).map((e) => e.textContent),
  }));
  assert.deepEqual(seen.captions, HOSTILE_CLASSES);
  assert.deepEqual(seen.alts, HOSTILE_CLASSES);
  for (const c of HOSTILE_CLASSES) assert.ok(seen.cells.includes(c), `table cell ${c}`);
  // Vega shortens long axis labels with an ellipsis; what it shows is still the name's own text
  const shows = (label: string | null, c: string) => label === c || (!!label?.endsWith('…') && c.startsWith(label.slice(0, -1)));
  for (const c of HOSTILE_CLASSES) assert.ok(seen.labels.some((l) => shows(l, c)), `axis label ${c} in ${JSON.stringify(seen.labels)}`);
  await page.mouse.move(10, 10);
  await page.mouse.move(400, 400);
  assert.deepEqual(dialogs, []);
  // --check agrees
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const c = spawnSync(process.execPath, [cli, 'report', '--run', run, '--check', '--json'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(c.status, 0, c.stderr);
  assert.deepEqual(JSON.parse(c.stdout).check.problems, []);
});

test('report --check fails on a page that runs a script or carries a handler', { skip: noChromium, timeout: 60_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-browser-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const page = path.join(dir, 'bad.html');
  fs.writeFileSync(page, `<!DOCTYPE html><html><body><img src="data:image/png;base64,${tinyPngBase64()}" alt="x" onload="alert(7)"></body></html>`);
  const r = await inspectPage(page);
  assert.deepEqual(r.dialogs, ['alert: 7']);
  assert.deepEqual(r.unsafe, ['<img onload>']);
  assert.ok(reportProblems(r).some((p) => /dialog/.test(p)));
});

test('reportProblems names what a reader would miss', () => {
  const base = { url: 'file:///r.html', title: '', requests: [], externalRequests: [], errors: [], dialogs: [], unsafe: [] };
  assert.deepEqual(reportProblems({ ...base, charts: [{ kind: 'svg', marks: 3, markTypes: ['line'], rendered: true }], images: [] }), []);
  assert.deepEqual(
    reportProblems({ ...base, externalRequests: ['https://cdn/x.js'], charts: [{ kind: 'svg', marks: 0, markTypes: [], rendered: true }, { kind: 'img', marks: 5, markTypes: ['rect'], rendered: false }], images: [{ src: 'data:x', naturalWidth: 0, complete: true }] }),
    ['chart 1 has no marks', 'chart 2 is not displayed', 'image 1 did not load (data:x)', 'the page requested 1 resource(s): https://cdn/x.js'],
  );
  assert.deepEqual(reportProblems({ ...base, charts: [], images: [] }), ['no chart rendered']);
  assert.deepEqual(
    reportProblems({ ...base, dialogs: ['alert: 1'], unsafe: ['<img onerror>'], charts: [{ kind: 'svg', marks: 3, markTypes: ['line'], rendered: true }], images: [] }),
    ['the page opened 1 dialog(s) (a script ran): alert: 1', '1 element(s) could run script: <img onerror>'],
  );
});

const python = '/usr/bin/python3';
const hasNotebook = fs.existsSync(python) && spawnSync(python, ['-c', 'import notebook, nbconvert'], { stdio: 'ignore' }).status === 0;
const noJupyter = noChromium || (hasNotebook ? false : `${python} cannot import notebook and nbconvert (apt-get install jupyter-notebook jupyter-nbconvert)`);

test('an executed (unsigned) results notebook shows its charts in the classic Notebook server', { skip: noJupyter, timeout: 90_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-jupyter-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = await makeFixtureRun(path.join(dir, 'run'));
  const nbDir = path.join(dir, 'notebooks');
  fs.mkdirSync(nbDir);
  fs.copyFileSync(files[1], path.join(nbDir, '05-results.ipynb'));
  const port = await freePort();
  const token = crypto.randomBytes(16).toString('hex');
  // The project's kernel folder on JUPYTER_PATH (the JUPYTER stage's ensureKernel registers tslab there);
  // config and runtime folders of our own so nothing of the user's is read or written.
  try {
    ensureKernel({ quiet: true });
  } catch {
    // without the kernel spec the page still renders the saved outputs (it says the kernel is missing)
  }
  const env = jupyterEnv({ JUPYTER_CONFIG_DIR: path.join(dir, 'config'), JUPYTER_RUNTIME_DIR: path.join(dir, 'runtime'), JUPYTER_DATA_DIR: path.join(dir, 'data') });
  // Left unsigned, as the headless runner writes it: the classic Notebook ignores image/svg+xml
  // in untrusted notebooks, so the chart must come through its sanitized text/html form.
  let log = '';
  const server = spawn(
    python,
    ['-m', 'notebook', ...(process.getuid?.() === 0 ? ['--allow-root'] : []), '--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0', `--NotebookApp.token=${token}`, `--notebook-dir=${nbDir}`],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stdout!.on('data', (d) => (log += d));
  server.stderr!.on('data', (d) => (log += d));
  const browser = await launchChromium();
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitForServer(`${base}/api/status?token=${token}`, server, () => log, 45);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Only the local server may be reached: anything else (CDNs) is answered as failed at once.
    await context.route((url) => !url.href.startsWith(base), (route) => route.abort());
    const page = await context.newPage();
    await page.goto(`${base}/notebooks/05-results.ipynb?token=${token}`, { waitUntil: 'domcontentloaded', timeout: 45_000 });
    // a chart shows as inline SVG or, from its text/html form, as an <img> of the SVG
    await page.waitForSelector('#notebook .output_area svg .role-mark, #notebook .output_area img[src^="data:image/svg+xml"]', { state: 'attached', timeout: 45_000 });
    await page.waitForLoadState('load');
    const inNotebook = await inspectRendered(page, '#notebook');
    await page.screenshot({ path: path.join(dir, 'run', 'notebook-05.png') });
    assert.equal(inNotebook.charts.length, 2, 'both charts render in the Notebook UI');
    for (const c of inNotebook.charts) assert.ok(c.marks > 0 && c.rendered, JSON.stringify(c));
    // (the fixture's deliberately broken file:// image is the one image expected not to load)
    assert.deepEqual(inNotebook.images.filter((i) => i.src.startsWith('data:') && i.naturalWidth === 0), []);

    await context.close();
  } finally {
    await browser.close();
    await stopServer(server);
  }
});

/**
 * Debian's nbconvert 6.5 passes image/svg+xml outputs through its HTML cleaner, which strips every
 * SVG element (jupyter/nbconvert#1849, #1894), so a chart survives `jupyter nbconvert --to html`
 * only through the text/html form (an <img> of the SVG) that display.chart adds to its bundle.
 */
test('charts survive `jupyter nbconvert --to html` (Jupyter\'s own export) and render in Chromium', { skip: noJupyter, timeout: 60_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-nbconvert-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = await makeFixtureRun(path.join(dir, 'run'));
  const r = spawnSync(python, ['-m', 'nbconvert', '--to', 'html', files[1], '--output-dir', dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const browser = await launchChromium();
  try {
    const page = await (await browser.newContext({ offline: true })).newPage();
    await page.goto(`file://${path.join(dir, '05-results.html')}`, { waitUntil: 'domcontentloaded', timeout: 30_000 });
    const exported = await inspectRendered(page);
    assert.equal(exported.charts.length, 2, 'both charts are drawn (with marks) in the nbconvert HTML');
    for (const c of exported.charts) assert.ok(c.marks > 0 && c.rendered, JSON.stringify(c));
  } finally {
    await browser.close();
  }
});
