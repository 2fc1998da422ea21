/**
 * Training by phases. Not model.fit: we own the steps, so that checkpoints carry the optimizer state
 * and the random state, and a resumed run repeats the uninterrupted one exactly.
 *
 * runPhases resumes from the newest intact checkpoint (the checkpoint callback's run-begin hook), then per phase: decides whether it runs
 * (runIf), applies its trainable set (Keras frozen-BN semantics), computes or reads the cached
 * features of the frozen part, and hands the epochs to the loop core (loop.ts fitPhase) with the
 * callbacks of src/train/callbacks/.
 */
import * as tf from '@tensorflow/tfjs';
import type { Phase, PhotoAugment, Profile } from '../config';
import { countPerClass, type ImageSet } from '../data/types';
import type { BackendInfo } from '../backend';
import { Random } from '../random';
import { countParams, leafLayers } from '../model/freeze';
import { cacheSplit, chainFromCut, snapshotWeights, stableWeights, type CacheSplit, type TrainableModel } from '../model/split';
import { installTrainingSwitch, withTraining } from '../model/training-mode';
import { announceEngine, inferenceEngine, releaseModel, runModel } from '../model/engine';
import { learningRateAt } from './schedule';
import { createOptimizer } from './optimizer';
import type { EpochRow } from './history';
import { latestCheckpoint, type CheckpointState, type PhaseDecision, type TrainState } from './checkpoint';
import type { Progress } from './progress';
import { cacheKey, computeFeatures, contentHash, featureBatches, readCache, roundTrip, weightsHash, writeCache, type CacheKeyParts, type CachedFeatures, type FeatureExtractor, type FeatureSet } from './feature-cache';
import { balancedClassWeights, crossEntropy, emit, FitState, fitPhase, type Batch, type BatchStream, type Callback, type PhaseRun } from './loop';
import { Checkpointing } from './callbacks/checkpointing';
import { EarlyStopping } from './callbacks/early-stopping';
import { BestWeights } from './callbacks/best-weights';
import { DivergenceGuard, TrainingDivergedError } from './callbacks/divergence';
import { HistoryWriter } from './callbacks/history-writer';
import { OnEpoch, ProgressCallback } from './callbacks/progress';
import { StopAfterEpochs, StopOnAbort } from './callbacks/stop';
import { writeTrainState, type DivergedAt } from './run-state';
import { phasePlan } from './plan';

export type { TrainableModel } from '../model/split';
export type { Batch } from './loop';

/** Yields batches of preprocessed images and one-hot labels; the caller disposes them. */
export type ImageBatchSource = (set: ImageSet, opts: { batchSize: number; shuffle: boolean; rng: Random; augment: boolean; photo?: PhotoAugment }) => BatchStream;

export interface LoopDeps {
  /** Applies a phase's trainable set to the model. */
  setTrainable: (built: TrainableModel, spec: boolean | { from: string }) => void;
  /** Batches of images for the full model. */
  imageBatches: ImageBatchSource;
  /**
   * The engine for the frozen part of a cached phase; default: the TF.js layers below the split
   * (`split.extract` in tf.tidy). Another engine (e.g. ONNX Runtime) returns the same features.
   */
  featureExtractor?: (split: CacheSplit, built: TrainableModel) => FeatureExtractor;
}

export interface LoopContext {
  profile: Profile;
  runDir: string;
  backend: BackendInfo;
  built: TrainableModel;
  train: ImageSet;
  val: ImageSet;
  numClasses: number;
  progress: Progress;
  deps: LoopDeps;
  /** Continue from the run's last checkpoint when there is one (default true). */
  resume?: boolean;
  /** Stop after this many epochs in this call (as an interruption would); for tests. */
  stopAfterEpochs?: number;
  /** Stop at the next batch when this fires (with a mid-epoch checkpoint: the resume goes on inside the epoch). */
  signal?: AbortSignal;
  onEpoch?: (row: EpochRow) => void;
  /** More callbacks, after the built-in ones. */
  callbacks?: Callback[];
}

