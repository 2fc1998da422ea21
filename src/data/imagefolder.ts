/**
 * A folder of images with one subfolder per class, as Keras' image_dataset_from_directory reads it:
 * classes are the subfolder names in sorted order; PNG and JPEG files of any size are decoded and
 * resized (bilinear, aspect ratio not kept) to the working size. With train/ and test/ subfolders
 * each holds its own class folders; otherwise every image is training data.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { tf } from '../backend';
import { paths } from '../config';
import { writeFileAtomic } from '../fsutil';
import { Dataset, ImageSet } from './types';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];

/** A decoded image: RGB bytes, row-major. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

function rgbaToRgb(rgba: Uint8Array, width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

/** Decodes PNG or JPEG bytes (recognised by their signature, not the name). `file` names errors. */
export function decodeImageBuffer(buf: Uint8Array, file: string): DecodedImage {
  const isPng = buf.length > 8 && buf[0] === 0x89 && buf[1] === 0x50 && buf[2] === 0x4e && buf[3] === 0x47;
  const isJpeg = buf.length > 3 && buf[0] === 0xff && buf[1] === 0xd8;
  try {
    if (isPng) {
      // pngjs expands palette, grey and 16-bit images to 8-bit RGBA.
      const png = PNG.sync.read(Buffer.from(buf.buffer, buf.byteOffset, buf.length));
      return { data: rgbaToRgb(png.data, png.width, png.height), width: png.width, height: png.height };
    }
    if (isJpeg) {
      const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true });
      return { data: rgbaToRgb(img.data, img.width, img.height), width: img.width, height: img.height };
    }
  } catch (e) {
    throw new Error(`${file}: cannot decode ${isPng ? 'PNG' : 'JPEG'} (${(e as Error).message})`, { cause: e });
  }
  throw new Error(`${file}: not a PNG or JPEG image (unrecognised signature)`);
}

/** What a non-regular file is, for messages. */
function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Throws, naming the file, unless it is a regular file (symlinks followed): reading a FIFO or a
 * device would block or never end.
 */
export function assertRegularFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  if (!st.isFile()) throw new Error(`${file}: ${fileKind(st)}, not an image file`);
}

/** Reads and decodes one PNG or JPEG file. */
export function decodeImage(file: string): DecodedImage {
  assertRegularFile(file);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  return decodeImageBuffer(buf, file);
}

/**
 * size x size RGB float pixels (0..255) of an image of any size: halved by 2x2 averaging while it is
 * at least twice too large (so a photo does not alias into noise), then bilinear with half-pixel
 * centres (as tf.image.resize in TF 2) to the exact size. The aspect ratio is not kept. Training
 * (resizeImage) and predict both go through here, so they see the same pixels.
 */
export function fitImage(img: DecodedImage, size: number): tf.Tensor3D {
  return tf.tidy(() => {
    let x = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32').toFloat() as tf.Tensor3D;
    while (x.shape[0] >= 2 * size && x.shape[1] >= 2 * size) {
      const h = x.shape[0] - (x.shape[0] % 2);
      const w = x.shape[1] - (x.shape[1] % 2);
      x = tf.avgPool(x.slice([0, 0, 0], [h, w, 3]), 2, 2, 'valid') as tf.Tensor3D;
    }
    if (x.shape[0] !== size || x.shape[1] !== size) x = tf.image.resizeBilinear(x, [size, size], false, true);
    return x;
  });
}

/** fitImage rounded back to bytes. Same-size images are returned as they are. */
export function resizeImage(img: DecodedImage, size: number): Uint8Array {
  if (img.width === size && img.height === size) return img.data;
  return tf.tidy(() => new Uint8Array(fitImage(img, size).round().clipByValue(0, 255).dataSync()));
}

