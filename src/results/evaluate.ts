/**
 * Test-set evaluation: the trained model's class probabilities for every test image, computed in
 * batches (each inside tf.tidy), then accuracy, loss and the interpretation tables from the numbers
 * kept as typed arrays. Test-time augmentation (the mean of the probabilities for each image and its
 * mirror image) is reported separately, never mixed into the plain score.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf } from '../backend';
import { PreprocessMode } from '../config';
import { ImageSet, Dataset } from '../data/types';
import { md5FileSync } from '../data/download';
import { preprocess } from '../preprocess';
import { runModel } from '../model/engine';
import { accuracy, argmaxRows, confusionMatrix, mean, mostConfused, perClassMetrics, perExampleLoss, topLossIndices, ConfusedPair, ClassMetrics } from './metrics';

export interface EvaluateOptions {
  /** How the model's inputs are preprocessed (the backbone's mode: caffe, unit, torch, none). */
  mode: PreprocessMode;
  batchSize?: number;
  /** Also score with horizontal-flip test-time augmentation. */
  tta?: boolean;
  /** Called after each batch with the number of images done so far. */
  onProgress?: (done: number, total: number) => void;
}

/** Scores of one way of predicting (plain or with TTA). */
export interface Scores {
  accuracy: number;
  /** Mean categorical cross-entropy. */
  loss: number;
  /** count x numClasses, row-major. */
  probabilities: Float32Array;
  predictions: Int32Array;
  /** Cross-entropy of each image. */
  losses: Float32Array;
}

export interface Evaluation extends Scores {
  count: number;
  numClasses: number;
  labels: Uint8Array;
  tta?: Scores;
  seconds: number;
}

/** Float pixels 0..255 of images [start, end) of a set, as a [n, h, w, 3] tensor. */
function batchTensor(set: ImageSet, start: number, end: number): tf.Tensor4D {
  const size = set.height * set.width * 3;
  const bytes = set.images.subarray(start * size, end * size);
  return tf.tensor4d(Float32Array.from(bytes), [end - start, set.height, set.width, 3]);
}

/**
 * The model's class probabilities for every image of the set, in order ([count * numClasses]).
 * With `flip`, the images are mirrored left-right first.
 */
export async function predictSet(
  model: tf.LayersModel,
  set: ImageSet,
  opts: { mode: PreprocessMode; batchSize?: number; flip?: boolean; onBatch?: (done: number) => void },
): Promise<Float32Array> {
  const numClasses = outputClasses(model);
  const batchSize = opts.batchSize ?? 64;
  const out = new Float32Array(set.count * numClasses);
  for (let start = 0; start < set.count; start += batchSize) {
    const end = Math.min(set.count, start + batchSize);
    const x = tf.tidy(() => {
      const raw = batchTensor(set, start, end);
      return preprocess(opts.flip ? tf.image.flipLeftRight(raw) : raw, opts.mode);
    });
    const probs = await runModel(model, x).finally(() => x.dispose());
    try {
      if (probs.shape[1] !== numClasses) throw new Error(`model output has ${probs.shape[1]} columns, expected ${numClasses}`);
      out.set(await probs.data<'float32'>(), start * numClasses);
    } finally {
      probs.dispose();
    }
    opts.onBatch?.(end);
  }
  return out;
}

/** Number of classes the model predicts: the last dimension of its output. */
export function outputClasses(model: tf.LayersModel): number {
  const shape = model.outputs[0].shape;
  const n = shape[shape.length - 1];
  if (typeof n !== 'number' || n < 2) throw new Error(`model '${model.name}': output shape ${JSON.stringify(shape)} is not [batch, classes]`);
  return n;
}

/** Accuracy, loss, predictions and per-image losses from probabilities and labels. */
export function scoresFrom(probabilities: Float32Array, labels: ArrayLike<number>, numClasses: number): Scores {
  const predictions = argmaxRows(probabilities, numClasses);
  const losses = perExampleLoss(probabilities, labels, numClasses);
  return { accuracy: accuracy(labels, predictions), loss: mean(losses), probabilities, predictions, losses };
}

/** Evaluates a classifier (input: stored-size images preprocessed by `mode`; output: probabilities) on a set. */
export async function evaluate(model: tf.LayersModel, set: ImageSet, opts: EvaluateOptions): Promise<Evaluation> {
  if (set.count === 0) throw new Error('evaluate: the test set is empty');
  const t0 = performance.now();
  const numClasses = outputClasses(model);
  for (let i = 0; i < set.count; i++) {
    if (set.labels[i] >= numClasses) throw new Error(`evaluate: image ${i} has label ${set.labels[i]} but the model predicts ${numClasses} classes`);
  }
  const total = opts.tta ? set.count * 2 : set.count;
  const plain = await predictSet(model, set, { mode: opts.mode, batchSize: opts.batchSize, onBatch: (d) => opts.onProgress?.(d, total) });
  const result: Evaluation = { ...scoresFrom(plain, set.labels, numClasses), count: set.count, numClasses, labels: set.labels, seconds: 0 };
  if (opts.tta) {
    const flipped = await predictSet(model, set, { mode: opts.mode, batchSize: opts.batchSize, flip: true, onBatch: (d) => opts.onProgress?.(set.count + d, total) });
    const averaged = new Float32Array(plain.length);
    for (let i = 0; i < plain.length; i++) averaged[i] = (plain[i] + flipped[i]) / 2;
    result.tta = scoresFrom(averaged, set.labels, numClasses);
  }
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}

