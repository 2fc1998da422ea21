/**
 * Classification metrics as pure functions over typed arrays: what the model got right, which
 * classes it mixes up and which images it fails on most (fastai's ClassificationInterpretation).
 * Nothing here touches TensorFlow, so every function is tested on hand-made inputs.
 */
import pl from 'nodejs-polars';

/** Labels are class indices; anything array-like of integers. */
export type IndexArray = ArrayLike<number>;

function checkSameLength(a: IndexArray, b: IndexArray, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} labels but ${b.length} predictions`);
}

/** Fraction of positions where prediction equals label (NaN for no examples). */
export function accuracy(labels: IndexArray, predictions: IndexArray): number {
  checkSameLength(labels, predictions, 'accuracy');
  if (labels.length === 0) return NaN;
  let right = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === predictions[i]) right++;
  return right / labels.length;
}

/** Row-wise argmax of a [count, numClasses] probability matrix stored flat. */
export function argmaxRows(probabilities: ArrayLike<number>, numClasses: number): Int32Array {
  if (probabilities.length % numClasses !== 0) {
    throw new Error(`argmaxRows: ${probabilities.length} values is not a multiple of ${numClasses} classes`);
  }
  const count = probabilities.length / numClasses;
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (probabilities[i * numClasses + c] > probabilities[i * numClasses + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** Smallest probability the loss sees, as Keras clips with epsilon 1e-7 before the log. */
export const LOG_EPSILON = 1e-7;

/** Categorical cross-entropy of each example: -log p(true class), clipped like Keras. */
export function perExampleLoss(probabilities: ArrayLike<number>, labels: IndexArray, numClasses: number): Float32Array {
  if (probabilities.length !== labels.length * numClasses) {
    throw new Error(`perExampleLoss: ${probabilities.length} probabilities for ${labels.length} labels x ${numClasses} classes`);
  }
  const out = new Float32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const p = probabilities[i * numClasses + labels[i]];
    out[i] = -Math.log(Math.min(1 - LOG_EPSILON, Math.max(LOG_EPSILON, p)));
  }
  return out;
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** counts[actual][predicted]. Labels outside 0..numClasses-1 are an error naming the position. */
export function confusionMatrix(labels: IndexArray, predictions: IndexArray, numClasses: number): number[][] {
  checkSameLength(labels, predictions, 'confusionMatrix');
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const a = labels[i];
    const p = predictions[i];
    if (!(a >= 0 && a < numClasses && p >= 0 && p < numClasses)) {
      throw new Error(`confusionMatrix: example ${i} has label ${a} / prediction ${p}, expected 0..${numClasses - 1}`);
    }
    m[a][p]++;
  }
  return m;
}

export type ClassMetrics = {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  /** Test examples whose true class this is. */
  support: number;
};

/**
 * Precision, recall and F1 for each class from a confusion matrix. A class never predicted has
 * precision 0 (as scikit-learn's zero_division=0), a class with no examples recall 0.
 */
export function perClassMetrics(matrix: number[][], classes: string[]): ClassMetrics[] {
  if (matrix.length !== classes.length) throw new Error(`perClassMetrics: ${matrix.length} rows for ${classes.length} classes`);
  return classes.map((name, c) => {
    const tp = matrix[c][c];
    const support = matrix[c].reduce((s, v) => s + v, 0);
    const predicted = matrix.reduce((s, row) => s + row[c], 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { class: name, precision, recall, f1, support };
  });
}

/** The per-class metrics as a polars DataFrame, with a macro-average row last. */
export function perClassTable(matrix: number[][], classes: string[]): pl.DataFrame {
  const rows = perClassMetrics(matrix, classes);
  const avg = (k: 'precision' | 'recall' | 'f1') => mean(rows.map((r) => r[k]));
  const all = [...rows, { class: 'macro avg', precision: avg('precision'), recall: avg('recall'), f1: avg('f1'), support: rows.reduce((s, r) => s + r.support, 0) }];
  return pl.DataFrame([
    pl.Series('class', all.map((r) => r.class)),
    pl.Series('precision', all.map((r) => round(r.precision, 4)), pl.Float64),
    pl.Series('recall', all.map((r) => round(r.recall, 4)), pl.Float64),
    pl.Series('f1', all.map((r) => round(r.f1, 4)), pl.Float64),
    pl.Series('support', all.map((r) => r.support), pl.Int32),
  ]);
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export type ConfusedPair = {
  actual: string;
  predicted: string;
  count: number;
};

/** Off-diagonal cells, largest first (ties: by actual then predicted index), as fastai's most_confused. */
export function mostConfused(matrix: number[][], classes: string[], top = 10, minCount = 1): ConfusedPair[] {
  const pairs: (ConfusedPair & { a: number; p: number })[] = [];
  matrix.forEach((row, a) =>
    row.forEach((count, p) => {
      if (a !== p && count >= minCount) pairs.push({ actual: classes[a], predicted: classes[p], count, a, p });
    }),
  );
  pairs.sort((x, y) => y.count - x.count || x.a - y.a || x.p - y.p);
  return pairs.slice(0, top).map(({ actual, predicted, count }) => ({ actual, predicted, count }));
}

/** Indices of the k largest losses, largest first (ties: lower index first). */
export function topLossIndices(losses: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: losses.length }, (_, i) => i);
  idx.sort((a, b) => losses[b] - losses[a] || a - b);
  return idx.slice(0, Math.max(0, k));
}

/** The k largest probabilities of one row: [{index, probability}], largest first. */
export function topK(probabilities: ArrayLike<number>, row: number, numClasses: number, k: number): { index: number; probability: number }[] {
  const items = Array.from({ length: numClasses }, (_, c) => ({ index: c, probability: probabilities[row * numClasses + c] }));
  items.sort((a, b) => b.probability - a.probability || a.index - b.index);
  return items.slice(0, k);
}
