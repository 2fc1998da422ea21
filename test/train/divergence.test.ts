/**
 * Divergence caught at the source, on the wasm backend: there clipByValue turns NaN into the clip
 * bound, so once the weights are NaN the clipped cross-entropy reads -ln(1e-7) = 16.1181, finite,
 * and a guard on the loss alone lets the run finish "successfully" (issue 11).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Phase } from '../../src/config';
import { initBackend } from '../../src/backend';
import { train, TrainingDivergedError, latestCheckpoint, readTrainSummary, TRAIN_STATE_FILE } from '../../src/train';
import { syntheticData, testProfile, tempSession, tinyResnetLike } from './fixtures';

// The head on cached features, as the smoke profile trains it.
const sgd: Phase = { name: 'head', trainable: 'head', optimizer: 'sgd', lr: 1e38, epochs: 3 };

test('sgd at lr 1e38 on wasm: NaN weights under a finite clipped loss stop the run, marked diverged with the step', async () => {
  // First: initBackend keeps the first backend it selects (tempSession asks for cpu).
  const backend = await initBackend({ force: 'wasm', quiet: true });
  const s = await tempSession(testProfile([sgd]));
  assert.equal(s.backend, backend);
  assert.equal(backend.choice, 'wasm');
  const rows: number[] = [];
  // Inputs x10 (Darknet's features are large too): the first step at this rate sends the head's
  // weights past the float32 range before its softmax saturates (a saturated, clipped softmax has
  // no gradient and would stop the growth).
  const { batches } = await import('../../src/preprocess');
  const loud = function* (set: Parameters<typeof batches>[0], o: { batchSize: number; shuffle: boolean; rng: import('../../src/random').Random; augment: boolean }) {
    for (const b of batches(set, { ...o, mode: 'unit', numClasses: 3 })) {
      const xs = tf.mul(b.xs, 10);
      b.xs.dispose();
      yield { xs, ys: b.ys };
    }
  };
  await assert.rejects(
    train(s, { built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none', saveModel: false, imageBatches: loud, onEpoch: (r) => rows.push(r.loss!) }),
    (e: unknown) => e instanceof TrainingDivergedError && /model's output is NaN \(the clipped loss reads 16\.1181\)/.test(e.message),
  );
  const summary = readTrainSummary(s.runDir)!;
  assert.equal(rows.length, summary.diverged!.epoch - 1, 'the epochs before it are complete, the one it happened in is not');
  assert.equal(summary.status, 'diverged');
  assert.equal(summary.diverged!.phase, 'head');
  assert.deepEqual(summary.phases.map((p) => p.ran), [true]);
  assert.ok(summary.diverged!.step >= 1, `step ${summary.diverged!.step}`);
  assert.equal(summary.epochs, summary.diverged!.epoch - 1);
  assert.match(summary.diverged!.reason, /NaN/);
  const state = JSON.parse(fs.readFileSync(path.join(s.runDir, TRAIN_STATE_FILE), 'utf8'));
  assert.equal(state.status, 'diverged');
  assert.deepEqual(state.diverged, summary.diverged);
  const last = latestCheckpoint(s.runDir);
  if (summary.epochs === 0) assert.equal(last, undefined);
  else assert.ok(last!.endsWith(`epoch-${String(summary.epochs).padStart(4, '0')}`), `the last good checkpoint is kept: ${last}`);
});
