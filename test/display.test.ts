import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import * as pl from 'nodejs-polars';
import * as display from '../src/display';
import { spawnSync } from 'node:child_process';

const barSpec = {
  title: 'counts',
  data: { values: [{ k: 'cat', n: 3 }, { k: 'dog', n: 5 }, { k: 'frog', n: 2 }] },
  mark: 'bar',
  encoding: { x: { field: 'k', type: 'nominal' }, y: { field: 'n', type: 'quantitative' } },
} as const;

test('chartSvg renders a bar chart to SVG with one rect mark per bar', async () => {
  const svg = await display.chartSvg(barSpec as display.TopLevelSpec);
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /role-mark/);
  const marks = svg.match(/<g class="mark-rect role-mark[^"]*"[^>]*>(.*?)<\/g>/s);
  assert.ok(marks, 'a rect mark group');
  assert.equal((marks[1].match(/<path /g) ?? []).length, 3, 'three bars');
  for (const k of ['cat', 'dog', 'frog']) assert.ok(svg.includes(`>${k}<`), `axis label ${k}`);
});

test('chartBundle carries both the SVG and the Vega-Lite spec', async () => {
  const b = await display.chartBundle(barSpec as display.TopLevelSpec);
  assert.match(String(b['image/svg+xml']), /<svg/);
  assert.deepEqual(b['application/vnd.vegalite.v5+json'], barSpec);
  // text/html holds the same SVG as a data-URI image (what survives nbconvert's HTML export).
  const m = String(b['text/html']).match(/^<img src="data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)" alt="counts"\/>$/);
  assert.ok(m, String(b['text/html']).slice(0, 80));
  assert.equal(Buffer.from(m[1], 'base64').toString('utf8'), b['image/svg+xml']);
});

test('an invalid spec is reported by its title', async () => {
  await assert.rejects(display.chartSvg({ title: 'broken', mark: 'nonsense' } as unknown as display.TopLevelSpec), /broken/);
});

test('tableHtml shows every row of a polars DataFrame and of row objects, escaped', () => {
  const df = pl.DataFrame({ cls: ['airplane', 'a<b'], count: [5000, 1000], frac: [0.123456789, 0.5] });
  const h = display.tableHtml(df);
  assert.equal((h.match(/<tr>/g) ?? []).length, 3, 'header + 2 rows');
  assert.match(h, /<th>cls<\/th><th>count<\/th><th>frac<\/th>/);
  assert.match(h, /<td>airplane<\/td><td style="text-align:right">5000<\/td><td style="text-align:right">0.1235<\/td>/);
  assert.ok(h.includes('a&lt;b') && !h.includes('a<b'));
  const rows = display.tableHtml([{ a: 1 }, { a: 2, b: 'x' }]);
  assert.match(rows, /<th>a<\/th><th>b<\/th>/);
  assert.match(rows, /<td style="text-align:right">2<\/td><td>x<\/td>/);
});

test('tableHtml cuts long tables and says how many rows were left out', () => {
  const rows = Array.from({ length: 120 }, (_, i) => ({ i }));
  const h = display.tableHtml(rows, { maxRows: 10 });
  assert.equal((h.match(/<tr>/g) ?? []).length, 11);
  assert.match(h, /110 more rows not shown \(120 in all\)/);
});