export interface LoopOutcome {
  /** The train state with the stateful callbacks' states beside it (what a checkpoint of it stores). */
  state: CheckpointState;
  interrupted: boolean;
  /** What stopped the run early (a callback's s.stop('run', reason)), when something did. */
  stopReason?: string;
  resumedFrom?: string;
  /** Checkpoints (and pointers) the resume skipped as broken, with the reason. */
  skipped: { path: string; why: string }[];
  /** Where a stop inside an epoch left it (1-based epoch over all phases, batches trained in it): its mid-epoch checkpoint. */
  stoppedAt?: { epoch: number; batch: number };
}

/** The phase's trainable set; batchNorm 'frozen' then freezes every BatchNormalization of the base. */
export function applyPhaseTrainable(built: TrainableModel, phase: Phase, deps: LoopDeps): void {
  const t = phase.trainable;
  deps.setTrainable(built, t === 'all' ? true : t === 'head' ? false : t);
  if (phase.batchNorm === 'frozen') {
    for (const l of leafLayers(built.base)) if (l.getClassName() === 'BatchNormalization') l.trainable = false;
  }
}

/** What keys the cache of `split`'s frozen part: its weights, the data, and how the features are made. */
async function cacheParts(ctx: LoopContext, split: CacheSplit): Promise<CacheKeyParts> {
  const { built, profile } = ctx;
  return {
    arch: built.arch,
    baseWeightsHash: await weightsHash(split.frozenWeights),
    inputSize: built.inputSize,
    preprocess: built.preprocess,
    dtype: profile.train.featureCacheDtype ?? 'float32',
    trainHash: contentHash(ctx.train.images, ctx.train.labels),
    valHash: contentHash(ctx.val.images, ctx.val.labels),
    movedLayers: split.moved.join(','),
    // Only cuts inside the base name their layer, so the keys of head-only caches stay as they were.
    ...(split.cut ? { cutBefore: split.cut } : {}),
    // ORT's features differ from TF.js' in the last bits: they get their own cache (TF.js keys unchanged).
    ...(!ctx.deps.featureExtractor && inferenceEngine({ quiet: true }).name === 'onnx' ? { engine: 'onnx' } : {}),
  };
}

interface CutCompanion {
  split: CacheSplit;
  parts: CacheKeyParts;
  key: string;
  /** The layers from the cut to the pooled features. */
  chain: tf.layers.Layer[];
}

/**
 * A later phase's cache that the same pass over the images fills (quick: the head's pooled features
 * and the top block's conv_pw_12 maps): the later phase cuts inside the base, every phase from this
 * one to it trains only the head (so the layers below its cut stay as they are now), its cache is
 * missing, and the layers from its cut up form a chain. The pass then computes the cut's maps, and the
 * pooled features from them - the layers below the cut run once instead of twice.
 */
async function cutCompanion(ctx: LoopContext, p: number, split: CacheSplit): Promise<CutCompanion | undefined> {
  const phases = ctx.profile.train.phases;
  if (ctx.deps.featureExtractor || split.cut !== undefined) return undefined;
  for (let q = p + 1; q < phases.length; q++) {
    if (phases[q - 1].trainable !== 'head') return undefined;
    const { cached, cutAt } = phasePlan(ctx.profile, q);
    if (!cached || !cutAt) continue;
    const lower = cacheSplit(ctx.built, cutAt);
    const chain = chainFromCut(ctx.built, lower, split);
    if (!chain) return undefined;
    const parts = await cacheParts(ctx, lower);
    const key = cacheKey(parts);
    return readCache(key) ? undefined : { split: lower, parts, key, chain };
  }
  return undefined;
}

