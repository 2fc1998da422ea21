import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { initBackend } from '../../src/backend';
import { loadImageFolder } from '../../src/data/imagefolder';
import { decodeImageAtSize } from '../../src/data/decode';
import { loadDataset } from '../../src/data/dataset';
import { tempDir, writeSolidImage } from './fixtures';

// Decoded folders are cached under TLWB_DATA_DIR: keep that out of the project's data/.
const dataDir = tempDir('tlwb-cache-');
process.env.TLWB_DATA_DIR = dataDir;

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

const RED: [number, number, number] = [220, 20, 30];
const GREEN: [number, number, number] = [10, 200, 40];
const BLUE: [number, number, number] = [30, 40, 210];

/** pixel i of image n */
const pixel = (images: Uint8Array, size: number, n: number, i = 0) => Array.from(images.subarray((n * size * size + i) * 3, (n * size * size + i) * 3 + 3));
const near = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]) <= tol);

test('decodeImageAtSize reads PNG and JPEG by content, as RGB at the working size; errors name the file', async () => {
  const dir = tempDir();
  writeSolidImage(path.join(dir, 'a.png'), 5, 3, RED);
  writeSolidImage(path.join(dir, 'b.jpg'), 16, 8, GREEN);
  const png = await decodeImageAtSize(path.join(dir, 'a.png'), 4);
  assert.deepEqual([png.width, png.height, png.format, png.data.length], [5, 3, 'png', 4 * 4 * 3]);
  assert.deepEqual(Array.from(png.data.subarray(0, 3)), RED);
  const jpg = await decodeImageAtSize(path.join(dir, 'b.jpg'), 4);
  assert.equal(jpg.width, 16);
  assert.ok(near(Array.from(jpg.data.subarray(0, 3)), GREEN, 6), `${jpg.data.subarray(0, 3)}`);
  fs.writeFileSync(path.join(dir, 'bad.png'), 'not an image');
  await assert.rejects(decodeImageAtSize(path.join(dir, 'bad.png'), 4), /bad\.png: not an image in a format this build reads \(JPEG, PNG, WebP, AVIF, GIF or TIFF\)/);
  fs.writeFileSync(path.join(dir, 'cut.png'), fs.readFileSync(path.join(dir, 'a.png')).subarray(0, 30));
  await assert.rejects(decodeImageAtSize(path.join(dir, 'cut.png'), 4), /cut\.png: (truncated|cannot decode)/);
  await assert.rejects(decodeImageAtSize(path.join(dir, 'absent.jpg'), 4), /absent\.jpg: cannot read \(ENOENT\)/);
});

test('an image folder: sorted class names, PNG and JPEG of any size, interleaved order, everything under train', async () => {
  const root = tempDir();
  writeSolidImage(path.join(root, 'zebra', 'z1.png'), 40, 20, BLUE);
  writeSolidImage(path.join(root, 'zebra', 'z2.jpeg'), 7, 9, BLUE);
  writeSolidImage(path.join(root, 'apple', 'a1.png'), 32, 32, RED);
  writeSolidImage(path.join(root, 'apple', 'nested', 'a2.JPG'), 50, 60, RED);
  writeSolidImage(path.join(root, 'apple', 'a3.png'), 3, 3, RED);
  writeSolidImage(path.join(root, 'mango', 'm1.jpg'), 33, 31, GREEN);
  fs.writeFileSync(path.join(root, 'mango', 'notes.txt'), 'ignored: not an image extension');
  const ds = await loadImageFolder(root, 16);
  assert.deepEqual(ds.classes, ['apple', 'mango', 'zebra']);
  assert.equal(ds.test, undefined);
  assert.equal(ds.train.count, 6);
  assert.equal(ds.train.height, 16);
  assert.equal(ds.train.images.length, 6 * 16 * 16 * 3);
  // Round-robin over classes: apple, mango, zebra, apple, zebra, apple (files sorted by path).
  assert.deepEqual(Array.from(ds.train.labels), [0, 1, 2, 0, 2, 0]);
  assert.deepEqual(pixel(ds.train.images, 16, 0, 100), RED);
  assert.ok(near(pixel(ds.train.images, 16, 1, 100), GREEN, 8));
  assert.deepEqual(pixel(ds.train.images, 16, 2, 255), BLUE);
  assert.equal(ds.source, root);
  const limited = await loadImageFolder(root, 8, { trainLimit: 3 });
  assert.deepEqual(Array.from(limited.train.labels), [0, 1, 2]);
});

test('train/ and test/ subfolders make two splits; loadDataset reads folders too', async () => {
  const root = tempDir();
  for (const [split, n] of [['train', 2], ['test', 1]] as const) {
    for (const c of ['cat', 'dog']) for (let i = 0; i < n; i++) writeSolidImage(path.join(root, split, c, `${i}.png`), 10, 10, c === 'cat' ? RED : GREEN);
  }
  const ds = await loadDataset({ source: 'folder', dir: root, valFraction: 0, imageSize: 12, testLimit: 1 });
  assert.deepEqual(ds.classes, ['cat', 'dog']);
  assert.equal(ds.train.count, 4);
  assert.equal(ds.test!.count, 1);
  assert.deepEqual(pixel(ds.test!.images, 12, 0), RED);
  writeSolidImage(path.join(root, 'test', 'emu', '0.png'), 4, 4, RED);
  await assert.rejects(loadImageFolder(root, 12), (e: Error) => e.message.includes(path.join(root, 'test')) && /emu are not in/.test(e.message));
});

