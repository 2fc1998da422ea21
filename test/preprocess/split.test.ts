import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImageSet } from '../../src/data/types';
import { splitTrainVal } from '../../src/preprocess/split';

/** n 2x2 images whose first byte is the image index (mod 256), labels index % 10. */
export function numberedSet(n: number, side = 2): ImageSet {
  const bytes = side * side * 3;
  const images = new Uint8Array(n * bytes);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    images.fill(i & 0xff, i * bytes, (i + 1) * bytes);
    labels[i] = i % 10;
  }
  return { images, labels, count: n, height: side, width: side };
}

test('splitTrainVal: the same seed gives the same split; parts are disjoint, cover the set, keep order', () => {
  const set = numberedSet(200);
  const a = splitTrainVal(set, 0.1, 42);
  const b = splitTrainVal(set, 0.1, 42);
  assert.equal(a.val.count, 20);
  assert.equal(a.train.count, 180);
  assert.deepEqual(a.valIndices, b.valIndices);
  assert.deepEqual(a.val.images, b.val.images);
  const all = [...a.trainIndices, ...a.valIndices].sort((x, y) => x - y);
  assert.deepEqual(all, Array.from({ length: 200 }, (_, i) => i));
  assert.ok(a.valIndices.every((v, i) => i === 0 || v > a.valIndices[i - 1]), 'ascending');
  // The copied images and labels are the ones the indices name.
  a.valIndices.forEach((j, i) => {
    assert.equal(a.val.labels[i], j % 10);
    assert.equal(a.val.images[i * 12], j);
  });
  const c = splitTrainVal(set, 0.1, 43);
  assert.notDeepEqual(Array.from(c.valIndices), Array.from(a.valIndices));
});

test('splitTrainVal: a zero fraction holds nothing out; bad fractions are rejected', () => {
  const set = numberedSet(10);
  const s = splitTrainVal(set, 0, 1);
  assert.equal(s.val.count, 0);
  assert.equal(s.train.count, 10);
  assert.throws(() => splitTrainVal(set, 1, 1), /valFraction should be in \[0, 1\)/);
});
