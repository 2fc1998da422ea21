import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { projectRoot } from '../../src/config';
import { ImageSet } from '../../src/data/types';
import { evaluate, predictSet, summarize, topLossGallery, metricsRows, scoresFrom } from '../../src/results/evaluate';

const S = 4;

/**
 * Flatten -> Dense(2, softmax) whose class-0 logit is 2 x (red in the left half - red in the right
 * half), in 'unit' pixels: an image red on the left is class 0, its mirror image class 1.
 */
function sideModel(): tf.LayersModel {
  const model = tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [S, S, 3] }), tf.layers.dense({ units: 2, activation: 'softmax' })],
  });
  const kernel = new Float32Array(S * S * 3 * 2);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const i = (y * S + x) * 3; // red channel of pixel (y, x)
      const w = (x < S / 2 ? 1 : -1) * (2 / (S * S / 2));
      kernel[i * 2] = w;
      kernel[i * 2 + 1] = -w;
    }
  }
  model.layers[1].setWeights([tf.tensor2d(kernel, [S * S * 3, 2]), tf.zeros([2])]);
  return model;
}

/** count images, red on the left (label 0) or the right (label 1). */
function sideSet(sides: number[], labels: number[]): ImageSet {
  const images = new Uint8Array(sides.length * S * S * 3);
  sides.forEach((side, n) => {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const left = x < S / 2;
        if ((side === 0) === left) images[((n * S + y) * S + x) * 3] = 255;
      }
    }
  });
  return { images, labels: Uint8Array.from(labels), count: sides.length, height: S, width: S };
}

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

test('evaluate: accuracy, loss and predictions from batched predictions, no tensor left behind', async () => {
  const model = sideModel();
  // 5 images; the last two labels are wrong on purpose -> accuracy 3/5
  const set = sideSet([0, 1, 0, 1, 0], [0, 1, 0, 0, 1]);
  const before = tf.memory().numTensors;
  const progress: number[] = [];
  const e = await evaluate(model, set, { mode: 'unit', batchSize: 2, onProgress: (d) => progress.push(d) });
  assert.equal(tf.memory().numTensors, before, 'evaluate leaks no tensors');
  assert.deepEqual(progress, [2, 4, 5]);
  assert.deepEqual([...e.predictions], [0, 1, 0, 1, 0]);
  assert.equal(e.accuracy, 3 / 5);
  const p0 = e.probabilities[0];
  assert.ok(Math.abs(p0 - 1 / (1 + Math.exp(-4))) < 1e-5, `softmax of logits (2, -2): ${p0}`);
  const expectedLoss = (3 * -Math.log(p0) + 2 * -Math.log(1 - p0)) / 5;
  assert.ok(Math.abs(e.loss - expectedLoss) < 1e-5);
  assert.equal(e.tta, undefined);
  model.dispose();
});

test('evaluate with TTA averages each image with its mirror image, reported apart', async () => {
  const model = sideModel();
  const set = sideSet([0, 1], [0, 1]);
  const flipped = await predictSet(model, set, { mode: 'unit', flip: true });
  assert.ok(flipped[0] < 0.1 && flipped[1] > 0.9, 'the mirror of a left-red image looks right-red');
  const e = await evaluate(model, set, { mode: 'unit', tta: true, batchSize: 1 });
  assert.equal(e.accuracy, 1);
  assert.ok(e.tta);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(e.tta.probabilities[i] - 0.5) < 1e-6, 'this model is exactly flip-antisymmetric');
  assert.ok(Math.abs(e.tta.loss - Math.log(2)) < 1e-5);
  model.dispose();
});

test('evaluate names the problem for labels the model cannot predict and for an empty set', async () => {
  const model = sideModel();
  await assert.rejects(evaluate(model, sideSet([0], [7]), { mode: 'unit' }), /image 0 has label 7 but the model predicts 2 classes/);
  await assert.rejects(evaluate(model, sideSet([], []), { mode: 'unit' }), /test set is empty/);
  model.dispose();
});

