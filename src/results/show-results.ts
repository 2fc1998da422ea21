/**
 * fastai's show_results: a grid of test images with what the model said, right and wrong side by
 * side, and the confusion matrix as shares of each true class (rows sum to 100%).
 */
import type { ImageSet } from '../data/types';
import type { Evaluation, GalleryItem } from './evaluate';

/**
 * The first `perKind` correctly and `perKind` wrongly classified test images, in test-set order
 * (deterministic: the same images for every run on the same data), right ones first.
 */
export function sampleResults(set: ImageSet, e: Evaluation, classes: string[], perKind = 8): GalleryItem[] {
  const size = set.height * set.width * 3;
  const right: number[] = [];
  const wrong: number[] = [];
  for (let i = 0; i < e.count && (right.length < perKind || wrong.length < perKind); i++) {
    const list = e.predictions[i] === e.labels[i] ? right : wrong;
    if (list.length < perKind) list.push(i);
  }
  return [...right, ...wrong].map((i) => {
    const p = e.predictions[i];
    const confidence = e.probabilities[i * e.numClasses + p];
    const actual = classes[e.labels[i]];
    const predicted = classes[p];
    const ok = p === e.labels[i];
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
      caption: ok ? `✓ ${actual} ${(confidence * 100).toFixed(0)}%` : `✗ ${actual} → ${predicted} ${(confidence * 100).toFixed(0)}%`,
    };
  });
}

/** Each row of a confusion matrix as shares of its true class (a row of zeros stays zeros). */
export function normalizeRows(matrix: number[][]): number[][] {
  return matrix.map((row) => {
    const total = row.reduce((s, v) => s + v, 0);
    return row.map((v) => (total ? v / total : 0));
  });
}
