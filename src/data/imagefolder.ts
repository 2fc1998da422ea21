/**
 * A folder of images with one subfolder per class, as Keras' image_dataset_from_directory reads it:
 * classes are the subfolder names in sorted order; JPEG, PNG, WebP, AVIF, GIF and TIFF files of any
 * size are decoded by sharp straight to the working size (decode.ts has the one resize rule), a few
 * at a time, into one array at the working size: memory does not grow with the photos' resolution.
 * With train/ and test/ subfolders each holds its own class folders; otherwise every image is
 * training data. Unreadable files are all listed at once and refuse the folder, or with
 * skipUnreadable are left out and listed in the data set.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { paths } from '../config';
import { writeFileAtomic } from '../fsutil';
import { assertRegularFile, decodeImageAtSize, DEFAULT_MAX_IMAGE_PIXELS, IMAGE_EXTENSIONS, mapPool } from './decode';
import { Dataset, ImageSet, SkippedFile } from './types';

export { assertRegularFile, IMAGE_EXTENSIONS };

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
    if (files.length === 0) throw new Error(`${dir}: no image files (${IMAGE_EXTENSIONS.join(', ')})`);
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

/** How far decoding is: images done (read or skipped) of the total, the rate so far and the time left. */
export interface DecodeProgress {
  done: number;
  total: number;
  imagesPerSecond: number;
  etaSeconds: number;
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
  /** Leave unreadable files out (listed in Dataset.skipped) instead of refusing the folder. Default false. */
  skipUnreadable?: boolean;
  /** Refuse images above this many pixels (width x height), from their header. */
  maxImagePixels?: number;
  /** Images decoded at a time. Default: the machine's available parallelism. */
  concurrency?: number;
  /** Called as images are decoded (at most every 200 ms, and once at the end). */
  onProgress?: (p: DecodeProgress) => void;
}

/** The largest class is more than this many times the smallest: a warning (and a reason for train.classWeights). */
export const IMBALANCE_RATIO = 5;

/** A warning when the largest class of `counts` has more than IMBALANCE_RATIO times the images of the smallest. */
export function imbalanceWarning(classes: string[], counts: number[], where: string): string | undefined {
  const max = Math.max(...counts);
  const min = Math.min(...counts);
  if (!(max > IMBALANCE_RATIO * min)) return undefined;
  const big = classes[counts.indexOf(max)];
  const small = classes[counts.indexOf(min)];
  return (
    `${where}: imbalanced classes, '${big}' has ${max} images and '${small}' ${min} (${min ? `${(max / min).toFixed(1)}x` : 'none'}, more than ${IMBALANCE_RATIO}x); ` +
    `accuracy will favour the large classes: read the per-class metrics, and consider train.classWeights: "balanced"`
  );
}

/** The message refusing a folder with unreadable files: every one of them, and what to do. */
function unreadableMessage(root: string, bad: SkippedFile[], total: number): string {
  return (
    `${root}: ${bad.length} of ${total} image files cannot be read (fix or remove them, or set data.skipUnreadable: true / --skip-unreadable to leave them out):\n` +
    bad.map((b) => `  ${b.file}: ${b.reason}`).join('\n')
  );
}

interface Decoded {
  set: ImageSet;
  skipped: SkippedFile[];
}

/** Decodes every item (a bounded pool) into one array at the working size; failures are collected, not thrown. */
async function decodeAll(items: Item[], size: number, opts: ImageFolderOptions, progress: (n: number) => void): Promise<Decoded> {
  const bytes = size * size * 3;
  const images = new Uint8Array(items.length * bytes);
  const ok = new Uint8Array(items.length);
  const failures: (SkippedFile | undefined)[] = new Array(items.length);
  await mapPool(items, opts.concurrency ?? os.availableParallelism(), async ({ file }, i) => {
    try {
      const img = await decodeImageAtSize(file, size, { maxPixels: opts.maxImagePixels, limitName: 'data.maxImagePixels or --max-image-pixels' });
      images.set(img.data, i * bytes);
      ok[i] = 1;
    } catch (e) {
      const message = (e as Error).message;
      failures[i] = { file, reason: message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message };
    }
    progress(1);
  });
  // Failures again, one at a time: libvips' error text is shared between threads, so a concurrent
  // failure can come back as "Unknown error"; alone it says what is wrong.
  for (let i = 0; i < items.length; i++) {
    if (!failures[i]) continue;
    const { file } = items[i];
    try {
      images.set((await decodeImageAtSize(file, size, { maxPixels: opts.maxImagePixels, limitName: 'data.maxImagePixels or --max-image-pixels' })).data, i * bytes);
      ok[i] = 1;
      failures[i] = undefined;
    } catch (e) {
      const message = (e as Error).message;
      failures[i] = { file, reason: message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message };
    }
  }
  const skipped = failures.filter((f): f is SkippedFile => f !== undefined);
  if (skipped.length === 0) return { set: { images, labels: Uint8Array.from(items, (it) => it.label), count: items.length, height: size, width: size }, skipped };
  // Compact the good ones in place (order kept).
  let n = 0;
  const labels: number[] = [];
  items.forEach((it, i) => {
    if (!ok[i]) return;
    if (n !== i) images.copyWithin(n * bytes, i * bytes, (i + 1) * bytes);
    labels.push(it.label);
    n++;
  });
  return { set: { images: images.slice(0, n * bytes), labels: Uint8Array.from(labels), count: n, height: size, width: size }, skipped };
}

