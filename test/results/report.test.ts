import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseDocument, DomUtils } from 'htmlparser2';
import { writeReport, sanitizeFragment, assertSelfContained, scopeSvgIds, renderNotebook, stripAnsi, escapeHtml, htmlViolations, cleanCss } from '../../src/results/report';
import { projectRoot } from '../../src/config';
import { makeFixtureRun, makeHostileRun, HOSTILE_CLASSES } from './fixtures';

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

test('writeReport refuses a run without executed notebooks, naming the folder', async (t) => {
  const run = tmp();
  t.after(() => fs.rmSync(run, { recursive: true, force: true }));
  await assert.rejects(writeReport(run), new RegExp(`${path.join(run, 'notebooks')}: no executed notebooks`));
  fs.mkdirSync(path.join(run, 'notebooks'));
  fs.writeFileSync(path.join(run, 'notebooks', '01-x.ipynb'), '{"nbformat": 3}');
  await assert.rejects(writeReport(run), /01-x.ipynb: expected an nbformat 4 notebook/);
});

test('sanitizeFragment and assertSelfContained: what a browser would fetch is inlined or dropped', (t) => {
  const dir = tmp();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'a.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  const out = sanitizeFragment(
    '<p><img src="a.png" alt="x"><img src="https://e.com/b.png"><a href="https://e.com">e</a>' +
      '<iframe src="https://e.com"></iframe><source srcset="https://e.com/c.png 2x"><use xlink:href="#g"/></p>',
    { baseDirs: [dir] },
  );
  assert.match(out, /<img src="data:image\/png;base64,iVBORw==" alt="x" \/>/);
  assert.match(out, /\[image not embedded\]/);
  assert.match(out, /<a href="https:\/\/e.com">/);
  assert.doesNotMatch(out, /iframe|srcset/);
  assert.match(out, /xlink:href="#g"/);
  assert.doesNotThrow(() => assertSelfContained(out));
  assert.throws(() => assertSelfContained('<link rel="stylesheet" href="x.css">'), /1 unsafe or external item/);
  assert.throws(() => assertSelfContained('<img src="https://e.com/x.png">'), /https:\/\/e.com\/x.png/);
  assert.throws(() => assertSelfContained('<div style="background: url(file:///x.png)"></div>'), /url\(file/);
  assert.doesNotThrow(() => assertSelfContained('<pre><code>new URL(&quot;https://x&quot;)</code></pre>'));
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

test('renderNotebook inlines markdown attachments', (t) => {
  const dir = tmp();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, '01-a.ipynb');
  fs.writeFileSync(file, JSON.stringify({
    nbformat: 4, nbformat_minor: 5, metadata: {},
    cells: [{ cell_type: 'markdown', metadata: {}, source: '# A\n![pic](attachment:p.png)', attachments: { 'p.png': { 'image/png': 'iVBORw0KGgo=' } } }],
  }));
  const r = renderNotebook(file);
  assert.equal(r.title, 'A');
  assert.match(r.html, /<img src="data:image\/png;base64,iVBORw0KGgo=" alt="pic" \/>/);
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

test('issue 11: text that the escaper made safe stays text (src= inside an alt is not rewritten)', () => {
  const name = 'p src=data:, onload=alert(1) q';
  const out = sanitizeFragment(`<img src="data:image/png;base64,iVBORw0KGgo=" alt="${escapeHtml(name)}"/>`, { baseDirs: [] });
  const img = DomUtils.findOne((e) => e.name === 'img', parseDocument(out).children);
  assert.ok(img, out);
  assert.deepEqual(Object.keys(img.attribs).sort(), ['alt', 'src'], out);
  assert.equal(img.attribs.alt, name);
  assert.deepEqual(htmlViolations(out), []);
});

test('sanitizeFragment: scripts, handlers, script URLs, frames and forms never survive, in HTML or SVG', () => {
  const attacks = [
    '<script>alert(1)</script>', '<SCRIPT SRC=//x/y.js></SCRIPT>', '<img src=x onerror=alert(1)>', '<svg onload=alert(1)><rect/></svg>',
    '<svg><a xlink:href="javascript:alert(1)"><text>t</text></a></svg>', '<a href="jAvAsCrIpT:alert(1)">x</a>', '<a href=" java\tscript:alert(1)">x</a>',
    '<iframe src="data:text/html,<script>alert(1)</script>"></iframe>', '<form action="https://x"><button formaction="javascript:alert(1)">b</button></form>',
    '<svg><animate attributeName="href" to="javascript:alert(1)"/><set attributeName="onmouseover" to="alert(1)"/></svg>',
    '<svg><foreignObject><body onload=alert(1)></body></foreignObject></svg>', '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<div style="background:url(https://x/y.png)">s</div>', '<div style="background:u\\72l(https://x/y.png)">e</div>',
    '<div style="background-image:image-set(\'https://x/y.png\' 1x)">i</div>', '<div style="color:red;/**/background:url(//x)">c</div>', '<meta http-equiv="refresh" content="0;url=https://x">', '<base href="https://x/">',
    '<object data="https://x/y.swf"></object>', '<img src="https://x/y.png" alt="r">', '<svg><image href="https://x/y.png"/></svg>', '<style>@import "https://x/y.css";</style>',
    '<p title="</p><script>alert(1)</script>">t</p>', '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
  ];
  for (const a of attacks) {
    const out = sanitizeFragment(a, { baseDirs: [] });
    assert.deepEqual(htmlViolations(out), [], `${a} -> ${out}`);
    assert.doesNotMatch(out, /<script/i, `${a} -> ${out}`);
  }
  // and the checker sees each kind of problem in a page
  assert.match(htmlViolations('<p><script>1</script></p>').join(), /<script> element/);
  assert.match(htmlViolations('<img src="data:," onload="alert(1)">').join(), /onload.*event handler/);
  assert.match(htmlViolations('<a href=" javascript:alert(1)">x</a>').join(), /script URL/);
  assert.match(htmlViolations('<iframe></iframe>').join(), /<iframe> element/);
});

test('a report of class names holding markup: no handler, no script, the names shown as written, a CSP', async (t) => {
  const run = tmp();
  t.after(() => fs.rmSync(run, { recursive: true, force: true }));
  await makeHostileRun(run);
  const html = fs.readFileSync(await writeReport(run), 'utf8');
  assert.deepEqual(htmlViolations(html), []);
  const doc = parseDocument(html);
  const all = DomUtils.findAll(() => true, doc.children);
  assert.deepEqual(all.flatMap((e) => Object.keys(e.attribs).filter((a) => /^on/i.test(a)).map((a) => `${e.name} ${a}`)), []);
  const csp = all.find((e) => e.name === 'meta' && e.attribs['http-equiv'] === 'Content-Security-Policy');
  assert.match(csp?.attribs.content ?? '', /default-src 'none'; img-src data:/);
  const captions = all.filter((e) => e.name === 'figcaption').map((e) => DomUtils.textContent(e));
  assert.deepEqual(captions, HOSTILE_CLASSES);
  const alts = all.filter((e) => e.name === 'img').map((e) => e.attribs.alt);
  for (const c of HOSTILE_CLASSES) assert.ok(alts.includes(c), `alt ${c} in ${JSON.stringify(alts)}`);
  const cells = all.filter((e) => e.name === 'td').map((e) => DomUtils.textContent(e));
  for (const c of HOSTILE_CLASSES) assert.ok(cells.includes(c), `table cell ${c}`);
});

test('issue 25: the safety check judges URL attributes only: a class named javascript:alert(3) is text in alt/title, a script URL in href/src/action (<form>, <object> are refused whole)/formaction/xlink:href/poster/data/srcset/animate values is refused', () => {
  const name = 'javascript:alert(3)';
  assert.deepEqual(htmlViolations(`<figure><img src="data:image/png;base64,iVBORw0KGgo=" alt="${name}" title="${name}"><figcaption title="${name}">${name}</figcaption></figure><abbr title=" javascript:x">t</abbr>`), []);
  const urls: [string, string][] = [
    ['a', 'href'], ['img', 'src'], ['div', 'action'], ['button', 'formaction'], ['video', 'poster'], ['img', 'srcset'], ['q', 'cite'], ['a', 'ping'],
  ];
  for (const [tag, attr] of urls) assert.match(htmlViolations(`<${tag} ${attr}="${name}"></${tag}>`).join(), /script URL/, `${tag} ${attr}`);
  assert.match(htmlViolations(`<svg><a xlink:href="${name}"><text>x</text></a></svg>`).join(), /script URL/);
  assert.match(htmlViolations(`<svg><a><animate attributeName="href" values="${name}"/><text>x</text></a></svg>`).join(), /script URL/);
  assert.match(htmlViolations(`<svg><set attributeName="href" to="${name}"/></svg>`).join(), /script URL/);
});

test('the report of a diverged run says so at the top', async (t) => {
  const run = tmp();
  t.after(() => fs.rmSync(run, { recursive: true, force: true }));
  await makeFixtureRun(run);
  fs.writeFileSync(path.join(run, 'train-summary.json'), JSON.stringify({ status: 'diverged', diverged: { phase: 'head', epoch: 2, step: 17, reason: 'loss is NaN' } }));
  const html = fs.readFileSync(await writeReport(run), 'utf8');
  assert.match(html, /<div class="warning" role="alert"><strong>Warning: <\/strong>training diverged in phase head, epoch 2, step 17: loss is NaN\./);
  assert.ok(html.indexOf('class="warning"') < html.indexOf('<main>'));
});

test('cleanCss keeps layout and colour, drops whatever could load something', () => {
  assert.equal(cleanCss('display:grid;grid-template-columns:repeat(3,max-content);gap:4px'), 'display:grid;grid-template-columns:repeat(3,max-content);gap:4px');
  assert.equal(cleanCss('color: rgb(1, 2, 3); background:url(https://x/y.png)'), 'color: rgb(1, 2, 3)');
  assert.equal(cleanCss('background:u\\72l(https://x/y.png);margin:2px'), 'margin:2px');
  assert.equal(cleanCss('background-image:image-set("https://x/y.png" 1x)'), '');
  assert.equal(cleanCss('font-family:"a;b";color:red'), 'color:red');
  assert.match(htmlViolations('<div style="background-image:image-set(\'https://x\' 1x)"></div>').join(), /image-set/);
});

test('writeReport refuses a notebook holding another run\'s outputs, naming both runs', async (t) => {
  const run = path.join(tmp(), '20260101-000000-smoke');
  t.after(() => fs.rmSync(path.dirname(run), { recursive: true, force: true }));
  fs.mkdirSync(path.join(run, 'notebooks'), { recursive: true });
  const line = (id: string) => ({ output_type: 'display_data', data: { 'text/plain': `run data/runs/${id}` }, metadata: { tlwb: { run: id } } });
  const nb = (outputs: object[]) => JSON.stringify({
    nbformat: 4, nbformat_minor: 5, metadata: { tlwb: { run: path.basename(run) } },
    cells: [{ cell_type: 'code', source: 'await wb.session()', metadata: {}, execution_count: 1, outputs }],
  });
  const file = path.join(run, 'notebooks', '04-train.ipynb');
  fs.writeFileSync(file, nb([line(path.basename(run))]));
  const out = await writeReport(run);
  assert.ok(fs.existsSync(out), 'a notebook of its own run reports');
  fs.writeFileSync(file, nb([line(path.basename(run)), line('20260102-000000-smoke')]));
  await assert.rejects(writeReport(run), /04-train\.ipynb belongs to run 20260101-000000-smoke but holds outputs of another run: cell 1 \(run 20260102-000000-smoke\)/);
});
