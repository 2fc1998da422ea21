/**
 * The training loop, by phases. Not model.fit: we own the steps, so that checkpoints carry the
 * optimizer state and the random state, and a resumed run repeats the uninterrupted one exactly.
 *
 * Per phase: trainable set (setBaseTrainable, Keras frozen-BN semantics), optimizer, learning-rate
 * schedule, epochs, batch size. A phase that trains only the head trains on cached base features.
 * Per epoch: shuffled batches from a seeded Random (augmentation via the batch stream), one
 * optimizer.minimize per batch, validation, history rows, early stopping, a checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Phase, Profile } from '../config';
import type { ImageSet } from '../data/types';
import type { BackendInfo } from '../backend';
import { Random } from '../random';
import { writeJsonAtomic } from '../session';
import { learningRateAt } from './schedule';
import { createOptimizer, NamedTensor, optimizerState, restoreOptimizerState, PhaseOptimizer } from './optimizer';
import { withSeededMathRandom } from './seeded';
import { installTrainingSwitch, withTraining } from './training-mode';
import { BatchRow, EpochRow, HISTORY_FILES, writeHistory } from './history';
import { latestCheckpoint, loadCheckpoint, PhaseDecision, saveCheckpoint, TrainState } from './checkpoint';
import { Progress } from './progress';
import { TrainingInterruptedError, yieldToEventLoop } from './interrupt';
import {
  cacheKey,
  CachedFeatures,
  contentHash,
  FeatureDtype,
  FeatureSet,
  readCache,
  roundTrip,
  weightsHash,
  writeCache,
} from './feature-cache';

/** What the loop needs of a built model (the MODEL stage's BuiltModel satisfies it). */
export interface TrainableModel {
  model: tf.LayersModel;
  base: tf.LayersModel;
  head: tf.LayersModel;
  preprocess: string;
  inputSize: number;
  arch: string;
}

export interface Batch {
  xs: tf.Tensor;
  ys: tf.Tensor;
}

/** Yields batches of preprocessed images and one-hot labels; the caller disposes them. */
export type ImageBatchSource = (
  set: ImageSet,
  opts: { batchSize: number; shuffle: boolean; rng: Random; augment: boolean },
) => AsyncIterable<Batch> | Iterable<Batch>;

export interface LoopDeps {
  /** Applies a phase's trainable set to the model. */
  setTrainable: (built: TrainableModel, spec: boolean | { from: string }) => void;
  /** Batches of images for the full model. */
  imageBatches: ImageBatchSource;
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
  onEpoch?: (row: EpochRow) => void;
  /** Checked after every batch: true stops the run there with a checkpoint (an interrupt). */
  shouldStop?: () => boolean;
}

export interface LoopOutcome {
  state: TrainState;
  interrupted: boolean;
  resumedFrom?: string;
  /** Where shouldStop() stopped the run (1-based epoch over all phases, batch within it). */
  stoppedAt?: { epoch: number; batch: number; checkpoint: string };
}

