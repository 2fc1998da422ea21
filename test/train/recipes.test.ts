/** The recipes built on the loop's hooks: one-cycle schedule, gradient clipping, best weights restored. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Phase } from '../../src/config';
import type { CacheSplit } from '../../src/model/split';
import { loadProfile } from '../../src/config';
import { train, history, learningRateAt, readCheckpointState, latestCheckpoint } from '../../src/train';
import { clipByGlobalNorm } from '../../src/train/loop';
import { stableWeights } from '../../src/model/split';
import { syntheticData, testProfile, tempSession, tinyResnetLike, numbersOf } from './fixtures';

test('one-cycle: cosine up from lr/divFactor to lr over pctStart, then down to lr/(divFactor*finalDivFactor)', () => {
  const p: Phase = { name: 'x', trainable: 'all', optimizer: 'sgd', lr: 0.1, epochs: 4, schedule: { kind: 'one-cycle', pctStart: 0.25, divFactor: 10, finalDivFactor: 100 } };
  const rates = Array.from({ length: 40 }, (_, t) => learningRateAt(p, Math.floor(t / 10), t % 10, 10));
  assert.ok(Math.abs(rates[0] - 0.01) < 1e-12, `starts at lr/divFactor: ${rates[0]}`);
  assert.ok(Math.abs(rates[10] - 0.1) < 1e-12, 'peaks after pctStart of the steps');
  assert.ok(rates.slice(0, 11).every((r, i) => i === 0 || r > rates[i - 1]), 'rising');
  assert.ok(rates.slice(10).every((r, i) => i === 0 || r < rates[10 + i - 1]), 'falling');
  assert.ok(Math.abs(rates[39] - 0.1 / 10 / 100) < 1e-12, `ends at lr/(div*finalDiv): ${rates[39]}`);
  assert.ok(Math.max(...rates) <= 0.1 + 1e-12);
  assert.throws(() => loadProfile('smoke', ['train.phases.0.schedule={"kind":"one-cycle","pctStart":1.5}']), /train\.phases\.0\.schedule\.pctStart' should be a number in \(0, 1\)/);
  assert.throws(() => loadProfile('smoke', ['train.phases.0.schedule={"kind":"triangle"}']), /schedule\.kind' should be an object with kind 'constant', 'cosine' or 'one-cycle'/);
});

test('clipByGlobalNorm scales all gradients together to the norm, and leaves small ones alone', () => {
  const grads = { a: tf.tensor([3, 0]), b: tf.tensor([[0, 4]]) };
  const clipped = clipByGlobalNorm(grads, 1);
  assert.deepEqual(Array.from(clipped.a.dataSync()).map((v) => +v.toFixed(6)), [0.6, 0]);
  assert.deepEqual(Array.from(clipped.b.dataSync()).map((v) => +v.toFixed(6)), [0, 0.8]);
  const same = clipByGlobalNorm(grads, 10);
  assert.deepEqual(Array.from(same.a.dataSync()), [3, 0]);
  tf.dispose([grads.a, grads.b, clipped.a, clipped.b, same.a, same.b]);
  assert.throws(() => loadProfile('smoke', ['train.phases.0.clipNorm=0']), /train\.phases\.0\.clipNorm' should be a finite positive number/);
});

test('clipNorm bounds each step: the weights move at most lr x clipNorm per step', async () => {
  const phase: Phase = { name: 'finetune-all', trainable: 'all', optimizer: 'sgd', lr: 1, epochs: 1 };
  const moved = async (p: Phase) => {
    const s = await tempSession(testProfile([p]));
    const built = tinyResnetLike();
    const before = built.model.trainableWeights.map((w) => w.read().clone());
    await train(s, { built, data: syntheticData(64, 32), progress: 'none', saveModel: false });
    const norm = tf.tidy(() => tf.sqrt(tf.addN(built.model.trainableWeights.map((w, i) => tf.sum(tf.square(tf.sub(w.read(), before[i]))))) as tf.Scalar).dataSync()[0]);
    tf.dispose(before);
    return norm;
  };
  const steps = 2; // 64 images, batches of 32
  const clipped = await moved({ ...phase, clipNorm: 1e-3 });
  assert.ok(clipped <= steps * 1e-3 * (1 + 1e-4) && clipped > 1e-3, `moved ${clipped}`);
  const free = await moved(phase);
  assert.ok(free > 10 * clipped, `unclipped moved ${free}`);
});

test('restoreBestWeights: the phase ends with the weights of its best epoch, also across a resume', async () => {
  // Validation accuracy here reaches its plateau at epoch 3 and stays: epochs 4 and 5 do not improve it.
  const phases: Phase[] = [{ name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 5 }];
  const extra = { restoreBestWeights: { monitor: 'val_accuracy' as const } };
  const a = await tempSession(testProfile(phases, extra));
  const built = tinyResnetLike();
  const snapshots: number[][][] = [];
  await train(a, { built, data: syntheticData(64, 32), progress: 'none', saveModel: false, onEpoch: () => snapshots.push(stableWeights(built.head).map((w) => Array.from(w.read().dataSync()))) });
  const rows = history(a.runDir).toRecords();
  const losses = rows.map((r) => r.val_accuracy as number);
  const bestIndex = losses.indexOf(Math.max(...losses));
  assert.notEqual(bestIndex, losses.length - 1, `the last epoch should not be the best here: ${losses.join(', ')}`);
  const final = stableWeights(built.head).map((w) => Array.from(w.read().dataSync()));
  assert.deepEqual(final, snapshots[bestIndex], `restored epoch ${bestIndex + 1}`);
  assert.equal((readCheckpointState(latestCheckpoint(a.runDir)!).best as { epoch: number } | undefined)?.epoch, bestIndex + 1);

  // Interrupted before the end: the best copy rides in the checkpoint, the result is the same.
  const b = await tempSession(testProfile(phases, extra));
  await train(b, { built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none', saveModel: false, stopAfterEpochs: bestIndex + 2 });
  const builtB = tinyResnetLike(42);
  await train(b, { built: builtB, data: syntheticData(64, 32), progress: 'none', saveModel: false });
  assert.deepEqual(numbersOf(history(b.runDir).toRecords()), numbersOf(rows));
  assert.deepEqual(stableWeights(builtB.head).map((w) => Array.from(w.read().dataSync())), final);
});

test('featureExtractor: another engine computes the cached features (the hook ONNX Runtime can use), same numbers', async () => {
  const phases: Phase[] = [{ name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 2 }];
  const plain = await tempSession(testProfile(phases));
  // TF.js synchronously, as the default does when ONNX Runtime is absent (ORT differs in the last bits).
  const tfjsExtractor = (split: CacheSplit) => (xs: tf.Tensor) => tf.tidy(() => split.extract(xs));
  await train(plain, { built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none', saveModel: false, featureExtractor: tfjsExtractor });
  const hooked = await tempSession(testProfile(phases));
  let images = 0;
  await train(hooked, {
    built: tinyResnetLike(),
    data: syntheticData(64, 32),
    progress: 'none',
    saveModel: false,
    // An asynchronous engine, as ONNX Runtime's session.run is.
    featureExtractor: (split) => async (xs) => {
      images += xs.shape[0];
      return tf.tidy(() => split.extract(xs));
    },
  });
  assert.equal(images, 64 + 32, 'train and val features, once each');
  assert.deepEqual(numbersOf(history(hooked.runDir).toRecords()), numbersOf(history(plain.runDir).toRecords()));
});

test('an AbortSignal stops the run at the next batch with a mid-epoch checkpoint; the resume goes on inside the epoch, numbers unchanged', async () => {
  const phases: Phase[] = [{ name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 3 }];
  const full = await tempSession(testProfile(phases, { batchSize: 16 }));
  await train(full, { built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none', saveModel: false });
  const s = await tempSession(testProfile(phases, { batchSize: 16 }));
  const controller = new AbortController();
  let batches = 0;
  // Interrupt in the middle of the second epoch (4 batches per epoch), as Kernel -> Interrupt would:
  // this callback runs after StopOnAbort, so the run stops after the next batch, epoch 2's second.
  const interrupter = { onBatchEnd: () => (++batches === 5 ? controller.abort() : undefined) };
  const r = await train(s, { built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none', saveModel: false, signal: controller.signal, callbacks: [interrupter] });
  assert.equal(r.status, 'interrupted');
  assert.equal(r.epochs, 1);
  assert.equal(history(s.runDir).height, 1, 'the interrupted epoch has no row yet');
  const ck = latestCheckpoint(s.runDir)!;
  assert.match(ck, /epoch-0001\+000002$/);
  assert.deepEqual({ epoch: readCheckpointState(ck).epoch, step: readCheckpointState(ck).partial?.step }, { epoch: 1, step: 2 });
  const resumed = await train(s, { built: tinyResnetLike(9), data: syntheticData(64, 32), progress: 'none', saveModel: false });
  assert.equal(resumed.status, 'finished');
  assert.equal(resumed.resumedFrom, ck);
  assert.deepEqual(numbersOf(history(s.runDir).toRecords()), numbersOf(history(full.runDir).toRecords()));
  assert.deepEqual(numbersOf(history(s.runDir, 'batches').toRecords()), numbersOf(history(full.runDir, 'batches').toRecords()));
});