test('pngDataUri decodes back to the same pixels', () => {
  const w = 3, h = 2;
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
  const uri = display.pngDataUri(rgb, w, h);
  assert.match(uri, /^data:image\/png;base64,/);
  const png = PNG.sync.read(Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64'));
  assert.equal(png.width, w);
  assert.equal(png.height, h);
  for (let p = 0; p < w * h; p++) {
    assert.deepEqual([...png.data.subarray(p * 4, p * 4 + 3)], [...rgb.subarray(p * 3, p * 3 + 3)], `pixel ${p}`);
    assert.equal(png.data[p * 4 + 3], 255);
  }
});

test('pngDataUri rejects a buffer of the wrong size, naming the expected size', () => {
  assert.throws(() => display.pngDataUri(new Uint8Array(10), 2, 2), /expected 12 bytes \(RGB 2x2\)/);
});

test('imageGridHtml holds one data-URI <img> per item, with captions', () => {
  const img = { rgb: new Uint8Array(4 * 4 * 3).fill(200), width: 4, height: 4 };
  const h = display.imageGridHtml([{ ...img, caption: 'cat' }, { ...img, caption: 'dog' }], { columns: 2, scale: 5 });
  assert.equal((h.match(/<img src="data:image\/png;base64,/g) ?? []).length, 2);
  assert.match(h, /width="20" height="20"/);
  assert.match(h, /<figcaption[^>]*>dog<\/figcaption>/);
  assert.match(h, /repeat\(2,/);
  assert.throws(() => display.imageGridHtml([img, { ...img, rgb: new Uint8Array(5) }]), /imageGrid item 1/);
});

test('outside a kernel the helpers print text and do not throw', async () => {
  assert.equal(display.inKernel(), false);
  const written: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (written.push(String(s)), true)) as typeof process.stdout.write;
  try {
    await display.chart(barSpec as display.TopLevelSpec);
    display.table([{ a: 1 }]);
    display.imageGrid([{ rgb: new Uint8Array(3), width: 1, height: 1 }]);
    display.html('<b>bold</b>');
    display.markdown('# title');
    const l = display.live();
    assert.equal(l.rich, false);
    l.html('<p>x</p>');
    l.text('epoch 1');
    await l.chart(barSpec as display.TopLevelSpec);
  } finally {
    process.stdout.write = orig;
  }
  const out = written.join('');
  assert.match(out, /\[chart\] counts/);
  assert.match(out, /a\n-\n1/);
  assert.match(out, /\[image grid\] 1 images/);
  assert.match(out, /bold/);
  assert.match(out, /epoch 1/);
});

test('inside a kernel one display_data carries every mime type, and live() updates by id', async () => {
  // Stand in for tslab's jupyter module the way the kernel leaves it in the require cache.
  const fakeFile = require('node:path').join(__dirname, 'fake', 'node_modules', 'tslab', 'dist', 'jupyter.js');
  const sent: { msg: { data: Record<string, unknown>; transient: { display_id?: string } }; update: boolean }[] = [];
  const Module = require('node:module');
  const mod = new Module(fakeFile);
  mod.filename = fakeFile;
  mod.loaded = true;
  mod.exports = { lastWriteDisplayData: (msg: never, update: boolean) => sent.push({ msg, update }) };
  require.cache[fakeFile] = mod;
  try {
    assert.equal(display.inKernel(), true);
    await display.chart(barSpec as display.TopLevelSpec);
    assert.equal(sent.length, 1);
    assert.deepEqual(Object.keys(sent[0].msg.data).sort(), ['application/vnd.vegalite.v5+json', 'image/svg+xml', 'text/html', 'text/plain']);
    display.table(pl.DataFrame({ a: [1, 2] }));
    assert.match(String(sent[1].msg.data['text/html']), /<table/);
    const l = display.live();
    l.html('<p>epoch 1</p>');
    l.html('<p>epoch 2</p>');
    assert.equal(sent[2].update, false);
    assert.equal(sent[3].update, true);
    assert.equal(sent[2].msg.transient.display_id, l.id);
    assert.equal(sent[3].msg.transient.display_id, l.id);
  } finally {
    delete require.cache[fakeFile];
  }
  assert.equal(display.inKernel(), false);
});

test('the first chart of a process prints no Node warning (vega-loader loads node-fetch 2, which requires the deprecated punycode: DEP0040 on Node 22)', () => {
  const module = require.resolve('../src/display');
  const spec = { $schema: display.VEGA_LITE_SCHEMA, data: { values: [{ a: 1, b: 2 }] }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' } } };
  const script = `require(${JSON.stringify(module)}).chartSvg(${JSON.stringify(spec)}).then((svg) => console.log(svg.startsWith('<svg') ? 'svg' : 'no svg'))`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'svg');
  assert.doesNotMatch(r.stderr, /Warning/, r.stderr);
});
