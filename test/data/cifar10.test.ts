import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../../src/config';
import { CIFAR10_CLASSES, loadCifar10, parseCifarRecords, readCifarBatches } from '../../src/data/cifar10';
import { countPerClass } from '../../src/data/types';
import { loadDataset } from '../../src/data/dataset';
import { cifarBatchBytes, syntheticLabel, syntheticPixel, tempDir, writeCifarFolder } from './fixtures';

const sharedDir = process.env.CIFAR10_DIR || path.resolve(projectRoot, '../shared/data/cifar-10-batches-bin');
const haveShared = fs.existsSync(path.join(sharedDir, 'data_batch_1.bin'));

test('the shared CIFAR-10 copy parses to 50000/10000 images, 5000/1000 per class, in file order', { skip: !haveShared && `no ${sharedDir}` }, () => {
  const started = performance.now();
  const ds = loadCifar10(sharedDir);
  const ms = performance.now() - started;
  assert.equal(ds.train.count, 50000);
  assert.equal(ds.test!.count, 10000);
  assert.equal(ds.train.images.length, 50000 * 32 * 32 * 3);
  assert.deepEqual(countPerClass(ds.train, 10), new Array(10).fill(5000));
  assert.deepEqual(countPerClass(ds.test!, 10), new Array(10).fill(1000));
  assert.deepEqual(Array.from(ds.train.labels.subarray(0, 10)), [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
  assert.deepEqual(ds.classes, CIFAR10_CLASSES);
  // First image, first pixel, straight from the file: byte 1 (R), 1025 (G), 2049 (B).
  const raw = fs.readFileSync(path.join(sharedDir, 'data_batch_1.bin')).subarray(0, 3073);
  assert.deepEqual(Array.from(ds.train.images.subarray(0, 3)), [raw[1], raw[1025], raw[2049]]);
  // Generous bound for a loaded shared machine; the measured figure is far lower.
  assert.ok(ms < 5000, `parsing 60,000 images took ${ms.toFixed(0)} ms`);
});

test('synthetic batches: planes become NHWC pixels, labels and files stay in order', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'), 3, 5);
  const ds = loadCifar10(dir);
  assert.equal(ds.train.count, 15);
  assert.equal(ds.test!.count, 5);
  assert.deepEqual(ds.classes, ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9']);
  for (const [g, i] of [[0, 0], [4, 4], [14, 14]]) {
    assert.equal(ds.train.labels[i], syntheticLabel(g));
    for (const p of [0, 1, 31, 32, 517, 1023]) {
      const at = (i * 1024 + p) * 3;
      assert.deepEqual(Array.from(ds.train.images.subarray(at, at + 3)), [0, 1, 2].map((c) => syntheticPixel(g, c, p)), `record ${g} pixel ${p}`);
    }
  }
  assert.equal(ds.test!.labels[2], syntheticLabel(1002));
});

test('the unaligned byte path gives the same pixels as the word path', () => {
  const buf = cifarBatchBytes(3);
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'b.bin'), buf);
  const words = readCifarBatches([path.join(dir, 'b.bin')]);
  const unaligned = new Uint8Array(3 * 3072 + 1).subarray(1);
  parseCifarRecords(buf, 3, unaligned, new Uint8Array(3), 0, 'b.bin');
  assert.deepEqual(unaligned, words.images);
});

test('limits read only the first images, across file boundaries', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'), 4, 6);
  const ds = loadCifar10(dir, { trainLimit: 6, testLimit: 2 });
  assert.equal(ds.train.count, 6);
  assert.equal(ds.train.images.length, 6 * 3072);
  assert.equal(ds.test!.count, 2);
  assert.equal(ds.train.labels[5], syntheticLabel(5));
  assert.equal(ds.train.images[5 * 3072], syntheticPixel(5, 0, 0));
});

test('a truncated batch is an error naming the file and the record size', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'));
  const file = path.join(dir, 'data_batch_3.bin');
  fs.writeFileSync(file, cifarBatchBytes(2).subarray(0, 3073 + 100));
  assert.throws(() => loadCifar10(dir), (e: Error) => e.message.includes(file) && /3173 bytes is not a whole number of 3073-byte/.test(e.message));
});

test('issue 25 case 10: a batch that is a folder is named as a folder, not as 4096 bytes of records', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'));
  const file = path.join(dir, 'data_batch_2.bin');
  fs.rmSync(file);
  fs.mkdirSync(file);
  assert.throws(() => loadCifar10(dir), (e: Error) => e.message.startsWith(`${file}: a folder, expected a CIFAR-10 batch file of 3073-byte records`) && !/whole number/.test(e.message));
});

test('a label over 9 is an error naming the file and record', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'));
  const file = path.join(dir, 'test_batch.bin');
  const buf = cifarBatchBytes(3);
  buf[2 * 3073] = 42;
  fs.writeFileSync(file, buf);
  assert.throws(() => loadCifar10(dir), (e: Error) => e.message.includes(file) && /record 2 has label 42/.test(e.message));
});

test('a missing batch or folder is an error naming it', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'));
  fs.rmSync(path.join(dir, 'data_batch_5.bin'));
  assert.throws(() => loadCifar10(dir), (e: Error) => e.message.includes(path.join(dir, 'data_batch_5.bin')) && /missing/.test(e.message));
  assert.throws(() => loadCifar10(path.join(dir, 'nope')), /nope: no such folder/);
});

test('class names: standard ones without batches.meta.txt, an error for a wrong count', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'), 1, 1, false);
  assert.deepEqual(loadCifar10(dir).classes, CIFAR10_CLASSES);
  fs.writeFileSync(path.join(dir, 'batches.meta.txt'), 'a\nb\n');
  assert.throws(() => loadCifar10(dir), /batches\.meta\.txt: expected 10 class names/);
});

test('loadDataset: CIFAR10_DIR is used when the profile names no folder; limits apply; the stored size must be 32', async () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'), 4, 4);
  const saved = process.env.CIFAR10_DIR;
  process.env.CIFAR10_DIR = dir;
  try {
    const ds = await loadDataset({ source: 'cifar10', valFraction: 0.1, imageSize: 32, trainLimit: 7, testLimit: 3 });
    assert.equal(ds.source, dir);
    assert.equal(ds.train.count, 7);
    assert.equal(ds.test!.count, 3);
    await assert.rejects(loadDataset({ source: 'cifar10', valFraction: 0, imageSize: 64 }), /data\.imageSize: CIFAR-10 images are stored at 32/);
  } finally {
    if (saved === undefined) delete process.env.CIFAR10_DIR;
    else process.env.CIFAR10_DIR = saved;
  }
});

test('issue 11: a CIFAR-10 batch shorter than the others is refused, named with its record count', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'), 4, 6);
  fs.writeFileSync(path.join(dir, 'data_batch_3.bin'), cifarBatchBytes(3, 8));
  assert.throws(() => loadCifar10(dir), (e: Error) => e.message.startsWith(`${path.join(dir, 'data_batch_3.bin')}: 3 records, where data_batch_1.bin has 4`));
});

test('issue 11: a partial CIFAR-10 copy (every batch short) loads with a warning per file naming its record count', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'), 4, 6);
  const ds = loadCifar10(dir);
  assert.equal(ds.warnings?.length, 6);
  assert.equal(ds.warnings?.[0], `${path.join(dir, 'data_batch_1.bin')}: 4 records, not CIFAR-10's 10,000 (a partial copy)`);
  assert.match(ds.warnings?.[5] ?? '', /test_batch\.bin: 6 records/);
});