/** The loss was NaN or infinite: training stopped, the last good checkpoint is kept. */
export class TrainingDivergedError extends Error {
  constructor(
    message: string,
    readonly checkpoint: string | undefined,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/**
 * Every weight of `model` in a fixed order (leaf layer by leaf layer, as created). model.weights is
 * trainable-first, so its order changes with the trainable set and cannot index a checkpoint.
 */
export function stableWeights(model: tf.LayersModel): tf.LayerVariable[] {
  const seen = new Set<tf.LayerVariable>();
  for (const l of leafLayers(model)) {
    const own = l as unknown as { _trainableWeights: tf.LayerVariable[]; _nonTrainableWeights: tf.LayerVariable[] };
    for (const w of [...own._trainableWeights, ...own._nonTrainableWeights]) seen.add(w);
  }
  return [...seen];
}

export function trainableParams(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((s, w) => s + w.shape.reduce((p: number, d) => p * (d as number), 1), 0);
}

function leafLayers(model: tf.LayersModel): tf.layers.Layer[] {
  const out: tf.layers.Layer[] = [];
  for (const l of model.layers) {
    const nested = (l as unknown as { layers?: tf.layers.Layer[] }).layers;
    if (Array.isArray(nested)) out.push(...leafLayers(l as unknown as tf.LayersModel));
    else out.push(l);
  }
  return out;
}

/** The phase's trainable set; batchNorm 'frozen' then freezes every BatchNormalization of the base. */
export function applyPhaseTrainable(built: TrainableModel, phase: Phase, deps: LoopDeps): void {
  const t = phase.trainable;
  deps.setTrainable(built, t === 'all' ? true : t === 'head' ? false : t);
  if (phase.batchNorm === 'frozen') {
    for (const l of leafLayers(built.base)) if (l.getClassName() === 'BatchNormalization') l.trainable = false;
  }
}

/** The frozen part and the trained part of the model for a cached phase. */
interface CacheSplit {
  extract: (xs: tf.Tensor) => tf.Tensor;
  headApply: (features: tf.Tensor, training: boolean) => tf.Tensor;
  /** Names of the parameter-free head layers moved into the cached part. */
  moved: string[];
  /** The base layer the trained part starts at, when the cut is inside the base. */
  cut?: string;
  /** The weights the cached part computes with: they key the cache. */
  frozenWeights: tf.LayerVariable[];
}

const PARAM_FREE_POOLS = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten']);

/**
 * model = input -> (resize) -> base -> head. The cached part runs every layer of `model` up to and
 * including the base, in inference mode. A leading global pooling of the head has no weights, so
 * it moves into the cached part too: a 4x4x1024 map shrinks to 1024 numbers per image.
 */
export function cacheSplit(built: TrainableModel, cutAt?: string): CacheSplit {
  const layers = built.model.layers;
  const baseIndex = layers.findIndex((l) => l === (built.base as unknown) || l.name === built.base.name);
  if (baseIndex < 0) throw new Error(`feature cache: the base '${built.base.name}' is not a layer of model '${built.model.name}'`);
  const beforeBase = layers.slice(0, baseIndex).filter((l) => l.getClassName() !== 'InputLayer');
  if (cutAt !== undefined) return cutInsideBase(built, beforeBase, cutAt);
  const front = [...beforeBase, layers[baseIndex]];
  const headLayers = built.head.layers.filter((l) => l.getClassName() !== 'InputLayer');
  const isChain = headLayers.every((l) => l.inboundNodes.length === 1 && l.inboundNodes[0].inboundLayers.length <= 1);
  const moved: tf.layers.Layer[] = [];
  if (isChain) while (moved.length < headLayers.length - 1 && PARAM_FREE_POOLS.has(headLayers[moved.length].getClassName())) moved.push(headLayers[moved.length]);
  const rest = headLayers.slice(moved.length);
  return {
    extract: (xs) => withTraining(false, () => [...front, ...moved].reduce((x, l) => l.apply(x, { training: false }) as tf.Tensor, xs)),
    headApply: moved.length
      ? (f, training) => withTraining(training, () => rest.reduce((x, l) => l.apply(x, { training }) as tf.Tensor, f))
      : (f, training) => withTraining(training, () => built.head.apply(f, { training }) as tf.Tensor),
    moved: moved.map((l) => l.name),
    frozenWeights: stableWeights(built.base),
  };
}

type GraphNode = { inputTensors: tf.SymbolicTensor[]; outputTensors: tf.SymbolicTensor[] };

/**
 * Cut inside the base, before layer `cutAt`: the cached part is everything below it (in inference
 * mode), the trained part re-runs the base's layers from `cutAt` on (the same layer objects, so the
 * full model gets their new weights) and then the head. Every layer from `cutAt` on may read only
 * tensors made at or after the cut: one tensor is cached per image.
 */
function cutInsideBase(built: TrainableModel, front: tf.layers.Layer[], cutAt: string): CacheSplit {
  const base = built.base;
  const index = base.layers.findIndex((l) => l.name === cutAt);
  if (index <= 0) throw new Error(`feature cache: no layer '${cutAt}' above the input of base '${base.name}' to cut at`);
  const node = (l: tf.layers.Layer) => l.inboundNodes[0] as unknown as GraphNode;
  const cutInputs = node(base.layers[index]).inputTensors;
  if (cutInputs.length !== 1) throw new Error(`feature cache: layer '${cutAt}' has ${cutInputs.length} inputs; cut at a layer with one`);
  const cutTensor = cutInputs[0];
  const suffix = base.layers.slice(index);
  const known = new Set<number>([cutTensor.id]);
  for (const l of suffix) {
    const missing = node(l).inputTensors.find((t) => !known.has(t.id));
    if (missing) throw new Error(`feature cache: layer '${l.name}' reads '${missing.name}' from below the cut at '${cutAt}'; cut at a layer whose input carries everything above it`);
    node(l).outputTensors.forEach((t) => known.add(t.id));
  }
  const baseOutput = base.outputs[0];
  if (!known.has(baseOutput.id)) throw new Error(`feature cache: the base's output is not computed from the cut at '${cutAt}'`);
  const below = tf.model({ inputs: base.inputs, outputs: cutTensor, name: `${base.name}_below_${cutAt}` });
  return {
    extract: (xs) => withTraining(false, () => below.apply(front.reduce((x, l) => l.apply(x, { training: false }) as tf.Tensor, xs), { training: false }) as tf.Tensor),
    headApply: (f, training) =>
      withTraining(training, () => {
        const values = new Map<number, tf.Tensor>([[cutTensor.id, f]]);
        for (const l of suffix) {
          const n = node(l);
          const inputs = n.inputTensors.map((t) => values.get(t.id)!);
          const out = l.apply(inputs.length === 1 ? inputs[0] : inputs, { training });
          (Array.isArray(out) ? out : [out]).forEach((o, i) => values.set(n.outputTensors[i].id, o as tf.Tensor));
        }
        return built.head.apply(values.get(baseOutput.id)!, { training }) as tf.Tensor;
      }),
    moved: [],
    cut: cutAt,
    // Only the layers below the cut: the cache stays valid while the layers above it train (resume).
    frozenWeights: stableWeights(below),
  };
}

/** Categorical cross-entropy on probabilities (as Keras: clipped to [eps, 1 - eps]), mean over the batch. */
function crossEntropy(probs: tf.Tensor, target: tf.Tensor): tf.Scalar {
  const p = tf.clipByValue(probs, 1e-7, 1 - 1e-7);
  return tf.neg(tf.mean(tf.sum(tf.mul(target, tf.log(p)), -1))) as tf.Scalar;
}

function correctCount(probs: tf.Tensor, ys: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(probs, -1), tf.argMax(ys, -1)), 'float32')) as tf.Scalar;
}

