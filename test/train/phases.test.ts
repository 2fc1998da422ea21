import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadProfile } from '../../src/config';
import { train, readTrainSummary, learningRateAt } from '../../src/train';
import { cacheRoot, readCache, toFloat16, fromFloat16 } from '../../src/train/feature-cache';
import { defaultImageBatches } from '../../src/train/setup';
import type { ImageBatchSource } from '../../src/train/trainer';
import { Random } from '../../src/random';
import { cacheSplit, stableWeights } from '../../src/model/split';
import { CLASSES, syntheticData, tempSession, tinyChain, tinyResnetLike, testProfile } from './fixtures';
import type { TrainableModel } from '../../src/model/split';

const params = (ws: tf.LayerVariable[]) => ws.reduce((s, w) => s + w.shape.reduce((p: number, d) => p * (d as number), 1), 0);
const snapshot = (ws: tf.LayerVariable[]) => ws.map((w) => Array.from(w.read().dataSync()));
const bnStats = (built: TrainableModel) => snapshot(stableWeights(built.base).filter((w) => /moving_(mean|variance)/.test(w.name)));

test("seed profile: phase 1 trains every layer (BatchNorm in training mode), phase 2 only the head (base frozen, BN statistics fixed)", async () => {
  const seed = loadProfile('seed', ['train.phases.0.epochs=1', 'train.phases.1.epochs=1', 'train.batchSize=32']);
  assert.deepEqual(seed.train.phases.map((p) => [p.trainable, p.optimizer, p.lr]), [['all', 'adam', 1e-5], ['head', 'adam', 1e-3]]);
  const profile = { ...seed, train: { ...seed.train, phases: seed.train.phases.map((p) => ({ ...p, lr: p.lr * 100 })) } };
  const s = await tempSession(profile);
  const built = tinyResnetLike();
  const base0 = snapshot(stableWeights(built.base));
  const bn0 = bnStats(built);
  const afterEpoch: { base: number[][]; bn: number[][]; head: number[][] }[] = [];
  await train(s, {
    built,
    data: syntheticData(),
    progress: 'none',
    saveModel: false,
    onEpoch: () => afterEpoch.push({ base: snapshot(stableWeights(built.base)), bn: bnStats(built), head: snapshot(stableWeights(built.head)) }),
  });
  const summary = readTrainSummary(s.runDir)!;
  const total = params(built.model.weights) - params(stableWeights(built.base).filter((w) => /moving_/.test(w.name)));
  const headParams = params(stableWeights(built.head));
  assert.deepEqual(summary.trainableByPhase, { 'finetune-all': total, head: headParams });
  assert.equal(headParams, 4 * 3 + 3);
  // Phase 1 moved the base, including the BatchNorm moving statistics (training mode reached the nested base).
  assert.notDeepEqual(afterEpoch[0].base, base0);
  assert.notDeepEqual(afterEpoch[0].bn, bn0);
  // Phase 2 moved the head only.
  assert.deepEqual(afterEpoch[1].base, afterEpoch[0].base);
  assert.notDeepEqual(afterEpoch[1].head, afterEpoch[0].head);
  // Phase 2 trained on features of the base as phase 1 left it: one cache entry, keyed by those weights.
  const entries = fs.readdirSync(cacheRoot());
  assert.equal(entries.length, 1);
  assert.ok(entries[0].startsWith('tiny-resnet-like-8-unit-float32-'), entries[0]);
});