/** The frozen part's features of train and val: from the cache, or computed once and stored. */
async function cachedFeatures(ctx: LoopContext, split: CacheSplit, p: number): Promise<CachedFeatures> {
  const { built, profile, progress } = ctx;
  const parts = await cacheParts(ctx, split);
  const key = cacheKey(parts);
  const hit = readCache(key);
  if (hit) {
    progress.message(`feature cache hit: ${hit.dir}`);
    return hit;
  }
  if (!ctx.deps.featureExtractor) announceEngine((line) => progress.message(line));
  // Default: the inference engine (ONNX Runtime when it loads, else TF.js in tf.tidy).
  const extractor = (s: CacheSplit): FeatureExtractor => ctx.deps.featureExtractor?.(s, built) ?? ((xs: tf.Tensor) => runModel(s.frozen, xs, { tfjs: s.extract }));
  const compute = async (count: number, labels: Uint8Array, batches: BatchStream, extract: FeatureExtractor, label: string) => {
    const task = progress.task(label, count);
    const features = await computeFeatures(extract, batches, { count, labels, label, onBatch: (n) => task.tick(n), signal: ctx.signal });
    task.done();
    return features;
  };
  const fromImages = (set: ImageSet, s: CacheSplit, label: string) =>
    compute(set.count, set.labels, ctx.deps.imageBatches(set, { batchSize: profile.train.batchSize, shuffle: false, rng: new Random(0), augment: false }), extractor(s), label);
  const companion = await cutCompanion(ctx, p, split);
  let train: FeatureSet;
  let val: FeatureSet;
  if (companion) {
    const maps = { train: await fromImages(ctx.train, companion.split, 'base features (train)'), val: await fromImages(ctx.val, companion.split, 'base features (val)') };
    progress.message(`feature cache written: ${writeCache(companion.key, companion.parts, maps.train, maps.val)} (maps at '${companion.split.cut}', for a later phase)`);
    const chain = companion.chain;
    const derive = (xs: tf.Tensor) => runModel(chain, xs, { tfjs: (x) => withTraining(false, () => chain.reduce((y, l) => l.apply(y, { training: false }) as tf.Tensor, x)) });
    const fromMaps = (set: FeatureSet, label: string) => compute(set.count, set.labels, featureBatches(set, profile.train.batchSize, undefined, ctx.numClasses), derive, label);
    train = await fromMaps(maps.train, `pooled features from those maps (train)`);
    val = await fromMaps(maps.val, `pooled features from those maps (val)`);
    await releaseModel(chain);
  } else {
    train = await fromImages(ctx.train, split, 'base features (train)');
    val = await fromImages(ctx.val, split, 'base features (val)');
  }
  const dir = writeCache(key, parts, train, val);
  progress.message(`feature cache written: ${dir}`);
  const dtype = parts.dtype;
  return { key, dir, hit: false, train: roundTrip(train, dtype), val: roundTrip(val, dtype) };
}

/** The state of a run before its first batch (also what lr-find's sweep starts from). */
export function freshState(profile: Profile, backend: BackendInfo): TrainState {
  const seed = profile.train.seed;
  return {
    epoch: 0,
    phaseIndex: 0,
    phaseEpoch: 0,
    phaseFinished: false,
    rngState: new Random(seed).state,
    dropoutRngState: new Random(seed ^ 0x5eed).state,
    decisions: profile.train.phases.map(() => null),
    trainableByPhase: {},
    epochRows: [],
    batchRows: [],
    wallSeconds: 0,
    backend: backend.choice,
  };
}

function stepsFor(count: number, batchSize: number): number {
  return Math.ceil(count / batchSize);
}

/**
 * Decides whether a phase with `runIf` runs: native backend, or one measured training step whose
 * time predicts the phase under the limit. The measurement computes gradients only and restores
 * every weight (BatchNormalization statistics move in training mode), so it changes nothing.
 */
