import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { train, readTrainSummary, history, TrainingDivergedError, latestCheckpoint, readCheckpointState } from '../../src/train';
import { syntheticData, testProfile, tempSession, tinyResnetLike, numbersOf } from './fixtures';
import type { Phase } from '../../src/config';

const headPhase: Phase = { name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 2 };
const allPhase: Phase = { name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 2 };

test('learns the synthetic task, writes history, summary and checkpoints', async () => {
  const s = await tempSession(testProfile([{ ...allPhase, epochs: 4 }]));
  const r = await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none' });
  assert.equal(r.status, 'finished');
  assert.equal(r.epochs, 4);
  assert.ok(r.finalValAccuracy! > 0.6, `val accuracy ${r.finalValAccuracy} should beat chance (0.33) clearly`);
  const df = history(s.runDir);
  assert.deepEqual(df.getColumn('epoch').toArray(), [1, 2, 3, 4]);
  for (const c of ['phase', 'epoch', 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds']) assert.ok(df.columns.includes(c), c);
  const batches = history(s.runDir, 'batches');
  assert.equal(batches.height, 4 * 3); // 96 images / 32
  assert.ok(fs.existsSync(path.join(s.runDir, 'history.csv')) && fs.existsSync(path.join(s.runDir, 'model', 'model.json')));
  const summary = readTrainSummary(s.runDir)!;
  assert.equal(summary.epochs, 4);
  assert.equal(summary.backend, 'cpu');
  assert.ok(summary.wallSeconds > 0);
  // Finished run: a second call trains nothing.
  const again = await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none' });
  assert.equal(again.status, 'already-finished');
  assert.equal(history(s.runDir).height, 4);
});

test('no tensor leaks: numTensors is the same after every epoch (3 epochs, full model and cached head)', async () => {
  for (const phase of [{ ...allPhase, epochs: 3 }, { ...headPhase, epochs: 3 }]) {
    const s = await tempSession(testProfile([phase]));
    const counts: number[] = [];
    await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false, onEpoch: () => counts.push(tf.memory().numTensors) });
    assert.equal(counts.length, 3);
    assert.ok(counts.every((c) => c === counts[0]), `${phase.name}: numTensors per epoch ${counts.join(', ')}`);
  }
});

test('resume after an interruption gives each epoch once, with the numbers of an uninterrupted run', async () => {
  const phases: Phase[] = [
    { ...allPhase, epochs: 2, schedule: { kind: 'cosine', warmupEpochs: 1 } },
    { ...headPhase, epochs: 2 },
  ];
  const extra = { augment: true };
  const a = await tempSession(testProfile(phases, extra));
  await train(a, { built: tinyResnetLike(1, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false });
  const full = history(a.runDir).toRecords();

  for (const stopAt of [1, 2, 3]) {
    const b = await tempSession(testProfile(phases, extra));
    const first = await train(b, { built: tinyResnetLike(1, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false, stopAfterEpochs: stopAt });
    assert.equal(first.status, 'interrupted');
    // A new process would build a fresh model (different initial weights): the checkpoint must override them.
    const second = await train(b, { built: tinyResnetLike(99, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false });
    assert.equal(second.status, 'finished');
    assert.ok(second.resumedFrom?.endsWith(`epoch-000${stopAt}`));
    const resumed = history(b.runDir).toRecords();
    assert.deepEqual(resumed.map((r) => r.epoch), [1, 2, 3, 4]);
    assert.deepEqual(numbersOf(resumed), numbersOf(full), `stopped after epoch ${stopAt}`);
    assert.deepEqual(numbersOf(history(b.runDir, 'batches').toRecords()), numbersOf(history(a.runDir, 'batches').toRecords()));
  }
});

test('issue 25 case 10: a divergence in the second phase has one epoch number everywhere, the history\'s (over all phases)', async () => {
  const s = await tempSession(testProfile([{ ...allPhase, name: 'warm', epochs: 2 }, { ...allPhase, epochs: 2 }]));
  const { batches } = await import('../../src/preprocess');
  let epochCalls = 0;
  const poisoned = function* (set: Parameters<typeof batches>[0], o: { batchSize: number; shuffle: boolean; rng: import('../../src/random').Random; augment: boolean }) {
    if (o.shuffle) epochCalls++;
    for (const b of batches(set, { ...o, mode: 'unit', numClasses: 3 })) {
      if (o.shuffle && epochCalls === 3) {
        const bad = tf.mul(b.xs, NaN);
        b.xs.dispose();
        yield { xs: bad, ys: b.ys };
      } else yield b;
    }
  };
  let message = '';
  await assert.rejects(train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false, imageBatches: poisoned }), (e: Error) => {
    message = e.message;
    return e instanceof TrainingDivergedError;
  });
  // The second phase's first epoch is epoch 3 of the run: in the trainer's message, the summary, and what predict and the report say.
  assert.match(message, /training diverged in phase 'finetune-all', epoch 3, step 1: the loss is NaN/);
  assert.deepEqual(history(s.runDir).getColumn('epoch').toArray(), [1, 2]);
  const summary = readTrainSummary(s.runDir)!;
  assert.equal(summary.diverged!.epoch, 3);
  const { describeDivergence, readDivergence } = await import('../../src/results/divergence');
  assert.match(describeDivergence(readDivergence(s.runDir)!), /^training diverged in phase finetune-all, epoch 3, step 1: /);
});

test('a NaN loss stops the run with a clear message and keeps the last good checkpoint', async () => {
  const s = await tempSession(testProfile([{ ...allPhase, epochs: 3 }]));
  const { batches } = await import('../../src/preprocess');
  let epochCalls = 0;
  const poisoned = function* (set: Parameters<typeof batches>[0], o: { batchSize: number; shuffle: boolean; rng: import('../../src/random').Random; augment: boolean }) {
    if (o.shuffle) epochCalls++;
    for (const b of batches(set, { ...o, mode: 'unit', numClasses: 3 })) {
      if (o.shuffle && epochCalls === 2) {
        const bad = tf.mul(b.xs, NaN);
        b.xs.dispose();
        yield { xs: bad, ys: b.ys };
      } else yield b;
    }
  };
  await assert.rejects(
    train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false, imageBatches: poisoned }),
    (e: unknown) => e instanceof TrainingDivergedError && /training diverged in phase 'finetune-all', epoch 2, step 1: the loss is NaN/.test(e.message) && /epoch-0001/.test(e.message),
  );
  const last = latestCheckpoint(s.runDir)!;
  assert.equal(path.basename(last), 'epoch-0001');
  assert.equal(readCheckpointState(last).epoch, 1);
  const st = JSON.parse(fs.readFileSync(path.join(s.runDir, 'train-state.json'), 'utf8'));
  assert.equal(st.status, 'diverged');
  assert.equal(history(s.runDir).height, 1);
});

