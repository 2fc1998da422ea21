/**
 * CIFAR-10 in the official binary layout (cifar-10-binary.tar.gz): each record is 1 label byte then
 * 3072 pixel bytes as three 32x32 planes (R, G, B). We keep the images as one uint8 NHWC array, the
 * layout tensors want, and convert to float only per batch.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { paths } from '../config';
import { extractTarGz } from './archive';
import { download } from './download';
import { Dataset, ImageSet } from './types';

export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
/** The environment variables the CIFAR-10 source reads: a local copy, a mirror, its checksum. */
export const CIFAR10_ENV = ['CIFAR10_DIR', 'CIFAR10_URL', 'CIFAR10_MD5'] as const;
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
/** The folder inside the archive. */
export const CIFAR10_FOLDER = 'cifar-10-batches-bin';
export const CIFAR10_TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];
export const CIFAR10_TEST_FILE = 'test_batch.bin';
export const CIFAR10_META_FILE = 'batches.meta.txt';
/** Used when batches.meta.txt is absent (e.g. a folder holding only some batches). */
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXEL_BYTES = 3 * PLANE;
export const CIFAR10_RECORD_BYTES = 1 + PIXEL_BYTES;
/** Records in each of the official batch files. */
export const CIFAR10_BATCH_RECORDS = 10_000;

/**
 * Converts `records` records of `buf` (label byte + R, G, B planes) into NHWC pixels and labels,
 * writing from record `at` on. `file` only names the source in errors.
 *
 * Works four pixels at a time on 32-bit words (each record's planes are first copied to an aligned
 * scratch buffer): 60,000 images then take well under a second instead of about one.
 */
export function parseCifarRecords(buf: Uint8Array, records: number, images: Uint8Array, labels: Uint8Array, at: number, file: string): void {
  const scratch = new Uint8Array(PIXEL_BYTES);
  const planes = new Uint32Array(scratch.buffer);
  const aligned = images.byteOffset % 4 === 0;
  const out = aligned ? new Uint32Array(images.buffer, images.byteOffset, images.length >>> 2) : undefined;
  const W = PLANE >>> 2; // words per plane
  for (let r = 0; r < records; r++) {
    const src = r * CIFAR10_RECORD_BYTES;
    const label = buf[src];
    if (label > 9) throw new Error(`${file}: record ${r} has label ${label}; CIFAR-10 labels are 0..9 (is this a CIFAR-100 or corrupt file?)`);
    labels[at + r] = label;
    if (!out) {
      let dst = (at + r) * PIXEL_BYTES;
      for (let p = 0; p < PLANE; p++, dst += 3) {
        images[dst] = buf[src + 1 + p];
        images[dst + 1] = buf[src + 1 + PLANE + p];
        images[dst + 2] = buf[src + 1 + 2 * PLANE + p];
      }
      continue;
    }
    scratch.set(buf.subarray(src + 1, src + CIFAR10_RECORD_BYTES));
    let o = ((at + r) * PIXEL_BYTES) >>> 2;
    // Little-endian words: byte k of a plane word is pixel k of the four.
    for (let w = 0; w < W; w++, o += 3) {
      const R = planes[w];
      const G = planes[w + W];
      const B = planes[w + 2 * W];
      out[o] = (R & 0xff) | ((G & 0xff) << 8) | ((B & 0xff) << 16) | ((R & 0xff00) << 16);
      out[o + 1] = ((G >>> 8) & 0xff) | (B & 0xff00) | (R & 0xff0000) | ((G & 0xff0000) << 8);
      out[o + 2] = ((B >>> 16) & 0xff) | ((R >>> 16) & 0xff00) | (G & 0xff000000) >>> 8 | (B & 0xff000000);
    }
  }
}

/** Number of records in a batch file, checking that it exists and holds whole records. */
function recordCount(file: string): number {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new Error(`${file}: missing; a CIFAR-10 folder holds ${CIFAR10_TRAIN_FILES.join(', ')} and ${CIFAR10_TEST_FILE}`);
  }
  // A folder's size (4096) would otherwise be judged as records.
  if (!stat.isFile()) throw new Error(`${file}: a ${stat.isDirectory() ? 'folder' : 'special file'}, expected a CIFAR-10 batch file of ${CIFAR10_RECORD_BYTES}-byte records`);
  const size = stat.size;
  if (size === 0 || size % CIFAR10_RECORD_BYTES !== 0) {
    throw new Error(
      `${file}: ${size} bytes is not a whole number of ${CIFAR10_RECORD_BYTES}-byte CIFAR-10 records (truncated or not a CIFAR-10 batch)`,
    );
  }
  return size / CIFAR10_RECORD_BYTES;
}