function smooth(ys: tf.Tensor, s: number, k: number): tf.Tensor {
  return s > 0 ? tf.add(tf.mul(ys, 1 - s), s / k) : ys;
}

/** Batches of cached features, in the order of `order` (a permutation or identity). */
function* featureBatches(set: FeatureSet, batchSize: number, order: ArrayLike<number> | undefined, numClasses: number): Generator<Batch> {
  const dims = set.dims;
  for (let start = 0; start < set.count; start += batchSize) {
    const n = Math.min(batchSize, set.count - start);
    const rows = new Float32Array(n * dims);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const j = order ? order[start + i] : start + i;
      rows.set(set.features.subarray(j * dims, (j + 1) * dims), i * dims);
      labels[i] = set.labels[j];
    }
    const xs = tf.tensor(rows, [n, ...set.shape]);
    const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses).toFloat());
    yield { xs, ys };
  }
}

async function computeFeatures(
  split: CacheSplit,
  set: ImageSet,
  batchSize: number,
  deps: LoopDeps,
  progress: Progress,
  label: string,
  stop?: { requested: () => boolean; error: (what: string) => Error },
): Promise<FeatureSet> {
  const task = progress.task(label, set.count);
  let features: Float32Array | undefined;
  let shape: number[] = [];
  let dims = 0;
  let offset = 0;
  for await (const b of deps.imageBatches(set, { batchSize, shuffle: false, rng: new Random(0), augment: false })) {
    const f = tf.tidy(() => split.extract(b.xs));
    const n = f.shape[0];
    if (!features) {
      shape = f.shape.slice(1);
      dims = shape.reduce((a, d) => a * d, 1);
      features = new Float32Array(set.count * dims);
    }
    features.set((await f.data()) as Float32Array, offset * dims);
    offset += n;
    tf.dispose([f, b.xs, b.ys]);
    task.tick(n);
    await yieldToEventLoop(); // an interrupt stops the extraction too (nothing trained yet: no checkpoint)
    if (stop?.requested()) throw stop.error(`${label}, ${offset} of ${set.count} images`);
  }
  task.done();
  if (!features || offset !== set.count) throw new Error(`${label}: the batch stream gave ${offset} images, expected ${set.count}`);
  return { features, labels: set.labels.slice(0, set.count), count: set.count, dims, shape };
}

