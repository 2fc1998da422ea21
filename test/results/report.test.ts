import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeReport, sanitizeFragment, assertSelfContained, scopeSvgIds, renderNotebook, stripAnsi } from '../../src/results/report';
import { projectRoot } from '../../src/config';
import { makeFixtureRun } from './fixtures';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-report-'));
}

test('writeReport: one page with every notebook in order, a table of contents, charts and images inline', async (t) => {
  const run = tmp();
  t.after(() => fs.rmSync(run, { recursive: true, force: true }));
  await makeFixtureRun(run);
  const out = await writeReport(run);
  assert.equal(out, path.join(run, 'report.html'));
  const html = fs.readFileSync(out, 'utf8');
  // order and contents
  assert.ok(html.indexOf('data-notebook="01-fetch.ipynb"') < html.indexOf('data-notebook="05-results.ipynb"'));
  assert.match(html, /<nav class="toc"[\s\S]*href="#nb-01-fetch">01 Fetch the data<\/a>[\s\S]*href="#nb-05-results">05 Results<\/a>/);
  assert.match(html, /href="#nb-05-results-confusion-matrix">Confusion matrix</);
  assert.match(html, /<h2 id="nb-05-results-confusion-matrix">/);
  assert.match(html, /\(1 error\)/);
  // two charts as inline SVG with marks, their ids scoped apart
  const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 2);
  assert.match(svgs[0], /mark-line/);
  assert.match(svgs[1], /mark-rect/);
  // images: grid PNGs, the PNG output, the relative markdown image, all data: URIs
  const imgs = [...html.matchAll(/<img\b[^>]*src="([^"]*)"/g)].map((m) => m[1]);
  assert.equal(imgs.length, 3 + 1 + 1);
  for (const src of imgs) assert.match(src, /^data:image\/png;base64,/);
  // external things are gone, links stay
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /cdn\.example\.com/);
  assert.doesNotMatch(html, /remote\.png"/);
  assert.match(html, /\[image not embedded: remote\]/);
  assert.match(html, /\[image not embedded: gone\]/);
  assert.match(html, /<a href="https:\/\/www\.cs\.toronto\.edu\/~kriz\/cifar\.html">article<\/a>/);
  assert.doesNotMatch(html, /url\(https/);
  // text outputs: progress bar collapsed, ANSI codes stripped
  assert.match(html, /progress 100%/);
  assert.doesNotMatch(html, /progress 10%/);
  assert.match(html, /Error: boom/);
  assert.ok(!html.includes('\u001b'), 'no ANSI escape left');
  assert.doesNotThrow(() => assertSelfContained(html));
});

test('writeReport refuses a run without executed notebooks, naming the folder', async () => {
  const run = tmp();
  await assert.rejects(writeReport(run), new RegExp(`${path.join(run, 'notebooks')}: no executed notebooks`));
  fs.mkdirSync(path.join(run, 'notebooks'));
  fs.writeFileSync(path.join(run, 'notebooks', '01-x.ipynb'), '{"nbformat": 3}');
  await assert.rejects(writeReport(run), /01-x.ipynb: expected an nbformat 4 notebook/);
  fs.rmSync(run, { recursive: true });
});

test('sanitizeFragment and assertSelfContained: what a browser would fetch is inlined or dropped', () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'a.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  const out = sanitizeFragment(
    '<p><img src="a.png" alt="x"><img src="https://e.com/b.png"><a href="https://e.com">e</a>' +
      '<iframe src="https://e.com"></iframe><source srcset="https://e.com/c.png 2x"><use xlink:href="#g"/></p>',
    { baseDirs: [dir] },
  );
  assert.match(out, /<img src="data:image\/png;base64,iVBORw==" alt="x">/);
  assert.match(out, /\[image not embedded\]/);
  assert.match(out, /<a href="https:\/\/e.com">/);
  assert.doesNotMatch(out, /iframe|srcset/);
  assert.match(out, /xlink:href="#g"/);
  assert.doesNotThrow(() => assertSelfContained(out));
  assert.throws(() => assertSelfContained('<link rel="stylesheet" href="x.css">'), /1 external resource/);
  assert.throws(() => assertSelfContained('<img src="https://e.com/x.png">'), /https:\/\/e.com\/x.png/);
  assert.throws(() => assertSelfContained('<div style="background: url(file:///x.png)"></div>'), /url\(file/);
  assert.doesNotThrow(() => assertSelfContained('<pre><code>new URL(&quot;https://x&quot;)</code></pre>'));
  fs.rmSync(dir, { recursive: true });
});

test('scopeSvgIds keeps each chart\'s clip paths its own', () => {
  const svg = '<svg><defs><clipPath id="clip1"><rect/></clipPath></defs><g clip-path="url(#clip1)"></g><use href="#clip1"/><g fill="url(#other)"/></svg>';
  const a = scopeSvgIds(svg, 'a-');
  assert.match(a, /id="a-clip1"/);
  assert.match(a, /url\(#a-clip1\)/);
  assert.match(a, /href="#a-clip1"/);
  assert.match(a, /url\(#other\)/, 'references to ids the SVG does not define are left alone');
  assert.equal(stripAnsi('\u001b[1;31mred\u001b[0m'), 'red');
});

test('renderNotebook inlines markdown attachments', () => {
  const dir = tmp();
  const file = path.join(dir, '01-a.ipynb');
  fs.writeFileSync(file, JSON.stringify({
    nbformat: 4, nbformat_minor: 5, metadata: {},
    cells: [{ cell_type: 'markdown', metadata: {}, source: '# A\n![pic](attachment:p.png)', attachments: { 'p.png': { 'image/png': 'iVBORw0KGgo=' } } }],
  }));
  const r = renderNotebook(file);
  assert.equal(r.title, 'A');
  assert.match(r.html, /<img src="data:image\/png;base64,iVBORw0KGgo=" alt="pic">/);
  fs.rmSync(dir, { recursive: true });
});

test('cli report writes the newest run\'s report and prints its path', async (t) => {
  const data = tmp();
  t.after(() => fs.rmSync(data, { recursive: true, force: true }));
  const older = path.join(data, 'runs', '20260101-000000-fixture');
  const newer = path.join(data, 'runs', '20260102-000000-fixture');
  await makeFixtureRun(older);
  await makeFixtureRun(newer);
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'report'], { encoding: 'utf8', env: { ...process.env, TLWB_DATA_DIR: data } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), path.join(newer, 'report.html'));
  assert.ok(!fs.existsSync(path.join(older, 'report.html')));
  const r2 = spawnSync(process.execPath, [cli, 'report', '--run', older, '--json'], { encoding: 'utf8', env: { ...process.env, TLWB_DATA_DIR: data } });
  assert.equal(r2.status, 0, r2.stderr);
  assert.deepEqual(JSON.parse(r2.stdout), { runDir: older, report: path.join(older, 'report.html') });
  const r3 = spawnSync(process.execPath, [cli, 'report', '--run', path.join(data, 'nope')], { encoding: 'utf8' });
  assert.equal(r3.status, 1);
  assert.match(r3.stderr, /--run .*nope: no such folder/);
});