/** Reads the first `count` records of a file (only the bytes needed). */
function readRecords(file: string, count: number): Buffer {
  const bytes = count * CIFAR10_RECORD_BYTES;
  const buf = Buffer.allocUnsafe(bytes);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < bytes) {
      const n = fs.readSync(fd, buf, done, bytes - done, done);
      if (n === 0) throw new Error(`${file}: ended after ${done} bytes while reading ${bytes}`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** Parses batch files in order into one ImageSet, stopping after `limit` images (0/absent: all). */
export function readCifarBatches(files: string[], limit?: number): ImageSet {
  const counts = files.map(recordCount);
  // Batches of one copy hold the same number of records; one that holds fewer was cut short.
  counts.forEach((n, i) => {
    if (n !== counts[0]) {
      throw new Error(
        `${files[i]}: ${n} records, where ${path.basename(files[0])} has ${counts[0]} (a truncated or mixed copy; CIFAR-10 batches hold ${CIFAR10_BATCH_RECORDS.toLocaleString('en-US')} records each)`,
      );
    }
  });
  const total = counts.reduce((a, b) => a + b, 0);
  const count = limit && limit > 0 ? Math.min(limit, total) : total;
  const images = new Uint8Array(count * PIXEL_BYTES);
  const labels = new Uint8Array(count);
  let at = 0;
  for (let i = 0; i < files.length && at < count; i++) {
    const take = Math.min(counts[i], count - at);
    parseCifarRecords(readRecords(files[i], take), take, images, labels, at, files[i]);
    at += take;
  }
  return { images, labels, count, height: SIDE, width: SIDE };
}

/** Class names from batches.meta.txt (one per line), or the standard names when it is absent. */
export function readCifarClasses(dir: string): string[] {
  const file = path.join(dir, CIFAR10_META_FILE);
  if (!fs.existsSync(file)) return [...CIFAR10_CLASSES];
  const names = fs.readFileSync(file, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
  if (names.length !== 10) throw new Error(`${file}: expected 10 class names, one per line, found ${names.length}`);
  return names;
}

export interface Cifar10Limits {
  /** Only the first N training / test images (file order). 0 or absent: all. */
  trainLimit?: number;
  testLimit?: number;
}

/** Parses an extracted cifar-10-batches-bin folder. */
export function loadCifar10(dir: string, limits: Cifar10Limits = {}): Dataset {
  const root = path.resolve(dir);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw new Error(`${root}: no such folder; expected an extracted ${CIFAR10_FOLDER} folder (set CIFAR10_DIR or let the workbench download it)`);
  }
  const files = [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE].map((f) => path.join(root, f));
  const warnings = files
    .map((f) => ({ f, n: recordCount(f) }))
    .filter(({ n }) => n < CIFAR10_BATCH_RECORDS)
    .map(({ f, n }) => `${f}: ${n.toLocaleString('en-US')} records, not CIFAR-10's ${CIFAR10_BATCH_RECORDS.toLocaleString('en-US')} (a partial copy)`);
  return {
    ...(warnings.length ? { warnings } : {}),
    name: 'cifar10',
    classes: readCifarClasses(root),
    train: readCifarBatches(CIFAR10_TRAIN_FILES.map((f) => path.join(root, f)), limits.trainLimit),
    test: readCifarBatches([path.join(root, CIFAR10_TEST_FILE)], limits.testLimit),
    source: root,
  };
}

export interface FetchOptions {
  /** Archive URL; default env CIFAR10_URL, else the official URL. */
  url?: string;
  /** Expected md5 of the archive; default env CIFAR10_MD5, else the official md5. Empty string: no check. */
  md5?: string;
  /** No progress bar or messages. */
  quiet?: boolean;
}

function isCompleteCifarFolder(dir: string): boolean {
  return [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE].every((f) => fs.existsSync(path.join(dir, f)));
}

/**
 * Downloads (once, md5-checked, cached in data/downloads) and extracts (once, into data/cache) the
 * official archive; returns the extracted batches folder. A rerun with the folder in place is instant.
 */
export async function fetchCifar10(opts: FetchOptions = {}): Promise<string> {
  const url = opts.url ?? (process.env.CIFAR10_URL || CIFAR10_URL);
  const md5 = opts.md5 ?? (process.env.CIFAR10_MD5 ?? CIFAR10_MD5);
  const { downloads, cache } = paths();
  const extracted = path.join(cache, 'cifar-10');
  const dir = path.join(extracted, CIFAR10_FOLDER);
  if (isCompleteCifarFolder(dir)) return dir;
  const archive = path.join(downloads, 'cifar-10-binary.tar.gz');
  try {
    await download(url, archive, { md5: md5 || undefined, quiet: opts.quiet });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n(to use a local copy instead, set CIFAR10_DIR to an extracted ${CIFAR10_FOLDER} folder)`, { cause: e });
  }
  // The extraction renames a finished temp folder into place, so an existing folder is complete;
  // one without the batches came from another archive and is replaced.
  if (fs.existsSync(extracted)) fs.rmSync(extracted, { recursive: true, force: true });
  try {
    await extractTarGz(archive, extracted);
  } catch (e) {
    // A cached archive that does not extract is useless: drop it so the next run fetches it again.
    fs.rmSync(archive, { force: true });
    throw e;
  }
  if (!isCompleteCifarFolder(dir)) {
    fs.rmSync(extracted, { recursive: true, force: true });
    throw new Error(`${archive}: extracted, but it has no ${CIFAR10_FOLDER}/ with ${CIFAR10_TRAIN_FILES[0]}..${CIFAR10_TEST_FILE}; not the CIFAR-10 binary archive`);
  }
  return dir;
}

/** The batches folder to read: an explicit dir, else CIFAR10_DIR, else the downloaded copy. */
export async function resolveCifar10Dir(dir?: string, opts: FetchOptions = {}): Promise<string> {
  const local = dir || process.env.CIFAR10_DIR;
  if (local) return path.resolve(local);
  return fetchCifar10(opts);
}