/** A cache key over the inputs of a load: size, limits, the pixel limit and every file's path, size and mtime. */
function cacheKey(root: string, size: number, maxPixels: number, train: Item[], test: Item[] | undefined): string {
  // version 3: decoded by sharp (decode.ts), unreadable files recorded in the header.
  const hash = crypto.createHash('sha1').update(JSON.stringify({ root, size, maxPixels, version: 3 }));
  for (const [split, items] of [['train', train], ['test', test ?? []]] as const) {
    for (const { file, label } of items) {
      const st = fs.statSync(file);
      hash.update(`${split}\0${label}\0${path.relative(root, file)}\0${st.size}\0${st.mtimeMs}\n`);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

/** Cache file layout: 4-byte header length, JSON header, then images and labels of train, then of test. */
function writeCache(file: string, ds: Dataset, total: number): void {
  const header = Buffer.from(
    JSON.stringify({ classes: ds.classes, size: ds.train.height, train: ds.train.count, test: ds.test?.count ?? -1, skipped: ds.skipped ?? [], total }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const parts: Uint8Array[] = [len, header, ds.train.images, ds.train.labels];
  if (ds.test) parts.push(ds.test.images, ds.test.labels);
  writeFileAtomic(file, Buffer.concat(parts));
}

function readCache(file: string, root: string): { dataset: Dataset; total: number } {
  const buf = fs.readFileSync(file);
  const len = buf.readUInt32LE(0);
  const header = JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as {
    classes: string[];
    size: number;
    train: number;
    test: number;
    skipped: SkippedFile[];
    total: number;
  };
  if (!Array.isArray(header.skipped)) throw new Error(`${file}: no list of skipped files`);
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
  if (header.skipped.length) ds.skipped = header.skipped;
  if (at !== buf.length) throw new Error(`${file}: ${buf.length} bytes, expected ${at}`);
  return { dataset: ds, total: header.total };
}

/** Progress over `total` images: throttled calls of onProgress with the rate and the time left. */
function progressCounter(total: number, onProgress?: (p: DecodeProgress) => void): (n: number) => void {
  const started = performance.now();
  let done = 0;
  let last = 0;
  return (n) => {
    done += n;
    const now = performance.now();
    if (!onProgress || (done < total && now - last < 200)) return;
    last = now;
    const imagesPerSecond = done / Math.max(1e-3, (now - started) / 1000);
    onProgress({ done, total, imagesPerSecond, etaSeconds: (total - done) / imagesPerSecond });
  };
}

/** Loads an image-folder data set at size x size. */
export async function loadImageFolder(dir: string, size: number, opts: ImageFolderOptions = {}): Promise<Dataset> {
  const root = path.resolve(dir);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new Error(`${root}: no such folder of images`);
  if (!(Number.isInteger(size) && size > 0 && size <= 4096)) throw new Error(`${root}: image size (data.imageSize, --size) should be an integer in 1..4096, got ${size}`);
  const maxPixels = opts.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS;
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
    if (testItems.length === 0) throw new Error(`${testDir}: no image files`);
    testItems = limit(testItems, opts.testLimit);
  }
  const trainItems = limit(interleave(listSplit(trainDir, classes, true)), opts.trainLimit);
  const total = trainItems.length + (testItems?.length ?? 0);

  const useCache = opts.cache !== false;
  const cacheFile = useCache
    ? path.join(paths().cache, 'imagefolder', `${path.basename(root)}-${size}-${cacheKey(root, size, maxPixels, trainItems, testItems)}.bin`)
    : '';
  let dataset: Dataset | undefined;
  if (useCache && fs.existsSync(cacheFile)) {
    try {
      dataset = readCache(cacheFile, root).dataset;
    } catch {
      fs.rmSync(cacheFile, { force: true }); // unreadable cache: decode again below
    }
  }
  if (!dataset) {
    const progress = progressCounter(total, opts.onProgress);
    const train = await decodeAll(trainItems, size, opts, progress);
    const test = testItems ? await decodeAll(testItems, size, opts, progress) : undefined;
    const skipped = [...train.skipped, ...(test?.skipped ?? [])];
    dataset = { name: path.basename(root), classes, train: train.set, source: root };
    if (test) dataset.test = test.set;
    if (skipped.length) dataset.skipped = skipped;
    // Cached with its list of unreadable files, so a cached load refuses or skips exactly as a fresh one.
    if (useCache) writeCache(cacheFile, dataset, total);
  }
  if (dataset.skipped?.length && !opts.skipUnreadable) throw new Error(unreadableMessage(root, dataset.skipped, total));
  if (opts.skipUnreadable) dataset.skipped ??= []; // asked for: recorded even when nothing was skipped
  for (const [name, set] of [['train', dataset.train], ['test', dataset.test]] as const) {
    if (set && set.count === 0) throw new Error(`${root}: no readable images in ${name === 'train' ? trainDir : path.join(root, 'test')} (every file was skipped as unreadable)`);
  }
  const counts = new Array<number>(classes.length).fill(0);
  for (const l of dataset.train.labels) counts[l]++;
  const warning = imbalanceWarning(classes, counts, trainDir);
  if (warning) dataset.warnings = [warning];
  return dataset;
}
