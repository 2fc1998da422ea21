/**
 * Test-set evaluation: the trained model's class probabilities for every test image, computed in
 * batches (each inside tf.tidy), then accuracy, loss and the interpretation tables from the numbers
 * kept as typed arrays. Test-time augmentation (the mean of the probabilities for each image and its
 * mirror image) is reported separately, never mixed into the plain score.
 */
import { tf } from '../backend';
import { PreprocessMode } from '../config';
import { ImageSet } from '../data/types';
import { preprocess } from '../preprocess';
import { runModel } from '../model/engine';
import type { RobustnessSummary } from './robustness';
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

/** Test image `i` with what the model said about it; `caption` writes its label. */
export function galleryItem(set: ImageSet, e: Evaluation, classes: string[], i: number, caption: (item: Omit<GalleryItem, 'caption'>) => string): GalleryItem {
  const size = set.height * set.width * 3;
  const p = e.predictions[i];
  const item = {
    index: i,
    rgb: set.images.slice(i * size, (i + 1) * size),
    width: set.width,
    height: set.height,
    actual: classes[e.labels[i]],
    predicted: classes[p],
    confidence: e.probabilities[i * e.numClasses + p],
    trueProbability: e.probabilities[i * e.numClasses + e.labels[i]],
    loss: e.losses[i],
  };
  return { ...item, caption: caption(item) };
}

/** The k test images with the highest loss: pixels, true and predicted class, confidence (for display.imageGrid). */
export function topLossGallery(set: ImageSet, e: Evaluation, classes: string[], k: number): GalleryItem[] {
  return topLossIndices(e.losses, k).map((i) =>
    galleryItem(set, e, classes, i, (g) => `#${i} ${g.actual} → ${g.predicted} ${(g.confidence * 100).toFixed(0)}%`),
  );
}

/** What evaluation.json holds: every number of the results stage, no pixels or per-image arrays. */
export interface EvaluationSummary {
  classes: string[];
  count: number;
  accuracy: number;
  loss: number;
  tta: { accuracy: number; loss: number } | null;
  perClass: ClassMetrics[];
  confusion: number[][];
  mostConfused: ConfusedPair[];
  seconds: number;
  evaluatedAt: string;
  /** The test set corrupted in memory, scored the same way (results.robustness); absent when not asked for. */
  robustness?: RobustnessSummary;
}

export function summarize(e: Evaluation, classes: string[]): EvaluationSummary {
  if (classes.length !== e.numClasses) throw new Error(`summarize: ${classes.length} class names for a ${e.numClasses}-class model`);
  const confusion = confusionMatrix(e.labels, e.predictions, e.numClasses);
  const ttaOf = (s?: Scores) => (s ? { accuracy: s.accuracy, loss: s.loss } : null);
  return {
    classes,
    count: e.count,
    accuracy: e.accuracy,
    loss: e.loss,
    tta: ttaOf(e.tta),
    perClass: perClassMetrics(confusion, classes),
    confusion,
    mostConfused: mostConfused(confusion, classes, 10),
    seconds: e.seconds,
    evaluatedAt: new Date().toISOString(),
  };
}

/** The headline numbers as table rows (metric, value) for display.table. */
export function metricsRows(s: EvaluationSummary): { set: string; images: number; accuracy: number; loss: number; tta_accuracy: number | null }[] {
  return [{ set: 'test (all)', images: s.count, accuracy: s.accuracy, loss: s.loss, tta_accuracy: s.tta?.accuracy ?? null }];
}