test('empty or unreadable folders and files are errors naming them', async () => {
  const root = tempDir();
  await assert.rejects(loadImageFolder(root, 8), (e: Error) => e.message.includes(root) && /no class subfolders/.test(e.message));
  fs.mkdirSync(path.join(root, 'empty'));
  writeSolidImage(path.join(root, 'full', 'x.png'), 4, 4, RED);
  await assert.rejects(loadImageFolder(root, 8), (e: Error) => e.message.includes(path.join(root, 'empty')) && /no image files/.test(e.message));
  fs.rmdirSync(path.join(root, 'empty'));
  writeSolidImage(path.join(root, 'other', 'x.png'), 4, 4, RED);
  fs.writeFileSync(path.join(root, 'full', 'y.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0x00, 1, 2, 3]));
  await assert.rejects(loadImageFolder(root, 8), (e: Error) => e.message.includes(`${path.join(root, 'full', 'y.jpg')}: `) && /1 of 3 image files cannot be read/.test(e.message));
  await assert.rejects(loadImageFolder(path.join(root, 'absent'), 8), /absent: no such folder of images/);
  await assert.rejects(loadDataset({ source: 'folder', valFraction: 0, imageSize: 8 }), /data\.dir/);
});

test('decoded folders are cached; a changed file invalidates the cache', async () => {
  const root = tempDir();
  writeSolidImage(path.join(root, 'a', '1.png'), 9, 9, RED);
  writeSolidImage(path.join(root, 'b', '1.jpg'), 9, 9, GREEN);
  const first = await loadImageFolder(root, 6);
  const cacheDir = path.join(dataDir, 'cache', 'imagefolder');
  const cached = fs.readdirSync(cacheDir).filter((f) => f.startsWith(`${path.basename(root)}-6-`));
  assert.equal(cached.length, 1);
  const again = await loadImageFolder(root, 6);
  assert.deepEqual(again, first, 'the cached copy gives the same data set');
  // Same size and mtime but different pixels would be missed; a real edit changes the mtime.
  writeSolidImage(path.join(root, 'a', '1.png'), 9, 9, BLUE);
  fs.utimesSync(path.join(root, 'a', '1.png'), new Date(), new Date(Date.now() + 5000));
  const edited = await loadImageFolder(root, 6);
  assert.deepEqual(pixel(edited.train.images, 6, 0), BLUE);
  // A corrupt cache file is dropped and rebuilt.
  fs.rmSync(cacheDir, { recursive: true });
  await loadImageFolder(root, 6);
  const [file] = fs.readdirSync(cacheDir);
  fs.writeFileSync(path.join(cacheDir, file), 'junk');
  assert.deepEqual(pixel((await loadImageFolder(root, 6)).train.images, 6, 0), BLUE);
  assert.deepEqual(fs.readdirSync(cacheDir), [file]);
  assert.notEqual(fs.readFileSync(path.join(cacheDir, file)).subarray(0, 4).toString(), 'junk');
  const uncached = await loadImageFolder(root, 6, { cache: false });
  assert.deepEqual(uncached.train.images, edited.train.images);
});

test('issue 11: a folder with fewer than 2 classes is refused when it is loaded', async () => {
  const root = tempDir();
  writeSolidImage(path.join(root, 'only', 'x.png'), 4, 4, RED);
  await assert.rejects(loadImageFolder(root, 8), (e: Error) => e.message === `${root}: 1 class folder (only); a classifier needs at least 2 classes, one subfolder of images each`);
  const split = tempDir();
  writeSolidImage(path.join(split, 'train', 'only', 'x.png'), 4, 4, RED);
  writeSolidImage(path.join(split, 'test', 'only', 'x.png'), 4, 4, RED);
  await assert.rejects(loadImageFolder(split, 8), /train: 1 class folder \(only\)/);
});

test('issue 11: FIFOs and devices are refused by name instead of blocking the read', { skip: process.platform === 'win32' }, async () => {
  const root = tempDir();
  writeSolidImage(path.join(root, 'a', 'x.png'), 4, 4, RED);
  writeSolidImage(path.join(root, 'b', 'x.png'), 4, 4, GREEN);
  const fifo = path.join(root, 'b', 'pipe.png');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(loadImageFolder(root, 8, { cache: false }), (e: Error) => e.message === `${fifo}: a FIFO (named pipe), not an image file`);
  await assert.rejects(decodeImageAtSize(fifo, 8), /pipe\.png: a FIFO \(named pipe\), not an image file/);
  await assert.rejects(decodeImageAtSize('/dev/zero', 8), /\/dev\/zero: a character device, not an image file/);
  await assert.rejects(decodeImageAtSize(root, 8), /a folder, not an image file/);
});

test('progress while decoding: count, rate and ETA, the last call at done = total; an absurd size is refused by name', async () => {
  const root = tempDir();
  for (const c of ['a', 'b']) for (let i = 0; i < 3; i++) writeSolidImage(path.join(root, c, `${i}.png`), 20, 20, c === 'a' ? RED : BLUE);
  const calls: { done: number; total: number; imagesPerSecond: number; etaSeconds: number }[] = [];
  await loadImageFolder(root, 8, { cache: false, onProgress: (p) => calls.push(p) });
  assert.ok(calls.length >= 1);
  const last = calls[calls.length - 1];
  assert.deepEqual([last.done, last.total, last.etaSeconds], [6, 6, 0]);
  assert.ok(last.imagesPerSecond > 0);
  const { decodeProgressLine } = await import('../../src/data/progress');
  assert.equal(decodeProgressLine('decoding x', { done: 50, total: 200, imagesPerSecond: 12.34, etaSeconds: 125 }), 'decoding x: 50/200 images, 12.3 images/s, ETA 2m05s');
  await assert.rejects(loadImageFolder(root, 100000), /image size \(data\.imageSize, --size\) should be an integer in 1\.\.4096, got 100000/);
});
