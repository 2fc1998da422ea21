/**
 * fastai's show_results: a grid of test images with what the model said, right and wrong side by
 * side, and the confusion matrix as shares of each true class (rows sum to 100%).
 */
import type { ImageSet } from '../data/types';
import { galleryItem, type Evaluation, type GalleryItem } from './evaluate';

/**
 * The first `perKind` correctly and `perKind` wrongly classified test images, in test-set order
 * (deterministic: the same images for every run on the same data), right ones first.
 */
export function sampleResults(set: ImageSet, e: Evaluation, classes: string[], perKind = 8): GalleryItem[] {
  const right: number[] = [];
  const wrong: number[] = [];
  for (let i = 0; i < e.count && (right.length < perKind || wrong.length < perKind); i++) {
    const list = e.predictions[i] === e.labels[i] ? right : wrong;
    if (list.length < perKind) list.push(i);
  }
  return [...right, ...wrong].map((i) =>
    galleryItem(set, e, classes, i, (g) =>
      g.actual === g.predicted ? `✓ ${g.actual} ${(g.confidence * 100).toFixed(0)}%` : `✗ ${g.actual} → ${g.predicted} ${(g.confidence * 100).toFixed(0)}%`,
    ),
  );
}

/** Each row of a confusion matrix as shares of its true class (a row of zeros stays zeros). */
export function normalizeRows(matrix: number[][]): number[][] {
  return matrix.map((row) => {
    const total = row.reduce((s, v) => s + v, 0);
    return row.map((v) => (total ? v / total : 0));
  });
}
