/**
 * Frozen-feature cache. When a phase trains only the head, the base is a fixed function: run it once
 * over train and val (inference mode), keep the features on disk, and train the head on them.
 * The key covers everything that changes the features: backbone arch, a hash of the base's weights
 * (so after a phase that trained the base the key changes), input size, preprocessing, the exact
 * images (content hash), and the storage dtype.
 */
import { yieldToEventLoop } from './interrupt';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { paths } from '../config';
import { float16Bits, fromFloat16Bits } from '../model/float16';
import { readJsonFile, writeJsonAtomic } from '../fsutil';
import type { Batch, BatchStream } from './loop';

export type FeatureDtype = 'float32' | 'float16';

export interface FeatureSet {
  /** count x dims, row-major. */
  features: Float32Array;
  labels: Uint8Array;
  count: number;
  dims: number;
  /** Shape of one item's features (dims = product). */
  shape: number[];
}

export interface CacheKeyParts {
  arch: string;
  baseWeightsHash: string;
  inputSize: number;
  preprocess: string;
  dtype: FeatureDtype;
  trainHash: string;
  valHash: string;
  /** Parameter-free head layers computed into the cache (e.g. global pooling). */
  movedLayers: string;
}

export interface CachedFeatures {
  key: string;
  dir: string;
  /** True when read from disk, false when just computed. */
  hit: boolean;
  train: FeatureSet;
  val: FeatureSet;
}

/** sha256 of the weights' values, in the order given (names excluded: they vary between processes). */
export async function weightsHash(weights: tf.LayerVariable[]): Promise<string> {
  const h = crypto.createHash('sha256');
  for (const w of weights) {
    const data = await w.read().data();
    h.update(w.shape.join('x'));
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest('hex');
}

export function contentHash(images: Uint8Array, labels: Uint8Array): string {
  return crypto.createHash('sha256').update(images).update(labels).digest('hex');
}

export function cacheKey(parts: CacheKeyParts): string {
  const digest = crypto.createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 20);
  const arch = path.basename(parts.arch).replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${arch}-${parts.inputSize}-${parts.preprocess}-${parts.dtype}-${digest}`;
}

// float16 halves the cache; features tolerate its rounding (to nearest even).
export { float16Bits as toFloat16, fromFloat16Bits as fromFloat16 } from '../model/float16';

export function cacheRoot(): string {
  return path.join(paths().cache, 'features');
}

function writeSet(dir: string, name: string, set: FeatureSet, dtype: FeatureDtype): void {
  const raw = dtype === 'float16' ? float16Bits(set.features) : set.features;
  fs.writeFileSync(path.join(dir, `${name}.bin`), new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
  fs.writeFileSync(path.join(dir, `${name}-labels.bin`), set.labels);
}

function readSet(dir: string, name: string, count: number, shape: number[], dtype: FeatureDtype): FeatureSet {
  const dims = shape.reduce((a, d) => a * d, 1);
  const file = path.join(dir, `${name}.bin`);
  const expected = count * dims * (dtype === 'float16' ? 2 : 4);
  const size = fs.statSync(file).size;
  if (size !== expected) throw new Error(`${file}: ${size} bytes, expected ${expected} (${count} x ${dims} ${dtype})`);
  // Read straight into an aligned buffer of its own (a Buffer may share a pool and start unaligned).
  const bytes = new Uint8Array(expected);
  const fd = fs.openSync(file, 'r');
  try {
    for (let at = 0; at < expected; ) {
      const n = fs.readSync(fd, bytes, at, Math.min(expected - at, 1 << 30), at);
      if (n === 0) throw new Error(`${file}: ended after ${at} of ${expected} bytes`);
      at += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  const features = dtype === 'float16' ? fromFloat16Bits(new Uint16Array(bytes.buffer)) : new Float32Array(bytes.buffer);
  const labels = new Uint8Array(fs.readFileSync(path.join(dir, `${name}-labels.bin`)));
  return { features, labels, count, dims, shape };
}

/** Reads the cached features for `key`, or undefined when absent or incomplete. */
export function readCache(key: string): CachedFeatures | undefined {
  const dir = path.join(cacheRoot(), key);
  const metaFile = path.join(dir, 'meta.json');
  if (!fs.existsSync(metaFile)) return undefined;
  const meta = readJsonFile<{ shape: number[]; trainCount: number; valCount: number; parts: CacheKeyParts }>(metaFile, 'the feature cache index');
  return {
    key,
    dir,
    hit: true,
    train: readSet(dir, 'train', meta.trainCount, meta.shape, meta.parts.dtype),
    val: readSet(dir, 'val', meta.valCount, meta.shape, meta.parts.dtype),
  };
}

/** Stores features under `key` (a temporary folder renamed into place; meta.json last). */
export function writeCache(key: string, parts: CacheKeyParts, train: FeatureSet, val: FeatureSet): string {
  const root = cacheRoot();
  const dir = path.join(root, key);
  const tmp = path.join(root, `.tmp-${key}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  writeSet(tmp, 'train', train, parts.dtype);
  writeSet(tmp, 'val', val, parts.dtype);
  writeJsonAtomic(path.join(tmp, 'meta.json'), {
    parts,
    dims: train.dims,
    shape: train.shape,
    trainCount: train.count,
    valCount: val.count,
    created: new Date().toISOString(),
  });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}

