import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { featureBatches, RowBuffers, type FeatureSet } from '../../src/train/feature-cache';

test('RowBuffers: a buffer is reused once its tensor is disposed, not while the backend holds its data', () => {
  const buffers = new RowBuffers();
  const seen: Float32Array[] = [];
  const make = (value: number) => buffers.tensor([2, 3], (b) => (seen.push(b), b.fill(value)));
  const a = make(1);
  const b = make(2); // a is alive: another buffer
  assert.notEqual(seen[1], seen[0]);
  assert.deepEqual(Array.from(a.dataSync()), [1, 1, 1, 1, 1, 1], 'the first tensor kept its values');
  const view = tf.reshape(a, [6]); // shares a's data
  a.dispose();
  const c = make(3); // a's data is still held by the view: not reused
  assert.notEqual(seen[2], seen[0]);
  assert.deepEqual(Array.from(view.dataSync()), [1, 1, 1, 1, 1, 1], 'a tensor sharing the data kept its values');
  view.dispose();
  const d = make(4); // now free
  assert.equal(seen[3], seen[0]);
  assert.deepEqual(Array.from(b.dataSync()), [2, 2, 2, 2, 2, 2]);
  assert.deepEqual(Array.from(c.dataSync()), [3, 3, 3, 3, 3, 3]);
  assert.deepEqual(Array.from(d.dataSync()), [4, 4, 4, 4, 4, 4]);
  tf.dispose([b, c, d]);
});

test('RowBuffers: past its limit it allocates without keeping the buffer', () => {
  const buffers = new RowBuffers(1);
  const seen: Float32Array[] = [];
  const a = buffers.tensor([4], (b) => (seen.push(b), b.fill(1)));
  const b = buffers.tensor([4], (b) => (seen.push(b), b.fill(2)));
  b.dispose();
  const c = buffers.tensor([4], (b) => (seen.push(b), b.fill(3)));
  assert.notEqual(seen[2], seen[1], 'the unpooled buffer was not kept');
  assert.deepEqual(Array.from(a.dataSync()), [1, 1, 1, 1]);
  tf.dispose([a, c]);
});

test('featureBatches: the rows and labels of the order, in batches, with reused buffers', () => {
  const set: FeatureSet = { features: Float32Array.from({ length: 5 * 2 }, (_, i) => i), labels: Uint8Array.from([0, 1, 2, 0, 1]), count: 5, dims: 2, shape: [2] };
  const rows: number[][] = [];
  const labels: number[] = [];
  const before = tf.memory().numTensors;
  for (const b of featureBatches(set, 2, [4, 0, 3, 1, 2], 3)) {
    rows.push(...(b.xs.arraySync() as number[][]));
    labels.push(...tf.tidy(() => b.ys.argMax(-1).arraySync() as number[]));
    tf.dispose([b.xs, b.ys]);
  }
  assert.deepEqual(rows, [[8, 9], [0, 1], [6, 7], [2, 3], [4, 5]]);
  assert.deepEqual(labels, [1, 0, 0, 1, 2]);
  assert.equal(tf.memory().numTensors, before);
});