test('early stopping ends a phase when the monitored metric stops improving', async () => {
  const s = await tempSession(testProfile([{ ...headPhase, lr: 1e-9, epochs: 6 }], { earlyStopping: { monitor: 'val_accuracy', patience: 1 } }));
  const r = await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false });
  assert.equal(r.status, 'finished');
  assert.ok(r.epochs < 6, `stopped after ${r.epochs} epochs`);
});

test('class weights: balanced = n / (k * count), as sklearn; the weighted loss is the mean of weight x loss (Keras)', async () => {
  const { balancedClassWeights, crossEntropy } = await import('../../src/train/loop');
  // sklearn.utils.class_weight.compute_class_weight('balanced', classes=[0,1,2], y=[0]*6+[1]*3+[2]*1) = [0.5556, 1.1111, 3.3333]
  const w = balancedClassWeights([6, 3, 1]);
  [10 / 18, 10 / 9, 10 / 3].forEach((v, i) => assert.ok(Math.abs(w[i] - v) < 1e-12, `${w}`));
  assert.deepEqual(balancedClassWeights([4, 0, 4]), [8 / 12, 0, 8 / 12], 'an empty class weighs 0; n_classes counts every class');
  const probs = tf.tensor2d([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]);
  const ys = tf.tensor2d([[1, 0, 0], [0, 0, 1]]);
  const weights = tf.tensor1d([w[0], w[2]]);
  const got = crossEntropy(probs, ys, weights).dataSync()[0];
  const want = -(w[0] * Math.log(0.7) + w[2] * Math.log(0.8)) / 2;
  assert.ok(Math.abs(got - want) < 1e-6, `${got} vs ${want}`);
  tf.dispose([probs, ys, weights]);
});

test('train.classWeights "balanced" changes the training loss and is recorded with the class counts and skipped files', async () => {
  const data = syntheticData();
  // Imbalance the training part: keep every class-0 image, one in four of the others.
  const keep = Array.from(data.train.labels.keys()).filter((i) => data.train.labels[i] === 0 || i % 4 === 0);
  const { subset, countPerClass } = await import('../../src/data/types');
  const train1 = subset(data.train, keep);
  const skipped = [{ file: '/photos/b/cut.jpg', reason: 'truncated or damaged (premature end of JPEG image)' }];
  const runs = [];
  for (const classWeights of [undefined, 'balanced'] as const) {
    const s = await tempSession(testProfile([{ ...allPhase, epochs: 1 }], classWeights ? { classWeights } : {}));
    await train(s, { built: tinyResnetLike(), data: { ...data, train: train1, skipped }, progress: 'none' });
    runs.push({ summary: readTrainSummary(s.runDir)!, epoch: history(s.runDir).toRecords()[0] });
  }
  const counts = countPerClass(train1, 3);
  assert.deepEqual(runs[0].summary.trainPerClass, counts);
  assert.equal(runs[0].summary.classWeights, undefined);
  const n = counts.reduce((a, b) => a + b, 0);
  assert.deepEqual(runs[1].summary.classWeights, counts.map((c) => n / (3 * c)));
  assert.deepEqual(runs[1].summary.unreadableFiles, skipped);
  // Same seed, same data, same initial weights: only the weighting differs, so the first epoch's training loss does.
  assert.notEqual(runs[0].epoch.loss, runs[1].epoch.loss);
});
