import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  accuracy, argmaxRows, perExampleLoss, confusionMatrix, perClassMetrics, perClassTable,
  mostConfused, topLossIndices, topK, mean, LOG_EPSILON,
} from '../../src/results/metrics';

const classes = ['cat', 'dog', 'bird'];
// 8 examples: true labels and predictions chosen so every metric has a known value.
const labels = [0, 0, 0, 1, 1, 1, 2, 2];
const preds = [0, 0, 1, 1, 1, 0, 1, 2];

test('accuracy counts matches and rejects mismatched lengths', () => {
  assert.equal(accuracy(labels, preds), 5 / 8);
  assert.ok(Number.isNaN(accuracy([], [])));
  assert.throws(() => accuracy([1, 2], [1]), /2 labels but 1 predictions/);
});

test('argmaxRows picks the largest column per row, first on ties', () => {
  assert.deepEqual([...argmaxRows([0.1, 0.7, 0.2, 0.5, 0.5, 0, 0, 0, 1], 3)], [1, 0, 2]);
  assert.throws(() => argmaxRows([1, 2, 3, 4], 3), /not a multiple of 3/);
});

test('perExampleLoss is -log p(true) clipped like Keras', () => {
  const losses = perExampleLoss([0.5, 0.5, 0.25, 0.75, 1, 0], [0, 1, 1], 2);
  assert.ok(Math.abs(losses[0] - Math.log(2)) < 1e-6);
  assert.ok(Math.abs(losses[1] - -Math.log(0.75)) < 1e-6);
  assert.ok(Math.abs(losses[2] - -Math.log(LOG_EPSILON)) < 1e-4, 'p=0 is clipped, not infinite');
  assert.ok(Math.abs(mean([1, 2, 3]) - 2) < 1e-12);
});

test('confusionMatrix counts rows as the true class', () => {
  const m = confusionMatrix(labels, preds, 3);
  assert.deepEqual(m, [
    [2, 1, 0],
    [1, 2, 0],
    [0, 1, 1],
  ]);
  assert.throws(() => confusionMatrix([0, 3], [0, 0], 3), /example 1 has label 3/);
});

test('perClassMetrics: precision by column, recall by row, F1 their harmonic mean', () => {
  const rows = perClassMetrics(confusionMatrix(labels, preds, 3), classes);
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  close(rows[0].precision, 2 / 3);
  close(rows[0].recall, 2 / 3);
  close(rows[1].precision, 2 / 4);
  close(rows[1].recall, 2 / 3);
  close(rows[1].f1, (2 * 0.5 * (2 / 3)) / (0.5 + 2 / 3));
  close(rows[2].precision, 1);
  close(rows[2].recall, 0.5);
  assert.deepEqual(rows.map((r) => r.support), [3, 3, 2]);
  // a class never predicted and never present scores 0, not NaN
  const empty = perClassMetrics([[1, 0], [0, 0]], ['a', 'b']);
  assert.deepEqual([empty[1].precision, empty[1].recall, empty[1].f1], [0, 0, 0]);
});

test('perClassTable is a polars DataFrame with a macro-average row', () => {
  const df = perClassTable(confusionMatrix(labels, preds, 3), classes);
  assert.deepEqual(df.columns, ['class', 'precision', 'recall', 'f1', 'support']);
  assert.equal(df.height, 4);
  const recs = df.toRecords() as Record<string, unknown>[];
  assert.equal(recs[3].class, 'macro avg');
  assert.equal(recs[3].support, 8);
  assert.equal(recs[2].recall, 0.5);
  assert.equal(recs[3].recall, Math.round(((2 / 3 + 2 / 3 + 0.5) / 3) * 1e4) / 1e4);
});

test('mostConfused lists off-diagonal cells largest first', () => {
  const m = [
    [5, 3, 0],
    [4, 6, 1],
    [0, 3, 2],
  ];
  assert.deepEqual(mostConfused(m, classes, 3), [
    { actual: 'dog', predicted: 'cat', count: 4 },
    { actual: 'cat', predicted: 'dog', count: 3 },
    { actual: 'bird', predicted: 'dog', count: 3 },
  ]);
  assert.equal(mostConfused(m, classes, 10, 2).length, 3);
  assert.equal(mostConfused(m, classes, 10).length, 4);
});

test('topLossIndices and topK order by value, ties by index', () => {
  assert.deepEqual(topLossIndices([0.1, 2, 0.5, 2, 0], 3), [1, 3, 2]);
  assert.deepEqual(topLossIndices([1], 5), [0]);
  assert.deepEqual(topK([0.1, 0.6, 0.3, 0.2, 0.2, 0.6], 1, 3, 2), [
    { index: 2, probability: 0.6 },
    { index: 0, probability: 0.2 },
  ]);
});