async function decidePhase(ctx: LoopContext, phase: Phase, batchSize: number): Promise<PhaseDecision> {
  const cond = phase.runIf;
  if (!cond) return { run: true, reason: 'unconditional' };
  if (cond.nativeBackend && ctx.backend.native) return { run: true, reason: `native backend (${ctx.backend.choice})` };
  if (!(cond.maxEstimatedMinutes && cond.maxEstimatedMinutes > 0)) {
    return { run: false, reason: `needs a native backend; this one is ${ctx.backend.choice}` };
  }
  const { built } = ctx;
  const saved = snapshotWeights(stableWeights(built.model));
  const n = Math.min(batchSize, ctx.train.count);
  const sample: ImageSet = { ...ctx.train, count: n, images: ctx.train.images.subarray(0, n * ctx.train.height * ctx.train.width * 3), labels: ctx.train.labels.subarray(0, n) };
  let batch: Batch | undefined;
  try {
    applyPhaseTrainable(built, phase, ctx.deps);
    for await (const b of ctx.deps.imageBatches(sample, { batchSize: n, shuffle: false, rng: new Random(0), augment: false })) {
      batch = b;
      break;
    }
    if (!batch) throw new Error('no batch');
    const b = batch;
    const vars = built.model.trainableWeights.map((w) => w.read() as tf.Variable);
    const once = () => tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(withTraining(true, () => built.model.apply(b.xs, { training: true }) as tf.Tensor), b.ys), vars);
      return tf.add(value, tf.addN(Object.values(grads).map((g) => tf.sum(g))));
    });
    const warm = once();
    await warm.data();
    warm.dispose();
    const t0 = Date.now();
    const timed = once();
    await timed.data();
    timed.dispose();
    const seconds = (Date.now() - t0) / 1000;
    const minutes = (seconds * stepsFor(ctx.train.count, batchSize) * phase.epochs) / 60;
    const run = minutes <= cond.maxEstimatedMinutes;
    return {
      run,
      reason: `one training step of ${n} images took ${seconds.toFixed(2)} s on ${ctx.backend.choice}: about ${minutes.toFixed(0)} min for the phase (limit ${cond.maxEstimatedMinutes})`,
    };
  } catch (e) {
    return { run: false, reason: `a training step fails on ${ctx.backend.choice}: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    if (batch) tf.dispose([batch.xs, batch.ys]);
    saved.restore();
    saved.dispose();
  }
}

/**
 * Prepares phase `p` for the loop: trainable set, cached features when the phase trains on them,
 * the forward pass, the optimizer and the batch streams.
 */
export async function preparePhase(ctx: LoopContext, p: number, rng: Random): Promise<PhaseRun> {
  const { profile, built } = ctx;
  const phase = profile.train.phases[p];
  const batchSize = phase.batchSize ?? profile.train.batchSize;
  applyPhaseTrainable(built, phase, ctx.deps);
  const { cached, cutAt } = phasePlan(profile, p);
  const split = cached ? cacheSplit(built, cutAt) : undefined;
  const features = split ? await cachedFeatures(ctx, split, p) : undefined;
  if (cached && (profile.train.augment || profile.train.photoAugment)) {
    ctx.progress.message(`phase '${phase.name}': no augmentation - it trains on cached features (the base saw each image once, unaugmented)`);
  }
  const vars = built.model.trainableWeights.map((w) => w.read() as tf.Variable);
  if (vars.length === 0) throw new Error(`phase '${phase.name}': nothing to train (no trainable weights)`);
  const forward = split
    ? (x: tf.Tensor, training: boolean) => split.headApply(x, training)
    : (x: tf.Tensor, training: boolean) => withTraining(training, () => built.model.apply(x, { training }) as tf.Tensor);
  const stepsPerEpoch = stepsFor(features ? features.train.count : ctx.train.count, batchSize);
  const k = ctx.numClasses;
  const classWeights = profile.train.classWeights === 'balanced' ? balancedClassWeights(countPerClass(ctx.train, k)) : undefined;
  return {
    phase,
    index: p,
    step: { forward, optimizer: createOptimizer(phase), vars, numClasses: k, labelSmoothing: profile.train.labelSmoothing ?? 0, clipNorm: phase.clipNorm, classWeights },
    stepsPerEpoch,
    cached,
    lrAt: (e, step) => learningRateAt(phase, e, step, stepsPerEpoch),
    trainBatches: () =>
      features
        ? featureBatches(features.train, batchSize, rng.permutation(features.train.count), k)
        : ctx.deps.imageBatches(ctx.train, { batchSize, shuffle: true, rng, augment: profile.train.augment, ...(profile.train.photoAugment ? { photo: profile.train.photoAugment } : {}) }),
    valBatches: () =>
      features
        ? featureBatches(features.val, batchSize, undefined, k)
        : ctx.deps.imageBatches(ctx.val, { batchSize, shuffle: false, rng: new Random(0), augment: false }),
  };
}

/**
 * The standard callbacks, in the order they must run at an epoch's end (checkpoint after the
 * checks), and the checkpoint callback among them (the resume, the run's checkpoint state).
 */
function standardCallbacks(ctx: LoopContext, s: FitState, wallSeconds: () => number): { callbacks: Callback[]; checkpointing: Checkpointing } {
  const { profile, runDir, built, progress } = ctx;
  const weights = () => stableWeights(built.model);
  const es = profile.train.earlyStopping;
  const rb = profile.train.restoreBestWeights;
  const diverged = (at: DivergedAt, message: string, checkpoint: string | undefined) =>
    writeTrainState(runDir, 'diverged', { message, checkpoint: checkpoint ?? null, diverged: at, epoch: s.train.epoch });
  const stateful: Callback[] = [...(es ? [new EarlyStopping(es.monitor, es.patience, progress)] : []), ...(rb ? [new BestWeights(rb.monitor, weights, progress)] : [])];
  const checkpointing: Checkpointing = new Checkpointing({
    runDir,
    weights,
    keep: profile.train.checkpointsKept ?? 2,
    wallSeconds,
    // Every callback with a stateKey, state() and restore(): the built-in ones and the caller's.
    stateful: () => callbacks.filter((cb) => cb.stateKey !== undefined && cb.state && cb.restore),
    everyMinutes: profile.train.checkpointEveryMinutes,
    resume: ctx.resume,
    progress,
    phaseNames: profile.train.phases.map((p) => p.name),
  });
  const callbacks: Callback[] = [
    ...stateful,
    new DivergenceGuard(weights, () => latestCheckpoint(runDir), diverged),
    checkpointing,
    new HistoryWriter(runDir),
    new ProgressCallback(progress, profile.train.phases.length),
    ...(ctx.onEpoch ? [new OnEpoch(ctx.onEpoch)] : []),
    ...(ctx.stopAfterEpochs !== undefined ? [new StopAfterEpochs(ctx.stopAfterEpochs)] : []),
    ...(ctx.signal ? [new StopOnAbort(ctx.signal)] : []),
    ...(ctx.callbacks ?? []),
  ];
  return { callbacks, checkpointing };
}

/** Runs (or continues) the phases of ctx.profile. */
export async function runPhases(ctx: LoopContext): Promise<LoopOutcome> {
  const { profile, runDir, built, progress } = ctx;
  const phases = profile.train.phases;
  const processStart = Date.now();
  installTrainingSwitch(built.model);
  const s = new FitState(freshState(profile, ctx.backend));
  let wallBefore = 0;
  const { callbacks, checkpointing } = standardCallbacks(ctx, s, () => wallBefore + (Date.now() - processStart) / 1000);
  try {
    await emit(callbacks, 'onRunBegin', s);
    const state = s.train;
    wallBefore = state.wallSeconds;
    writeTrainState(runDir, 'running');
    for (let p = state.phaseIndex; p < phases.length && !s.runStopped; p++) {
      const phase = phases[p];
      if (p === state.phaseIndex && state.phaseFinished) continue; // finished at the checkpoint: go on with the next
      if (state.phaseIndex !== p) Object.assign(state, { phaseIndex: p, phaseEpoch: 0, phaseFinished: false });
      state.decisions[p] ??= await decidePhase(ctx, phase, phase.batchSize ?? profile.train.batchSize);
      const decision = state.decisions[p]!;
      if (!decision.run) {
        progress.message(`phase '${phase.name}' skipped: ${decision.reason}`);
        s.stop('phase', `skipped: ${decision.reason}`);
        continue;
      }
      if (phase.runIf) progress.message(`phase '${phase.name}' runs: ${decision.reason}`);
      const run = await preparePhase(ctx, p, s.rng);
      state.trainableByPhase[phase.name] = countParams(built.model).trainableParams;
      try {
        await fitPhase(run, s, callbacks);
      } finally {
        run.step.optimizer.optimizer.dispose();
      }
    }
  } catch (e) {
    if (e instanceof TrainingDivergedError) e.state = checkpointing.checkpointState(s.train).state;
    throw e;
  } finally {
    await emit(callbacks, 'onRunEnd', s);
  }
  // With the callbacks' states (early stopping, best epoch), as a checkpoint of this state stores them.
  const state = checkpointing.checkpointState(s.train).state;
  state.wallSeconds = wallBefore + (Date.now() - processStart) / 1000;
  const last = phases.length - 1;
  const complete = state.phaseIndex >= last && (state.phaseFinished || phases[last].epochs === 0);
  const stopReason = s.runStopped;
  const stoppedAt = stopReason && state.partial ? { epoch: state.epoch + 1, batch: state.partial.step } : undefined;
  const outcome = { state, interrupted: !!stopReason && !complete, stopReason, resumedFrom: checkpointing.resumedFrom, skipped: checkpointing.skipped, stoppedAt };
  if (outcome.interrupted) writeTrainState(runDir, 'interrupted', { epoch: state.epoch, message: stopReason });
  return outcome;
}