function subfolders(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/** Image files under `dir` (recursively), sorted by path. */
function imageFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch (e) {
      throw new Error(`${d}: cannot read folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) {
        if (!e.isFile()) assertRegularFile(p); // a FIFO or device named like an image: refused by name
        out.push(p);
      }
    }
  };
  walk(dir);
  return out;
}

/** Files of one split, per class; throws on a missing or empty class folder. */
function listSplit(splitDir: string, classes: string[], required: boolean): string[][] {
  return classes.map((name) => {
    const dir = path.join(splitDir, name);
    if (!fs.existsSync(dir)) {
      if (required) throw new Error(`${dir}: missing class folder`);
      return [];
    }
    const files = imageFiles(dir);
    if (files.length === 0) throw new Error(`${dir}: no PNG or JPEG images (${IMAGE_EXTENSIONS.join(', ')})`);
    return files;
  });
}

type Item = { file: string; label: number };

/**
 * Interleaves the classes (first file of each class, then the second, ...) so that the first N
 * images of a limited run cover every class.
 */
function interleave(perClass: string[][]): Item[] {
  const out: Item[] = [];
  const longest = Math.max(0, ...perClass.map((f) => f.length));
  for (let i = 0; i < longest; i++) perClass.forEach((files, label) => i < files.length && out.push({ file: files[i], label }));
  return out;
}

function decodeAll(items: Item[], size: number): ImageSet {
  const bytes = size * size * 3;
  const images = new Uint8Array(items.length * bytes);
  const labels = new Uint8Array(items.length);
  items.forEach(({ file, label }, i) => {
    images.set(resizeImage(decodeImage(file), size), i * bytes);
    labels[i] = label;
  });
  return { images, labels, count: items.length, height: size, width: size };
}

export interface ImageFolderOptions {
  /** Only the first N images (in the interleaved order) of each split. 0/absent: all. */
  trainLimit?: number;
  testLimit?: number;
  /**
   * Keep the decoded, resized images in data/cache/imagefolder so that a rerun skips decoding.
   * The key covers every file's path, size and modification time, so edits invalidate it. Default true.
   */
  cache?: boolean;
}


/** A cache key over the inputs of a load: size, limits and every file's path, size and mtime. */
function cacheKey(root: string, size: number, train: Item[], test: Item[] | undefined): string {
  const hash = crypto.createHash('sha1').update(JSON.stringify({ root, size, version: 2 }));
  for (const [split, items] of [['train', train], ['test', test ?? []]] as const) {
    for (const { file, label } of items) {
      const st = fs.statSync(file);
      hash.update(`${split}\0${label}\0${path.relative(root, file)}\0${st.size}\0${st.mtimeMs}\n`);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

/** Cache file layout: 4-byte header length, JSON header, then images and labels of train, then of test. */
function writeCache(file: string, ds: Dataset): void {
  const header = Buffer.from(JSON.stringify({ classes: ds.classes, size: ds.train.height, train: ds.train.count, test: ds.test?.count ?? -1 }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const parts: Uint8Array[] = [len, header, ds.train.images, ds.train.labels];
  if (ds.test) parts.push(ds.test.images, ds.test.labels);
  writeFileAtomic(file, Buffer.concat(parts));
}

function readCache(file: string, root: string): Dataset {
  const buf = fs.readFileSync(file);
  const len = buf.readUInt32LE(0);
  const header = JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as { classes: string[]; size: number; train: number; test: number };
  const bytes = header.size * header.size * 3;
  let at = 4 + len;
  const take = (count: number): ImageSet => {
    const images = new Uint8Array(buf.subarray(at, at + count * bytes));
    at += count * bytes;
    const labels = new Uint8Array(buf.subarray(at, at + count));
    at += count;
    return { images, labels, count, height: header.size, width: header.size };
  };
  const ds: Dataset = { name: path.basename(root), classes: header.classes, train: take(header.train), source: root };
  if (header.test >= 0) ds.test = take(header.test);
  if (at !== buf.length) throw new Error(`${file}: ${buf.length} bytes, expected ${at}`);
  return ds;
}

/** Loads an image-folder data set at size x size. */
export async function loadImageFolder(dir: string, size: number, opts: ImageFolderOptions = {}): Promise<Dataset> {
  const root = path.resolve(dir);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new Error(`${root}: no such folder of images`);
  if (!(Number.isInteger(size) && size > 0)) throw new Error(`${root}: image size should be a positive integer, got ${size}`);
  const top = subfolders(root);
  const split = top.includes('train') && top.includes('test');
  const trainDir = split ? path.join(root, 'train') : root;
  const classes = subfolders(trainDir);
  if (classes.length === 0) throw new Error(`${trainDir}: no class subfolders (expected one folder of images per class)`);
  if (classes.length < 2) {
    throw new Error(`${trainDir}: ${classes.length} class folder (${classes.join(', ')}); a classifier needs at least 2 classes, one subfolder of images each`);
  }
  if (classes.length > 256) throw new Error(`${trainDir}: ${classes.length} class folders; at most 256 are supported`);
  const limit = <T>(a: T[], n?: number) => (n && n > 0 ? a.slice(0, n) : a);
  let testItems: Item[] | undefined;
  if (split) {
    const testDir = path.join(root, 'test');
    const unknown = subfolders(testDir).filter((c) => !classes.includes(c));
    if (unknown.length) throw new Error(`${testDir}: class folders ${unknown.join(', ')} are not in ${trainDir}`);
    testItems = interleave(listSplit(testDir, classes, false));
    if (testItems.length === 0) throw new Error(`${testDir}: no PNG or JPEG images`);
    testItems = limit(testItems, opts.testLimit);
  }
  const trainItems = limit(interleave(listSplit(trainDir, classes, true)), opts.trainLimit);

  const useCache = opts.cache !== false;
  const cacheFile = useCache
    ? path.join(paths().cache, 'imagefolder', `${path.basename(root)}-${size}-${cacheKey(root, size, trainItems, testItems)}.bin`)
    : '';
  if (useCache && fs.existsSync(cacheFile)) {
    try {
      return readCache(cacheFile, root);
    } catch {
      fs.rmSync(cacheFile, { force: true }); // unreadable cache: decode again below
    }
  }
  await tf.ready();
  const dataset: Dataset = { name: path.basename(root), classes, train: decodeAll(trainItems, size), source: root };
  if (testItems) dataset.test = decodeAll(testItems, size);
  if (useCache) writeCache(cacheFile, dataset);
  return dataset;
}
