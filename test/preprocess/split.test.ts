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

test('splitTrainVal stratified: every class gives its share (largest remainders), seeded, disjoint', () => {
  // 100 of class 0, 20 of class 1, 3 of class 2 (imbalanced, as users' folders are)
  const counts = [100, 20, 3];
  const labels = counts.flatMap((n, c) => new Array<number>(n).fill(c));
  const set: ImageSet = { ...numberedSet(labels.length), labels: Uint8Array.from(labels) };
  const s = splitTrainVal(set, 0.2, 7, { stratified: true });
  const perClass = (l: Uint8Array) => counts.map((_, c) => l.filter((x) => x === c).length);
  // 123 * 0.2 = 24.6 -> 25 held out: floors 20, 4, 0 (24) + one to class 2 (remainder 0.6).
  assert.deepEqual(perClass(s.val.labels), [20, 4, 1]);
  assert.deepEqual(perClass(s.train.labels), [80, 16, 2]);
  assert.equal(new Set([...s.trainIndices, ...s.valIndices]).size, set.count);
  assert.deepEqual(Array.from(splitTrainVal(set, 0.2, 7, { stratified: true }).valIndices), Array.from(s.valIndices), 'same seed, same split');
  assert.notDeepEqual(Array.from(splitTrainVal(set, 0.2, 8, { stratified: true }).valIndices), Array.from(s.valIndices));
  // The plain split is unchanged by the option's existence (CIFAR-10 runs keep their split).
  const plain = splitTrainVal(set, 0.2, 7);
  assert.equal(plain.val.count, 25);
  assert.deepEqual(Array.from(plain.trainIndices), Array.from(plain.trainIndices).sort((a, b) => a - b));
});