async function cachedFeatures(ctx: LoopContext, split: CacheSplit): Promise<CachedFeatures> {
  const { built, profile, progress } = ctx;
  const dtype: FeatureDtype = profile.train.featureCacheDtype ?? 'float32';
  const parts = {
    arch: built.arch,
    baseWeightsHash: await weightsHash(split.frozenWeights),
    inputSize: built.inputSize,
    preprocess: built.preprocess,
    dtype,
    trainHash: contentHash(ctx.train.images, ctx.train.labels),
    valHash: contentHash(ctx.val.images, ctx.val.labels),
    movedLayers: split.moved.join(','),
    // Only cuts inside the base name their layer, so the keys of head-only caches stay as they were.
    ...(split.cut ? { cutBefore: split.cut } : {}),
  };
  const key = cacheKey(parts);
  const hit = readCache(key);
  if (hit) {
    progress.message(`feature cache hit: ${hit.dir}`);
    return hit;
  }
  const bs = profile.train.batchSize;
  const stop = { requested: () => ctx.shouldStop?.() ?? false, error: (what: string) => TrainingInterruptedError.during(what, latestCheckpoint(ctx.runDir)) };
  const train = await computeFeatures(split, ctx.train, bs, ctx.deps, progress, 'base features (train)', stop);
  const val = await computeFeatures(split, ctx.val, bs, ctx.deps, progress, 'base features (val)', stop);
  const dir = writeCache(key, parts, train, val);
  progress.message(`feature cache written: ${dir}`);
  return { key, dir, hit: false, train: roundTrip(train, dtype), val: roundTrip(val, dtype) };
}

function freshState(profile: Profile, backend: BackendInfo): TrainState {
  const seed = profile.train.seed;
  return {
    epoch: 0,
    phaseIndex: 0,
    phaseEpoch: 0,
    phaseFinished: false,
    rngState: new Random(seed).state,
    dropoutRngState: new Random(seed ^ 0x5eed).state,
    early: { best: null, bad: 0 },
    decisions: profile.train.phases.map(() => null),
    trainableByPhase: {},
    epochRows: [],
    batchRows: [],
    wallSeconds: 0,
    done: false,
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
  const all = stableWeights(built.model);
  const saved = all.map((w) => tf.clone(w.read()));
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
    all.forEach((w, i) => w.write(saved[i]));
    tf.dispose(saved);
  }
}

/** A checkpoint of the weights, the optimizer and `state`. */
async function saveState(runDir: string, state: TrainState, built: TrainableModel, opt: PhaseOptimizer, profile: Profile): Promise<string> {
  const optState = await optimizerState(opt);
  const dir = await saveCheckpoint(
    runDir,
    state,
    stableWeights(built.model).map((w) => ({ name: w.originalName ?? w.name, tensor: w.read() })),
    optState,
    profile.train.checkpointsKept ?? 2,
  );
  // getWeights() makes a fresh iteration-count scalar each call.
  tf.dispose(optState.filter((o) => o.name === 'iter').map((o) => o.tensor));
  return dir;
}

function writeTrainState(runDir: string, status: string, extra: Record<string, unknown> = {}): void {
  writeJsonAtomic(path.join(runDir, 'train-state.json'), { status, updated: new Date().toISOString(), ...extra });
}

