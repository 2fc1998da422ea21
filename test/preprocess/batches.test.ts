import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { ImageSet } from '../../src/data/types';
import { Random } from '../../src/random';
import { augmentImage, BatchStream, batches, batchCount, gatherImages } from '../../src/preprocess/batches';

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

/** n images of 8x8 whose pixel (y, x) holds [index, y * 8 + x, 7]; labels index % 3. */
function patternSet(n: number, side = 8): ImageSet {
  const images = new Uint8Array(n * side * side * 3);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 3;
    for (let p = 0; p < side * side; p++) images.set([i, p, 7], (i * side * side + p) * 3);
  }
  return { images, labels, count: n, height: side, width: side };
}

/** A Random whose draws are scripted: int() returns the queued integers, next() the queued fractions. */
function scripted(ints: number[], fractions: number[]): Random {
  return { int: () => ints.shift()!, next: () => fractions.shift()! } as unknown as Random;
}

test('augmentImage: a 4-pixel-padded crop shifts with zeros at the uncovered border, then flips', () => {
  const set = patternSet(1);
  const out = new Uint8Array(8 * 8 * 3);
  // int(9) = 6 -> dx = +2, int(9) = 3 -> dy = -1, next() = 0.9 -> no flip.
  augmentImage(set, 0, scripted([6, 3], [0.9]), out, 0);
  const at = (y: number, x: number) => Array.from(out.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3));
  assert.deepEqual(at(0, 0), [0, 0, 0], 'row 0 comes from the padding above');
  assert.deepEqual(at(1, 0), [0, 0 * 8 + 2, 7], 'output (1,0) shows input (0,2)');
  assert.deepEqual(at(5, 3), [0, 4 * 8 + 5, 7]);
  assert.deepEqual(at(3, 6), [0, 0, 0], 'columns past the right edge are padding');
  // Flip: output column x shows the cropped column 7 - x.
  augmentImage(set, 0, scripted([4, 4], [0.1]), out, 0);
  assert.deepEqual(at(2, 0), [0, 2 * 8 + 7, 7]);
  assert.deepEqual(at(2, 7), [0, 2 * 8 + 0, 7]);
});

test('one epoch: shapes, one-hot labels, every image exactly once, a smaller last batch', () => {
  const set = patternSet(10);
  const seen: number[] = [];
  let n = 0;
  for (const b of batches(set, { batchSize: 4, shuffle: true, rng: new Random(3), mode: 'none', numClasses: 3 })) {
    const size = b.indices.length;
    assert.deepEqual(b.xs.shape, [size, 8, 8, 3]);
    assert.equal(b.xs.dtype, 'float32');
    assert.deepEqual(b.ys.shape, [size, 3]);
    const xs = b.xs.dataSync();
    const ys = b.ys.dataSync();
    b.indices.forEach((j, i) => {
      assert.equal(xs[i * 192], j, 'the pixels are those of the named image');
      assert.equal(ys[i * 3 + (j % 3)], 1, 'the label row is hot at the image class');
    });
    seen.push(...b.indices);
    tf.dispose([b.xs, b.ys]);
    n++;
  }
  assert.equal(n, 3);
  assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'shuffled');
  assert.equal(batchCount(10, 4, true), 2);
  assert.equal(new BatchStream(set, { batchSize: 4, mode: 'none', numClasses: 3, dropRemainder: true }).length, 2);
});

test('batches are preprocessed (caffe) and label-smoothed when asked', () => {
  const set = patternSet(2);
  const [b] = [...batches(set, { batchSize: 2, mode: 'caffe', numClasses: 3, labelSmoothing: 0.3 })];
  const xs = b.xs.dataSync();
  // Image 1, pixel 0 holds RGB [1, 0, 7] -> BGR minus means.
  const at = 192;
  assert.ok(Math.abs(xs[at] - (7 - 103.939)) < 1e-4);
  assert.ok(Math.abs(xs[at + 2] - (1 - 123.68)) < 1e-4);
  assert.ok(Math.abs(b.ys.dataSync()[3 + 1] - 0.8) < 1e-6);
  tf.dispose([b.xs, b.ys]);
});

function epochDigest(stream: BatchStream): number[] {
  const out: number[] = [];
  for (const b of stream) {
    out.push(...b.indices, ...Array.from(b.xs.dataSync()).filter((_, i) => i % 37 === 0));
    tf.dispose([b.xs, b.ys]);
  }
  return out;
}

test('augmentation and order are determined by the seed, and resume from rng.state', () => {
  const set = patternSet(12);
  const opts = { batchSize: 5, shuffle: true, augment: true, mode: 'unit' as const, numClasses: 3 };
  const a = new Random(7);
  const streamA = new BatchStream(set, { ...opts, rng: a });
  const first = epochDigest(streamA);
  const saved = a.state;
  const secondA = epochDigest(streamA);
  assert.notDeepEqual(secondA, first, 'each epoch draws a new order and new crops');
  const b = new Random(7);
  assert.deepEqual(epochDigest(new BatchStream(set, { ...opts, rng: b })), first, 'same seed, same epoch');
  assert.deepEqual(epochDigest(new BatchStream(set, { ...opts, rng: new Random(saved) })), secondA, 'resumed from the saved state');
  // Unaugmented batches are the stored pixels; augmented ones differ for some image.
  const plain = gatherImages(set, [0, 1, 2]);
  const augmented = gatherImages(set, [0, 1, 2], new Random(1));
  assert.deepEqual(Array.from(plain.subarray(0, 3)), [0, 0, 7]);
  assert.notDeepEqual(augmented, plain);
});

test('lazy: no tensor exists before a batch is asked for; a full epoch leaks none', () => {
  const set = patternSet(9);
  const before = tf.memory().numTensors;
  const it = batches(set, { batchSize: 4, shuffle: true, augment: true, rng: new Random(1), mode: 'caffe', numClasses: 3 });
  assert.equal(tf.memory().numTensors, before);
  const first = it.next();
  assert.equal(first.done, false);
  assert.equal(tf.memory().numTensors, before + 2, 'exactly xs and ys');
  if (!first.done) tf.dispose([first.value.xs, first.value.ys]);
  for (const b of it) tf.dispose([b.xs, b.ys]);
  assert.equal(tf.memory().numTensors, before);
});

test('bad options are rejected up front', () => {
  const set = patternSet(2);
  assert.throws(() => new BatchStream(set, { batchSize: 0, mode: 'none', numClasses: 3 }), /batchSize/);
  assert.throws(() => new BatchStream(set, { batchSize: 2, shuffle: true, mode: 'none', numClasses: 3 }), /seeded rng/);
});