test('guide-style batchNorm frozen: the whole model trains except BatchNorm, whose statistics stay fixed', async () => {
  const s = await tempSession(testProfile([{ name: 'finetune-all', trainable: 'all', batchNorm: 'frozen', optimizer: 'adam', lr: 0.01, epochs: 1 }]));
  const built = tinyResnetLike();
  const bn0 = bnStats(built);
  const base0 = snapshot(stableWeights(built.base));
  await train(s, { built, data: syntheticData(), progress: 'none', saveModel: false });
  assert.deepEqual(bnStats(built), bn0);
  assert.notDeepEqual(snapshot(stableWeights(built.base)), base0);
  const bnParams = params(stableWeights(built.base).filter((w) => /_bn\//.test(w.name) || /gamma|beta|moving/.test(w.name)));
  assert.equal(readTrainSummary(s.runDir)!.trainableByPhase['finetune-all'], params(built.model.weights) - bnParams);
});

test('runIf: a phase too slow for the backend is skipped with the measured reason', async () => {
  const s = await tempSession(
    testProfile([
      { name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 1 },
      { name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 1e-3, epochs: 1, runIf: { nativeBackend: true, maxEstimatedMinutes: 1e-9 } },
    ]),
  );
  const built = tinyResnetLike();
  const r = await train(s, { built, data: syntheticData(), progress: 'none', saveModel: false });
  assert.equal(r.epochs, 1);
  const phase = r.summary!.phases[1];
  assert.equal(phase.ran, false);
  assert.match(phase.reason, /one training step of 32 images took .* s on cpu: about .* min for the phase \(limit 1e-9\)/);
});

test('warm-up + cosine schedule and constant rate', () => {
  const p = { name: 'x', trainable: 'all' as const, optimizer: 'adam' as const, lr: 0.1, epochs: 4, schedule: { kind: 'cosine' as const, warmupEpochs: 1, minLr: 0.01 } };
  assert.equal(learningRateAt(p, 0, 0, 10), 0.01); // warm-up starts at lr / warm-up steps
  assert.equal(learningRateAt(p, 0, 9, 10), 0.1);
  assert.ok(Math.abs(learningRateAt(p, 1, 0, 10) - 0.1) < 1e-12); // cosine starts at the peak
  const decay = Array.from({ length: 30 }, (_, t) => learningRateAt(p, 1 + Math.floor(t / 10), t % 10, 10));
  assert.ok(decay.every((lr, i) => i === 0 || lr < decay[i - 1]), 'decreasing');
  assert.ok(Math.abs(learningRateAt(p, 3, 9, 10) - 0.01) < 1e-12); // the last step at minLr
  assert.ok(Math.abs(decay[14] + decay[15] - 2 * (0.01 + 0.045)) < 1e-3); // symmetric about the middle
  assert.equal(learningRateAt({ ...p, schedule: { kind: 'constant' } }, 3, 9, 10), 0.1);
});

test('float16 feature storage round-trips within half precision', () => {
  const x = new Float32Array([0, 1, -2.5, 65504, 1e-8, 3.14159, -0.0001, 1e6]);
  const y = fromFloat16(toFloat16(x));
  assert.equal(y[0], 0);
  assert.equal(y[1], 1);
  assert.equal(y[2], -2.5);
  assert.equal(y[3], 65504);
  assert.ok(Math.abs(y[5] - 3.14159) < 2e-3);
  assert.ok(Math.abs(y[6] + 0.0001) < 1e-6);
  assert.equal(y[7], Infinity);
});

test('ETA formatting never shows 60 seconds or 60 minutes', async () => {
  const { formatSeconds } = await import('../../src/train/progress');
  assert.equal(formatSeconds(119.6), '2m00s');
  assert.equal(formatSeconds(59.7), '1m00s');
  assert.equal(formatSeconds(7199), '2h00m');
  assert.equal(formatSeconds(NaN), '?');
});

test('featureCache on a {from} phase: layers below the cut run once and stay fixed; the layers above train on their cached output', async () => {
  const cut = 'conv2_block1_1_conv';
  const phase = { name: 'top', trainable: { from: cut }, featureCache: true, optimizer: 'adam' as const, lr: 0.02, epochs: 2 };
  const s = await tempSession(testProfile([phase]));
  const built = tinyResnetLike();
  const weightsOf = (names: RegExp) => snapshot(stableWeights(built.base).filter((w) => names.test(w.name)));
  const below0 = weightsOf(/^conv1_/);
  const above0 = weightsOf(/^conv2_/);
  const history: (number | null)[] = [];
  await train(s, { built, data: syntheticData(), progress: 'none', saveModel: false, stopAfterEpochs: 1, onEpoch: (r) => history.push(r.val_accuracy) });
  await train(s, { built, data: syntheticData(), progress: 'none', saveModel: false, onEpoch: (r) => history.push(r.val_accuracy) });
  assert.deepEqual(weightsOf(/^conv1_/), below0, 'frozen below the cut (BatchNorm statistics included)');
  assert.notDeepEqual(weightsOf(/^conv2_/), above0);
  // One cache entry, made before the first epoch and hit on resume: keyed by the weights below the cut only.
  const entries = fs.readdirSync(cacheRoot());
  assert.equal(entries.length, 1);
  const meta = JSON.parse(fs.readFileSync(path.join(cacheRoot(), entries[0], 'meta.json'), 'utf8'));
  assert.equal(meta.parts.cutBefore, cut);
  assert.deepEqual(meta.shape, [8, 8, 4]);
  // The same phase without the cache (same seed, no augmentation) trains to the same numbers.
  const plain = await tempSession(testProfile([{ ...phase, featureCache: false }]));
  const uncached: (number | null)[] = [];
  await train(plain, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false, onEpoch: (r) => uncached.push(r.val_accuracy) });
  assert.equal(history.length, 2);
  assert.deepEqual(history, uncached);
});

test('a head phase before a cut phase on a chain: one pass over the images fills both caches, with the features of two passes', async () => {
  const cut = 'conv2_conv';
  const phases = [
    { name: 'head', trainable: 'head' as const, optimizer: 'adam' as const, lr: 0.02, epochs: 1 },
    { name: 'top', trainable: { from: cut }, featureCache: true, optimizer: 'adam' as const, lr: 0.01, epochs: 1 },
  ];
  const s = await tempSession(testProfile(phases));
  const built = tinyChain();
  const data = syntheticData();
  const images = defaultImageBatches(built, CLASSES.length);
  let seen = 0;
  const counting: ImageBatchSource = async function* (set, o) {
    for await (const b of images(set, o)) {
      seen += b.xs.shape[0];
      yield b;
    }
  };
  await train(s, { built, data, progress: 'none', saveModel: false, imageBatches: counting });
  assert.equal(seen, data.train.count + data.val.count, 'every image ran through the layers below the cut once');
  const metas = fs.readdirSync(cacheRoot()).map((key) => ({ key, meta: JSON.parse(fs.readFileSync(path.join(cacheRoot(), key, 'meta.json'), 'utf8')) }));
  assert.deepEqual(metas.map((m) => m.meta.parts.cutBefore ?? 'none').sort(), [cut, 'none']);
  // Both caches hold what a direct pass of the untrained model computes (same seed, same weights).
  const fresh = tinyChain();
  for (const { key, meta } of metas) {
    const split = cacheSplit(fresh, meta.parts.cutBefore);
    const direct: number[] = [];
    for await (const b of images(data.train, { batchSize: 32, shuffle: false, rng: new Random(0), augment: false })) {
      direct.push(...tf.tidy(() => split.extract(b.xs).dataSync()));
      tf.dispose([b.xs, b.ys]);
    }
    const cached = readCache(key)!.train.features;
    assert.equal(cached.length, direct.length);
    assert.ok(cached.every((v, i) => Math.abs(v - direct[i]) < 1e-4), `${meta.parts.cutBefore ?? 'pooled'} features`);
  }
});

test('cacheSplit at a cut computes what the whole model computes, and refuses a cut that a later layer reaches across', () => {
  const built = tinyResnetLike();
  const x = tf.randomUniform([5, 8, 8, 3], 0, 1, 'float32', 4);
  for (const cut of ['conv1_bn', 'conv2_block1_1_conv']) {
    const split = cacheSplit(built, cut);
    const viaCache = tf.tidy(() => split.headApply(split.extract(x), false));
    const whole = built.model.predict(x) as tf.Tensor;
    assert.ok(tf.max(tf.abs(tf.sub(viaCache, whole))).dataSync()[0] < 1e-5, cut);
    tf.dispose([viaCache, whole]);
  }
  // The residual add also reads conv1_relu's output, which lies below a cut after the block's conv.
  assert.throws(() => cacheSplit(built, 'conv2_block1_1_bn'), /layer 'conv2_block1_add' reads '.*' from below the cut at 'conv2_block1_1_bn'/);
  assert.throws(() => cacheSplit(built, 'conv2_block1_add'), /layer 'conv2_block1_add' has 2 inputs/);
  assert.throws(() => cacheSplit(built, 'nope'), /no layer 'nope' above the input of base 'tiny_base'/);
  x.dispose();
});

test('a phase featureCache flag without trainable {from} is named in the profile error', () => {
  assert.throws(
    () => loadProfile('smoke', ['train.phases.0.featureCache=true']),
    /field 'train\.phases\.0\.featureCache' should be used only with trainable \{"from": "<layer>"\}/,
  );
});