/** Runs (or continues) the phases of ctx.profile. */
export async function runPhases(ctx: LoopContext): Promise<LoopOutcome> {
  const { profile, runDir, built, progress } = ctx;
  const phases = profile.train.phases;
  const k = ctx.numClasses;
  const smoothing = profile.train.labelSmoothing ?? 0;
  const processStart = Date.now();
  installTrainingSwitch(built.model);

  let state = freshState(profile, ctx.backend);
  let resumeOptimizer: NamedTensor[] | undefined;
  let resumedFrom: string | undefined;
  const last = ctx.resume === false ? undefined : latestCheckpoint(runDir);
  if (last) {
    const ck = loadCheckpoint(last);
    const weights = stableWeights(built.model);
    const mismatch = ck.weights.length !== weights.length || ck.weights.some((t, i) => t.shape.join('x') !== weights[i].shape.join('x'));
    if (mismatch) {
      tf.dispose(ck.weights);
      throw new Error(`${last}: its ${ck.weights.length} weight tensors do not match the model's ${weights.length}; was it made by another profile?`);
    }
    weights.forEach((w, i) => w.write(ck.weights[i]));
    tf.dispose(ck.weights);
    state = ck.state;
    resumeOptimizer = state.phaseFinished ? (tf.dispose(ck.optimizer.map((o) => o.tensor)), undefined) : ck.optimizer;
    resumedFrom = last;
    progress.message(`resuming ${runDir} from ${path.basename(last)} (phase '${phases[state.phaseIndex]?.name}', ${state.epoch} epochs done${state.partial ? ` and ${state.partial.step} batches of epoch ${state.epoch + 1}` : ''})`);
  } else {
    // A run started over drops the history of an earlier attempt.
    for (const f of Object.values(HISTORY_FILES)) fs.rmSync(path.join(runDir, f), { force: true });
  }
  const wallBefore = state.wallSeconds;
  const dropRng = new Random(state.dropoutRngState);
  const rng = new Random(state.rngState);
  const totalEpochs = phases.reduce((s, p) => s + p.epochs, 0);
  let epochsThisCall = 0;
  writeTrainState(runDir, 'running', { pid: process.pid });

  for (let p = state.phaseIndex; p < phases.length; p++) {
    const phase = phases[p];
    if (p === state.phaseIndex && state.phaseFinished) continue; // finished at the checkpoint: go on with the next
    if (state.phaseIndex !== p) {
      state.phaseIndex = p;
      state.phaseEpoch = 0;
      state.phaseFinished = false;
      state.early = { best: null, bad: 0 };
    }
    const batchSize = phase.batchSize ?? profile.train.batchSize;
    if (!state.decisions[p]) state.decisions[p] = await decidePhase(ctx, phase, batchSize);
    const decision = state.decisions[p]!;
    if (!decision.run) {
      progress.message(`phase '${phase.name}' skipped: ${decision.reason}`);
      state.phaseFinished = true;
      continue;
    }
    if (phase.runIf) progress.message(`phase '${phase.name}' runs: ${decision.reason}`);

    applyPhaseTrainable(built, phase, ctx.deps);
    state.trainableByPhase[phase.name] = trainableParams(built.model);
    const cutAt = typeof phase.trainable === 'object' && phase.featureCache ? phase.trainable.from : undefined;
    const cached = (phase.trainable === 'head' && profile.train.featureCache) || cutAt !== undefined;
    const split = cached ? cacheSplit(built, cutAt) : undefined;
    const features = split ? await cachedFeatures(ctx, split) : undefined;
    if (cached && profile.train.augment) {
      progress.message(`phase '${phase.name}': no augmentation - it trains on cached features (the base saw each image once, unaugmented)`);
    }
    const vars = built.model.trainableWeights.map((w) => w.read() as tf.Variable);
    if (vars.length === 0) throw new Error(`phase '${phase.name}': nothing to train (no trainable weights)`);
    const forward = split
      ? (x: tf.Tensor, training: boolean) => split.headApply(x, training)
      : (x: tf.Tensor, training: boolean) => withTraining(training, () => built.model.apply(x, { training }) as tf.Tensor);
    const trainCount = features ? features.train.count : ctx.train.count;
    const stepsPerEpoch = stepsFor(trainCount, batchSize);
    const opt: PhaseOptimizer = createOptimizer(phase);
    try {
      if (resumeOptimizer) {
        await restoreOptimizerState(opt, resumeOptimizer);
        tf.dispose(resumeOptimizer.map((o) => o.tensor));
        resumeOptimizer = undefined;
      }
      progress.phaseStart({
        phase: phase.name,
        phaseIndex: p,
        phases: phases.length,
        epochs: phase.epochs,
        startEpoch: state.phaseEpoch,
        stepsPerEpoch,
        cached,
      });
      for (let e = state.phaseEpoch; e < phase.epochs; e++) {
        const within = state.partial; // an epoch an interrupt stopped: skip the batches it trained
        state.partial = undefined;
        const epochRngState = rng.state;
        const epochStart = Date.now() - (within?.seconds ?? 0) * 1000;
        progress.epochStart(e);
        const globalEpoch = state.epoch + 1;
        const batchRows: BatchRow[] = within?.batchRows ?? [];
        let lossSum = within?.lossSum ?? 0;
        let correctSum = within?.correctSum ?? 0;
        let seen = within?.seen ?? 0;
        let step = 0;
        let lr = phase.lr;
        // An interrupt (ctx.shouldStop) stops after the batch in progress, in training or validation,
        // with a checkpoint of this point of the epoch; a resumed run goes on from it (validation anew).
        const stopRequested = async () => (await yieldToEventLoop(), ctx.shouldStop?.() ?? false);
        const stopHere = async (): Promise<LoopOutcome> => {
          state.partial = { step, lossSum, correctSum, seen, seconds: (Date.now() - epochStart) / 1000, batchRows };
          state.rngState = epochRngState;
          state.dropoutRngState = dropRng.state;
          state.wallSeconds = wallBefore + (Date.now() - processStart) / 1000;
          const checkpoint = await saveState(runDir, state, built, opt, profile);
          writeTrainState(runDir, 'interrupted', { epoch: globalEpoch, batch: step });
          return { state, interrupted: true, resumedFrom, stoppedAt: { epoch: globalEpoch, batch: step, checkpoint } };
        };
        const source = features
          ? featureBatches(features.train, batchSize, rng.permutation(features.train.count), k)
          : ctx.deps.imageBatches(ctx.train, { batchSize, shuffle: true, rng, augment: profile.train.augment });
        for await (const b of source) {
          if (within && step < within.step) {
            tf.dispose([b.xs, b.ys]); // drawn again for the same random state, trained before the interrupt
            lr = learningRateAt(phase, e, step, stepsPerEpoch);
            step++;
            continue;
          }
          lr = learningRateAt(phase, e, step, stepsPerEpoch);
          opt.setLearningRate(lr);
          let correctT: tf.Scalar | undefined;
          const lossT = withSeededMathRandom(dropRng, () =>
            opt.optimizer.minimize(
              () => {
                const probs = forward(b.xs, true);
                correctT = tf.keep(correctCount(probs, b.ys));
                return crossEntropy(probs, smooth(b.ys, smoothing, k));
              },
              true,
              vars,
            ),
          )!;
          opt.decay(vars, lr);
          const n = b.xs.shape[0];
          const [lv, cv] = await Promise.all([lossT.data(), correctT!.data()]);
          tf.dispose([lossT, correctT!, b.xs, b.ys]);
          step++;
          const loss = lv[0];
          if (!Number.isFinite(loss)) {
            const good = latestCheckpoint(runDir);
            const msg =
              `training diverged: the loss is ${loss} at phase '${phase.name}' epoch ${e + 1} step ${step} (lr ${lr.toExponential(2)}). ` +
              `Stopped; ${good ? `the last good checkpoint is kept: ${good}` : 'no checkpoint was written yet'}. ` +
              `Lower the learning rate (--set train.phases.${p}.lr=...) and start a new run.`;
            writeTrainState(runDir, 'diverged', { message: msg, checkpoint: good ?? null });
            progress.message(msg);
            throw new TrainingDivergedError(msg, good);
          }
          lossSum += loss * n;
          correctSum += cv[0];
          seen += n;
          const row: BatchRow = { phase: phase.name, epoch: globalEpoch, step, loss, accuracy: cv[0] / n, lr, seconds: (Date.now() - epochStart) / 1000 };
          batchRows.push(row);
          progress.batch(step, loss, row.accuracy, lr);
          if (await stopRequested()) return await stopHere();
        }
        // Validation, in inference mode.
        let vLoss = 0;
        let vCorrect = 0;
        let vSeen = 0;
        const valSource = features
          ? featureBatches(features.val, batchSize, undefined, k)
          : ctx.deps.imageBatches(ctx.val, { batchSize, shuffle: false, rng: new Random(0), augment: false });
        for await (const b of valSource) {
          const [l, c] = tf.tidy(() => {
            const probs = forward(b.xs, false);
            return [crossEntropy(probs, smooth(b.ys, smoothing, k)), correctCount(probs, b.ys)];
          });
          const n = b.xs.shape[0];
          const [lv, cv] = await Promise.all([l.data(), c.data()]);
          tf.dispose([l, c, b.xs, b.ys]);
          vLoss += lv[0] * n;
          vCorrect += cv[0];
          vSeen += n;
          if (await stopRequested()) return await stopHere();
        }
        const row: EpochRow = {
          phase: phase.name,
          phase_index: p,
          epoch: globalEpoch,
          phase_epoch: e + 1,
          loss: lossSum / Math.max(1, seen),
          accuracy: correctSum / Math.max(1, seen),
          val_loss: vSeen ? vLoss / vSeen : NaN,
          val_accuracy: vSeen ? vCorrect / vSeen : NaN,
          lr,
          seconds: (Date.now() - epochStart) / 1000,
          cached,
        };
        state.epoch = globalEpoch;
        state.phaseEpoch = e + 1;
        state.epochRows.push(row);
        state.batchRows.push(...batchRows);
        // Early stopping within the phase.
        const es = profile.train.earlyStopping;
        if (es) {
          const value = es.monitor === 'val_loss' ? row.val_loss : row.val_accuracy;
          const better = state.early.best === null || (es.monitor === 'val_loss' ? value < state.early.best : value > state.early.best);
          if (better) state.early = { best: value, bad: 0 };
          else state.early.bad++;
          if (state.early.bad >= es.patience && e + 1 < phase.epochs) {
            state.phaseFinished = true;
            progress.message(`early stopping in phase '${phase.name}': ${es.monitor} did not improve for ${es.patience} epochs (best ${state.early.best})`);
          }
        }
        if (state.phaseEpoch >= phase.epochs) state.phaseFinished = true;
        state.rngState = rng.state;
        state.dropoutRngState = dropRng.state;
        state.wallSeconds = wallBefore + (Date.now() - processStart) / 1000;
        await saveState(runDir, state, built, opt, profile);
        writeHistory(runDir, state.epochRows, state.batchRows);
        await progress.epochEnd(row, state.epochRows);
        ctx.onEpoch?.(row);
        epochsThisCall++;
        if (state.phaseFinished) break;
        if (ctx.stopAfterEpochs !== undefined && epochsThisCall >= ctx.stopAfterEpochs) {
          writeTrainState(runDir, 'interrupted', { epoch: state.epoch });
          return { state, interrupted: true, resumedFrom };
        }
      }
    } finally {
      opt.optimizer.dispose();
    }
    if (ctx.stopAfterEpochs !== undefined && epochsThisCall >= ctx.stopAfterEpochs && p < phases.length - 1) {
      writeTrainState(runDir, 'interrupted', { epoch: state.epoch });
      return { state, interrupted: true, resumedFrom };
    }
  }
  void totalEpochs;
  state.wallSeconds = wallBefore + (Date.now() - processStart) / 1000;
  return { state, interrupted: false, resumedFrom };
}