test('summary and gallery are computed from the kept numbers', () => {
  // 3 classes, 4 images: probabilities chosen by hand
  const probs = Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.3, 0.6, 0.2, 0.5, 0.3, 0.05, 0.05, 0.9]);
  const labels = Uint8Array.from([0, 1, 1, 2]);
  const scores = scoresFrom(probs, labels, 3);
  const e = { ...scores, count: 4, numClasses: 3, labels, seconds: 1 };
  assert.deepEqual([...e.predictions], [0, 2, 1, 2]);
  const s = summarize(e, ['a', 'b', 'c']);
  assert.equal(s.count, 4);
  assert.equal(s.accuracy, 0.75);
  assert.ok(Math.abs(s.loss - (-Math.log(0.7) - Math.log(0.3) - Math.log(0.5) - Math.log(0.9)) / 4) < 1e-6);
  assert.deepEqual(s.confusion, [[1, 0, 0], [0, 1, 1], [0, 0, 1]]);
  assert.deepEqual(s.mostConfused, [{ actual: 'b', predicted: 'c', count: 1 }]);
  assert.equal(s.tta, null);
  assert.deepEqual(metricsRows(s), [{ set: 'test (all)', images: 4, accuracy: 0.75, loss: s.loss, tta_accuracy: null }]);
  assert.throws(() => summarize(e, ['a', 'b']), /2 class names for a 3-class model/);

  const set: ImageSet = { images: Uint8Array.from({ length: 4 * 2 * 2 * 3 }, (_, i) => i), labels, count: 4, height: 2, width: 2 };
  const g = topLossGallery(set, e, ['a', 'b', 'c'], 2);
  assert.deepEqual(g.map((x) => x.index), [1, 2], 'largest losses: image 1 (p=0.3), then image 2 (p=0.5)');
  assert.equal(g[0].actual, 'b');
  assert.equal(g[0].predicted, 'c');
  assert.ok(Math.abs(g[0].confidence - 0.6) < 1e-6);
  assert.deepEqual([...g[0].rgb], Array.from({ length: 12 }, (_, i) => 12 + i));
  assert.match(g[0].caption, /^#1 b → c 60%$/);
});

const sharedCifar = process.env.CIFAR10_DIR || path.resolve(projectRoot, '../shared/data/cifar-10-batches-bin');
const noShared = fs.existsSync(path.join(sharedCifar, 'test_batch.bin')) ? false : `no CIFAR-10 copy at ${sharedCifar} (set CIFAR10_DIR)`;

test('evaluateRun + saveEvaluation: one accuracy over all 10,000 real test images, saved and read back', { skip: noShared, timeout: 120_000 }, async (t) => {
  const { saveModel } = await import('../../src/model/io');
  const { evaluateRun, saveEvaluation } = await import('../../src/results/run');
  const { readRunRow } = await import('../../src/results/runs');
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-evalrun-'));
  t.after(() => fs.rmSync(run, { recursive: true, force: true }));
  const profile = {
    name: 'tiny', description: '',
    data: { source: 'cifar10', dir: sharedCifar, trainLimit: 10, valFraction: 0, imageSize: 32 },
    model: { arch: 'darknet-tiny', head: 'gap', inputSize: 64, weights: 'none' },
    train: { batchSize: 1000, seed: 1, labelSmoothing: 0, augment: false, featureCache: false, phases: [] },
    results: { tta: true, galleryCount: 4 },
  };
  fs.writeFileSync(path.join(run, 'profile.json'), JSON.stringify(profile));
  const model = tf.sequential({ layers: [tf.layers.globalAveragePooling2d({ inputShape: [32, 32, 3] }), tf.layers.dense({ units: 10, activation: 'softmax' })] });
  await saveModel(model, path.join(run, 'model'));
  model.dispose();
  const r = await evaluateRun({ profile: profile as never, runDir: run }, { progress: false });
  assert.equal(r.testSource, 'test');
  assert.equal(r.mode, 'unit', "darknet-tiny's preprocessing, from its preset");
  assert.equal(r.summary.count, 10000, 'no testLimit: every test image is scored');
  assert.equal(r.summary.classes[0], 'airplane');
  assert.ok(r.summary.tta && r.evaluation.tta, 'the profile asked for TTA');
  assert.deepEqual(r.summary.confusion.map((row) => row.reduce((a, b) => a + b, 0)), Array(10).fill(1000), 'the official test set: 1,000 images per class');
  const correct = r.summary.confusion.reduce((sum, row, i) => sum + row[i], 0);
  assert.equal(r.summary.accuracy, correct / 10000, 'the accuracy is over all 10,000 images');
  assert.deepEqual(metricsRows(r.summary).map((m) => [m.set, m.images]), [['test (all)', 10000]]);
  const file = saveEvaluation(run, r.summary);
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(saved.accuracy, r.summary.accuracy);
  assert.equal(saved.count, 10000);
  assert.ok(!('subsets' in saved), 'evaluation.json has no subsets');
  const row = readRunRow(run);
  assert.equal(row.test_accuracy, r.summary.accuracy);
  assert.equal(row.test_images, 10000);
});