/** Rounds features the way the cache stores them, so that a miss and a later hit train identically. */
export function roundTrip(set: FeatureSet, dtype: FeatureDtype): FeatureSet {
  return dtype === 'float16' ? { ...set, features: fromFloat16Bits(float16Bits(set.features)) } : set;
}

/**
 * Computes the frozen part of a model over a stream of batches: the features of every image, in
 * stream order. `extract` is the frozen part (model/split.ts cacheSplit().extract, in inference
 * mode, wrapped in tf.tidy); another engine (e.g. ONNX Runtime) can stand in for it by returning
 * the same tensor. An extractor leaves no intermediate tensors; its result and the batches are
 * disposed here.
 */
export type FeatureExtractor = (xs: tf.Tensor) => tf.Tensor | Promise<tf.Tensor>;

/** Feature extraction stopped by an interrupt: nothing was cached, nothing trained. */
export class FeaturesInterruptedError extends Error {
  constructor(readonly what: string) {
    super(`interrupted while computing ${what}`);
  }
}

export async function computeFeatures(
  extract: FeatureExtractor,
  batches: BatchStream,
  opts: { count: number; labels: Uint8Array; label?: string; onBatch?: (n: number) => void; signal?: AbortSignal },
): Promise<FeatureSet> {
  let features: Float32Array | undefined;
  let shape: number[] = [];
  let dims = 0;
  let offset = 0;
  for await (const b of batches) {
    let f: tf.Tensor;
    try {
      f = await extract(b.xs);
    } finally {
      tf.dispose([b.xs, b.ys]);
    }
    const n = f.shape[0];
    if (!features) {
      shape = f.shape.slice(1);
      dims = shape.reduce((a, d) => a * d, 1);
      features = new Float32Array(opts.count * dims);
    }
    if (offset + n > opts.count) {
      f.dispose();
      throw new Error(`${opts.label ?? 'features'}: the batch stream gave more than ${opts.count} images`);
    }
    features.set((await f.data()) as Float32Array, offset * dims);
    f.dispose();
    offset += n;
    opts.onBatch?.(n);
    // Let a SIGINT (Kernel -> Interrupt) reach its handler, and stop here when it asked to.
    await yieldToEventLoop();
    if (opts.signal?.aborted) throw new FeaturesInterruptedError(`${opts.label ?? 'features'}, ${offset} of ${opts.count} images`);
  }
  if (!features || offset !== opts.count) throw new Error(`${opts.label ?? 'features'}: the batch stream gave ${offset} images, expected ${opts.count}`);
  return { features, labels: opts.labels.slice(0, opts.count), count: opts.count, dims, shape };
}

/**
 * Row buffers for batches of cached features, reused once the backend has let go of the tensor made
 * from them. A fresh 5 MB array per batch (quick's 64 x 5x5x768 maps) is external memory to V8: in a
 * tslab kernel, whose heap holds the TypeScript compiler, it started a full garbage collection every
 * six steps, and its concurrent marking took a core from XNNPACK's two threads (a step 170 ms slower
 * each time). Reuse waits until the backend no longer holds the tensor's data (a backend may keep the
 * array itself, as the cpu backend does), so it is safe on every backend.
 */
export class RowBuffers {
  private readonly slots: { buffer: Float32Array; held?: tf.Tensor }[] = [];
  constructor(private readonly max = 4) {}

  /** A tensor of `shape` whose values `fill` writes into a reused (or new) buffer. */
  tensor(shape: number[], fill: (buffer: Float32Array) => void): tf.Tensor {
    const size = shape.reduce((a, d) => a * d, 1);
    let slot = this.slots.find((s) => s.buffer.length === size && (!s.held || released(s.held)));
    if (!slot && this.slots.length < this.max) this.slots.push((slot = { buffer: new Float32Array(size) }));
    const buffer = slot?.buffer ?? new Float32Array(size);
    fill(buffer);
    const t = tf.tensor(buffer, shape);
    if (slot) slot.held = t;
    return t;
  }
}

/** True once the backend holds no data of `t` (disposed, and no other tensor shares its data). */
function released(t: tf.Tensor): boolean {
  return t.isDisposed && tf.engine().backend.refCount(t.dataId) === 0;
}

/** Batches of cached features, in the order of `order` (a permutation, or file order). */
export function* featureBatches(set: FeatureSet, batchSize: number, order: ArrayLike<number> | undefined, numClasses: number, buffers = new RowBuffers()): Generator<Batch> {
  const dims = set.dims;
  for (let start = 0; start < set.count; start += batchSize) {
    const n = Math.min(batchSize, set.count - start);
    const labels = new Int32Array(n);
    const xs = buffers.tensor([n, ...set.shape], (rows) => {
      for (let i = 0; i < n; i++) {
        const j = order ? order[start + i] : start + i;
        rows.set(set.features.subarray(j * dims, (j + 1) * dims), i * dims);
        labels[i] = set.labels[j];
      }
    });
    const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses).toFloat());
    yield { xs, ys };
  }
}