/** Scores of the images at `indices` (e.g. the exact first 1,000 CIFAR-10 test images). */
export function restrictScores(e: Evaluation, indices: ArrayLike<number>): Scores & { count: number } {
  const n = indices.length;
  const probabilities = new Float32Array(n * e.numClasses);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    if (!(j >= 0 && j < e.count)) throw new Error(`restrictScores: index ${j} outside 0..${e.count - 1}`);
    probabilities.set(e.probabilities.subarray(j * e.numClasses, (j + 1) * e.numClasses), i * e.numClasses);
    labels[i] = e.labels[j];
  }
  return { ...scoresFrom(probabilities, labels, e.numClasses), count: n };
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10 test subsets

/** md5 of test_batch.bin in the offline copy whose records 1000..9999 were rebuilt from JPEGs. */
export const SHARED_TEST_BATCH_MD5 = '5a681acb9c1f9822ef129630e7ab0cb5';
/** Records 0..999 of test_batch.bin have exact pixels in every copy we know. */
export const EXACT_TEST_RECORDS = 1000;

export interface TestSubset {
  name: string;
  description: string;
  indices: Int32Array;
}

/**
 * Subsets of the test set scored separately. For CIFAR-10: the first 1,000 test records, whose
 * pixels are exact even in the offline copy (where the other 9,000 come from JPEG copies).
 */
export function testSubsets(dataset: Pick<Dataset, 'name' | 'source'>, set: ImageSet): TestSubset[] {
  if (dataset.name !== 'cifar10' || set.count === 0) return [];
  const n = Math.min(EXACT_TEST_RECORDS, set.count);
  const file = path.join(dataset.source, 'test_batch.bin');
  // Only worth saying when the set reaches past the exact records.
  const jpegCopies = set.count > EXACT_TEST_RECORDS && fs.existsSync(file) && md5FileSync(file) === SHARED_TEST_BATCH_MD5;
  return [
    {
      name: 'first1000',
      description:
        `test records 0..${n - 1} (the original first ${n} CIFAR-10 test images, exact pixels)` +
        (jpegCopies ? '; records 1000..9999 of this copy are decoded from JPEG copies' : ''),
      indices: Int32Array.from({ length: n }, (_, i) => i),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Summaries

export interface GalleryItem {
  /** Position in the test set. */
  index: number;
  rgb: Uint8Array;
  width: number;
  height: number;
  actual: string;
  predicted: string;
  /** Probability of the predicted class. */
  confidence: number;
  /** Probability of the true class. */
  trueProbability: number;
  loss: number;
  caption: string;
}

/** The k test images with the highest loss: pixels, true and predicted class, confidence (for display.imageGrid). */
export function topLossGallery(set: ImageSet, e: Evaluation, classes: string[], k: number): GalleryItem[] {
  const size = set.height * set.width * 3;
  return topLossIndices(e.losses, k).map((i) => {
    const p = e.predictions[i];
    const confidence = e.probabilities[i * e.numClasses + p];
    const actual = classes[e.labels[i]];
    const predicted = classes[p];
    return {
      index: i,
      rgb: set.images.slice(i * size, (i + 1) * size),
      width: set.width,
      height: set.height,
      actual,
      predicted,
      confidence,
      trueProbability: e.probabilities[i * e.numClasses + e.labels[i]],
      loss: e.losses[i],
      caption: `#${i} ${actual} → ${predicted} ${(confidence * 100).toFixed(0)}%`,
    };
  });
}

/** What evaluation.json holds: every number of the results stage, no pixels or per-image arrays. */
export interface EvaluationSummary {
  classes: string[];
  count: number;
  accuracy: number;
  loss: number;
  tta: { accuracy: number; loss: number } | null;
  subsets: { name: string; description: string; count: number; accuracy: number; loss: number; tta: { accuracy: number; loss: number } | null }[];
  perClass: ClassMetrics[];
  confusion: number[][];
  mostConfused: ConfusedPair[];
  seconds: number;
  evaluatedAt: string;
}

export function summarize(e: Evaluation, classes: string[], subsets: TestSubset[] = []): EvaluationSummary {
  if (classes.length !== e.numClasses) throw new Error(`summarize: ${classes.length} class names for a ${e.numClasses}-class model`);
  const confusion = confusionMatrix(e.labels, e.predictions, e.numClasses);
  const ttaOf = (s?: Scores) => (s ? { accuracy: s.accuracy, loss: s.loss } : null);
  return {
    classes,
    count: e.count,
    accuracy: e.accuracy,
    loss: e.loss,
    tta: ttaOf(e.tta),
    subsets: subsets.map((s) => {
      const r = restrictScores(e, s.indices);
      const t = e.tta ? restrictScores({ ...e, ...e.tta }, s.indices) : undefined;
      return { name: s.name, description: s.description, count: r.count, accuracy: r.accuracy, loss: r.loss, tta: ttaOf(t) };
    }),
    perClass: perClassMetrics(confusion, classes),
    confusion,
    mostConfused: mostConfused(confusion, classes, 10),
    seconds: e.seconds,
    evaluatedAt: new Date().toISOString(),
  };
}

/** The headline numbers as table rows (metric, value) for display.table. */
export function metricsRows(s: EvaluationSummary): { set: string; images: number; accuracy: number; loss: number; tta_accuracy: number | null }[] {
  return [
    { set: 'test (all)', images: s.count, accuracy: s.accuracy, loss: s.loss, tta_accuracy: s.tta?.accuracy ?? null },
    ...s.subsets.map((x) => ({ set: x.name, images: x.count, accuracy: x.accuracy, loss: x.loss, tta_accuracy: x.tta?.accuracy ?? null })),
  ];
}
