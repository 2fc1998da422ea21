/**
 * The input pipeline: batches built lazily from the uint8 images, so only one batch of floats exists
 * at a time (the model resizes to its input size per batch). Shuffling and augmentation draw from
 * the Random passed in, so a checkpoint that saves rng.state resumes the same sequence.
 */
import { tf } from '../backend';
import { PhotoAugment, PreprocessMode } from '../config';
import { ImageSet, imageBytes } from '../data/types';
import { Random } from '../random';
import { oneHot, preprocessPixels } from './preprocess';
import { photoAugmentBatch } from './corruptions';

/** Zero padding on each side before the random crop (the CIFAR-10 ResNet recipe). */
export const AUGMENT_PAD = 4;

export interface BatchOptions {
  batchSize: number;
  /** A new seeded order every epoch (needs rng). */
  shuffle?: boolean;
  rng?: Random;
  /** Random crop with 4-pixel zero padding + horizontal flip (needs rng). */
  augment?: boolean;
  /** Photo-like corruptions (JPEG, blur, noise, colour jitter) after the crop + flip (needs rng). */
  photo?: PhotoAugment;
  mode: PreprocessMode;
  numClasses: number;
  labelSmoothing?: number;
  /** Leave out a last, smaller batch. */
  dropRemainder?: boolean;
}

export interface Batch {
  /** float32 [n, H, W, 3] at the stored size, preprocessed. */
  xs: tf.Tensor4D;
  /** float32 [n, numClasses] one-hot (smoothed when asked). */
  ys: tf.Tensor2D;
  /** Positions of these images in the set. */
  indices: Uint32Array;
}

/**
 * Writes image `index` of `set`, randomly shifted by up to `pad` pixels (zeros where the shift
 * uncovers the border) and flipped left-right with probability 1/2, at `out[offset..]`.
 * Draws three numbers from rng: the x offset, the y offset, the flip.
 */
export function augmentImage(set: ImageSet, index: number, rng: Random, out: Uint8Array, offset: number, pad = AUGMENT_PAD): void {
  const { width: W, height: H } = set;
  const dx = rng.int(2 * pad + 1) - pad;
  const dy = rng.int(2 * pad + 1) - pad;
  const flip = rng.next() < 0.5;
  const src = index * imageBytes(set);
  for (let y = 0; y < H; y++) {
    const sy = y + dy;
    for (let x = 0; x < W; x++) {
      const o = offset + (y * W + x) * 3;
      // Crop then flip: output column x shows cropped column W-1-x.
      const sx = (flip ? W - 1 - x : x) + dx;
      if (sy < 0 || sy >= H || sx < 0 || sx >= W) {
        out[o] = out[o + 1] = out[o + 2] = 0;
      } else {
        const s = src + (sy * W + sx) * 3;
        out[o] = set.images[s];
        out[o + 1] = set.images[s + 1];
        out[o + 2] = set.images[s + 2];
      }
    }
  }
}

/**
 * The images at `indices` as one uint8 NHWC block. With an rng: crop + flip (unless `cropFlip` is
 * false), then the `photo` corruptions (corruptions.ts photoAugmentBatch), drawn in the batch's order.
 */
export function gatherImages(set: ImageSet, indices: ArrayLike<number>, augmentRng?: Random, opts: { cropFlip?: boolean; photo?: PhotoAugment } = {}): Uint8Array {
  const size = imageBytes(set);
  const out = new Uint8Array(indices.length * size);
  const cropFlip = opts.cropFlip ?? true;
  const place = (i: number) => {
    if (augmentRng && cropFlip) augmentImage(set, indices[i], augmentRng, out, i * size);
    else out.set(set.images.subarray(indices[i] * size, (indices[i] + 1) * size), i * size);
  };
  if (augmentRng && opts.photo) photoAugmentBatch(out, indices.length, set.width, set.height, opts.photo, augmentRng, place);
  else for (let i = 0; i < indices.length; i++) place(i);
  return out;
}

/** A float32 tensor (0..255 RGB) of the images at `indices` (default all); the caller disposes it. */
export function imagesToTensor(set: ImageSet, indices?: ArrayLike<number>, augmentRng?: Random): tf.Tensor4D {
  const idx = indices ?? Uint32Array.from({ length: set.count }, (_, i) => i);
  const bytes = gatherImages(set, idx, augmentRng);
  return tf.tensor4d(new Float32Array(bytes), [idx.length, set.height, set.width, 3], 'float32');
}

function checkOptions(set: ImageSet, opts: BatchOptions): void {
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize > 0)) throw new Error(`batches: batchSize should be a positive integer, got ${opts.batchSize}`);
  if ((opts.shuffle || opts.augment || opts.photo) && !opts.rng) throw new Error('batches: shuffle and augment need a seeded rng (new Random(seed))');
  if (!(opts.numClasses > 0)) throw new Error(`batches: numClasses should be positive, got ${opts.numClasses}`);
  if (set.count === 0) throw new Error('batches: the image set is empty');
}

/** Number of batches one pass over `count` images gives. */
export function batchCount(count: number, batchSize: number, dropRemainder = false): number {
  return dropRemainder ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
}

/**
 * One epoch of batches. The order is drawn when iteration starts, augmentation as each batch is
 * built. Every yielded tensor belongs to the caller (dispose xs and ys).
 */
export function* batches(set: ImageSet, opts: BatchOptions): Generator<Batch, void, undefined> {
  checkOptions(set, opts);
  const order = opts.shuffle ? opts.rng!.permutation(set.count) : Uint32Array.from({ length: set.count }, (_, i) => i);
  const n = batchCount(set.count, opts.batchSize, opts.dropRemainder);
  for (let b = 0; b < n; b++) {
    const indices = order.slice(b * opts.batchSize, Math.min(set.count, (b + 1) * opts.batchSize));
    const labels = new Uint8Array(indices.length);
    for (let i = 0; i < indices.length; i++) labels[i] = set.labels[indices[i]];
    const augmenting = opts.augment || !!opts.photo;
    const pixels = gatherImages(set, indices, augmenting ? opts.rng : undefined, { cropFlip: !!opts.augment, photo: opts.photo });
    const xs = tf.tensor4d(preprocessPixels(pixels, opts.mode), [indices.length, set.height, set.width, 3], 'float32');
    const ys = oneHot(labels, opts.numClasses, opts.labelSmoothing ?? 0);
    yield { xs, ys, indices };
  }
}

/** A reusable description of the batches of a set: iterate it once per epoch. */
export class BatchStream implements Iterable<Batch> {
  constructor(readonly set: ImageSet, readonly opts: BatchOptions) {
    checkOptions(set, opts);
  }

  /** Batches per epoch. */
  get length(): number {
    return batchCount(this.set.count, this.opts.batchSize, this.opts.dropRemainder);
  }

  [Symbol.iterator](): Iterator<Batch> {
    return batches(this.set, this.opts);
  }
}
