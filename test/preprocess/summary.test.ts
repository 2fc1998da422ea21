import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { chartSvg } from '../../src/display';
import { classCountChart, classCountTable, describeDataset, sampleImages } from '../../src/data/summary';
import { Dataset, ImageSet } from '../../src/data/types';
import { Random } from '../../src/random';
import { channelStats, preprocessStats } from '../../src/preprocess/stats';
import { augmentationPreview, channelHistogram, histogramSpec, preprocessHistogram, splitTable, statsTable } from '../../src/preprocess/summary';
import { splitTrainVal } from '../../src/preprocess/split';

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

/** n 4x4 images, each a flat colour [10 * (i % 3), 100, 200]; label i % 3. */
function flatSet(n: number): ImageSet {
  const images = new Uint8Array(n * 48);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 3;
    for (let p = 0; p < 16; p++) images.set([10 * (i % 3), 100, 200], i * 48 + p * 3);
  }
  return { images, labels, count: n, height: 4, width: 4 };
}
const dataset = (): Dataset => ({ name: 'toy', classes: ['x', 'y', 'z'], train: flatSet(9), test: flatSet(4), source: '/toy' });

test('channelStats and preprocessStats: known means, ranges, channel names after caffe', async () => {
  const before = tf.memory().numTensors;
  const x = tf.tensor4d([0, 100, 200, 20, 100, 200], [2, 1, 1, 3]);
  const s = await channelStats(x, ['R', 'G', 'B'], 'raw');
  assert.deepEqual(s[0], { stage: 'raw', channel: 'R', mean: 10, std: 10, min: 0, max: 20 });
  assert.equal(s[2].std, 0);
  x.dispose();
  const both = await preprocessStats(flatSet(3), 'caffe', 3);
  assert.deepEqual(both.map((r) => `${r.stage}/${r.channel}`), ['raw 0..255/R', 'raw 0..255/G', 'raw 0..255/B', 'after caffe/B', 'after caffe/G', 'after caffe/R']);
  assert.ok(Math.abs(both[3].mean - (200 - 103.939)) < 1e-3);
  assert.ok(Math.abs(both[5].mean - (10 - 123.68)) < 1e-3);
  assert.equal(tf.memory().numTensors, before, 'no tensor leak');
  const table = statsTable(both);
  assert.deepEqual(table.columns, ['stage', 'channel', 'mean', 'std', 'min', 'max']);
  assert.equal(table.height, 6);
});

test('histograms: counts add up per channel; the spec renders to SVG', async () => {
  const rows = channelHistogram([0, 10, 20, 255, 10, 20], ['R', 'G', 'B'], 's', 4);
  assert.equal(rows.length, 12);
  assert.equal(rows.filter((r) => r.channel === 'R').reduce((a, r) => a + r.count, 0), 2);
  assert.equal(rows.find((r) => r.channel === 'R' && r.from === 0)!.count, 1);
  const before = tf.memory().numTensors;
  const hist = await preprocessHistogram(flatSet(5), 'unit', 5, 8);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(hist.length, 2 * 3 * 8);
  assert.equal(hist.filter((r) => r.stage === 'after unit').reduce((a, r) => a + r.count, 0), 5 * 16 * 3);
  const svg = await chartSvg(histogramSpec(hist));
  assert.match(svg, /^<svg/);
});

test('class counts: description, polars table with totals, chart spec that renders', async () => {
  const ds = dataset();
  const d = describeDataset(ds);
  assert.deepEqual(d.train, { count: 9, perClass: [3, 3, 3], firstLabels: [0, 1, 2, 0, 1, 2, 0, 1, 2] });
  const table = classCountTable(ds);
  assert.deepEqual(table.columns, ['class', 'train', 'test']);
  assert.deepEqual(table.toRecords().at(-1), { class: 'total', train: 9, test: 4 });
  const spec = classCountChart(ds);
  assert.equal((spec as { data: { values: unknown[] } }).data.values.length, 6);
  assert.match(await chartSvg(spec), /<svg[\s\S]*<\/svg>/);
  const split = splitTrainVal(ds.train, 1 / 3, 1);
  assert.deepEqual(splitTable(ds, split).columns, ['class', 'train', 'val', 'test']);
});

test('image grids: samples per class in class order; augmentation preview pairs originals with copies', () => {
  const ds = dataset();
  const items = sampleImages(ds, 2);
  assert.deepEqual(items.map((i) => i.caption), ['x', 'x', 'y', 'y', 'z', 'z']);
  assert.deepEqual(Array.from(items[2].rgb.subarray(0, 3)), [0, 100, 200].map((v, i) => (i === 0 ? 10 : v)));
  const preview = augmentationPreview(ds.train, [0, 1], new Random(5), ds.classes, 2);
  assert.equal(preview.length, 6);
  assert.equal(preview[0].caption, 'x (original)');
  assert.equal(preview[2].caption, 'x (augmented)');
  assert.equal(preview[2].rgb.length, 48);
});
