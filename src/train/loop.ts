/**
 * The loop core, as Keras' train_step/test_step/fit and fastai's one_batch/_do_epoch/_do_fit:
 * trainStep and evalStep are tensor functions of one batch; fitPhase runs the epochs of one phase and
 * calls the callbacks around every phase, epoch and batch. Everything else (checkpoints and resume,
 * early stopping, the divergence guard, history files, progress, interruption, best weights, the LR
 * finder) is a callback in src/train/callbacks/.
 */
import * as tf from '@tensorflow/tfjs';
import type { Phase } from '../config';
import { Random } from '../random';
import type { BatchRow, EpochRow } from './history';
import type { NamedTensor, PhaseOptimizer } from './optimizer';
import type { PartialEpoch, TrainState } from './checkpoint';
import { withSeededMathRandom } from './seeded';

export interface Batch {
  xs: tf.Tensor;
  ys: tf.Tensor;
}

export type BatchStream = AsyncIterable<Batch> | Iterable<Batch>;

/** What a step needs: the forward pass, the optimizer, the variables it trains and the loss settings. */
export interface StepModel {
  forward: (xs: tf.Tensor, training: boolean) => tf.Tensor;
  optimizer: PhaseOptimizer;
  vars: tf.Variable[];
  numClasses: number;
  labelSmoothing: number;
  /** Clip the gradients to this global norm (Keras clipnorm over all of them); absent: no clipping. */
  clipNorm?: number;
  /** One loss weight per class for training steps (Keras class_weight; validation stays unweighted). Absent: all 1. */
  classWeights?: number[];
}

/** One step's scalars; the caller reads and disposes them. */
export interface StepTensors {
  loss: tf.Scalar;
  correct: tf.Scalar;
  /** Sum of the model's outputs: NaN or infinite exactly when an output is (the clipped loss hides it). */
  outputSum: tf.Scalar;
}

/**
 * Categorical cross-entropy on probabilities (as Keras: clipped to [eps, 1 - eps]), mean over the
 * batch. With per-example weights: the mean of weight x loss (Keras' sum over batch size, not a
 * weighted average), as class_weight does.
 */
export function crossEntropy(probs: tf.Tensor, target: tf.Tensor, weights?: tf.Tensor): tf.Scalar {
  const p = tf.clipByValue(probs, 1e-7, 1 - 1e-7);
  const perExample = tf.sum(tf.mul(target, tf.log(p)), -1);
  return tf.neg(tf.mean(weights ? tf.mul(perExample, weights) : perExample)) as tf.Scalar;
}

/**
 * sklearn's compute_class_weight('balanced') / Keras class_weight: n_samples / (n_classes * count_c),
 * so every class weighs as much in total. A class without images gets 0 (it contributes nothing).
 */
export function balancedClassWeights(perClass: number[]): number[] {
  const n = perClass.reduce((a, b) => a + b, 0);
  return perClass.map((c) => (c > 0 ? n / (perClass.length * c) : 0));
}

/** Each example's weight: its class's, from one-hot (or smoothed) labels. */
function exampleWeights(ys: tf.Tensor, classWeights: number[]): tf.Tensor {
  return tf.sum(tf.mul(ys, tf.tensor1d(classWeights)), -1);
}

export function correctCount(probs: tf.Tensor, ys: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(probs, -1), tf.argMax(ys, -1)), 'float32')) as tf.Scalar;
}

function smooth(ys: tf.Tensor, s: number, k: number): tf.Tensor {
  return s > 0 ? tf.add(tf.mul(ys, 1 - s), s / k) : ys;
}

/** Scales the gradients so that their global norm is at most maxNorm (tf.clip_by_global_norm). */
export function clipByGlobalNorm(grads: tf.NamedTensorMap, maxNorm: number): tf.NamedTensorMap {
  return tf.tidy(() => {
    const names = Object.keys(grads);
    const norm = tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n])))));
    const scale = tf.minimum(1, tf.div(maxNorm, tf.maximum(norm, 1e-12)));
    const out: tf.NamedTensorMap = {};
    for (const n of names) out[n] = tf.keep(tf.mul(grads[n], scale));
    return out;
  });
}

/** One optimizer step on `batch` at rate `lr` (dropout draws from `rng`). */
export function trainStep(m: StepModel, batch: Batch, lr: number, rng: Random): StepTensors {
  m.optimizer.setLearningRate(lr);
  let correct: tf.Scalar | undefined;
  let outputSum: tf.Scalar | undefined;
  const lossOf = () => {
    const probs = m.forward(batch.xs, true);
    correct = tf.keep(correctCount(probs, batch.ys));
    outputSum = tf.keep(tf.sum(probs) as tf.Scalar);
    const weights = m.classWeights ? exampleWeights(batch.ys, m.classWeights) : undefined;
    return crossEntropy(probs, smooth(batch.ys, m.labelSmoothing, m.numClasses), weights);
  };
  const loss = withSeededMathRandom(rng, () => {
    if (m.clipNorm === undefined) return m.optimizer.optimizer.minimize(lossOf, true, m.vars)!;
    const { value, grads } = tf.variableGrads(lossOf, m.vars);
    const clipped = clipByGlobalNorm(grads, m.clipNorm);
    m.optimizer.optimizer.applyGradients(clipped);
    tf.dispose([grads, clipped]);
    return value;
  });
  m.optimizer.decay(m.vars, lr);
  return { loss, correct: correct!, outputSum: outputSum! };
}

/** The loss and correct count of `batch` in inference mode: validation and evaluation. */
export function evalStep(m: Pick<StepModel, 'forward' | 'numClasses' | 'labelSmoothing'>, batch: Batch): StepTensors {
  return tf.tidy(() => {
    const probs = m.forward(batch.xs, false);
    return {
      loss: crossEntropy(probs, smooth(batch.ys, m.labelSmoothing, m.numClasses)),
      correct: correctCount(probs, batch.ys),
      outputSum: tf.sum(probs) as tf.Scalar,
    };
  });
}

/** The numbers of one step, read back from the device. */
export interface StepLogs {
  loss: number;
  correct: number;
  outputSum: number;
  size: number;
}

async function read(t: StepTensors, size: number): Promise<StepLogs> {
  const [l, c, o] = await Promise.all([t.loss.data(), t.correct.data(), t.outputSum.data()]);
  tf.dispose([t.loss, t.correct, t.outputSum]);
  return { loss: l[0], correct: c[0], outputSum: o[0], size };
}

/** One phase as the loop runs it. */
export interface PhaseRun {
  phase: Phase;
  index: number;
  step: StepModel;
  stepsPerEpoch: number;
  cached: boolean;
  /** The learning rate of step `step` (0-based) of epoch `epoch` (0-based within the phase). */
  lrAt: (epoch: number, step: number) => number;
  /** A fresh batch stream: the shuffled training data (draws from the data rng) or validation. */
  trainBatches: () => BatchStream;
  valBatches?: () => BatchStream;
}

/**
 * How a run stops early, the one way callbacks stop it: 'phase' ends the phase after this epoch
 * (early stopping, a skipped phase), 'run' stops now (interruption, stop-after, the LR finder). A
 * run stopped inside an epoch is first paused (onEpochPause, s.train.partial set): the checkpoint
 * callback saves it and a resume goes on from there.
 */
export type StopScope = 'phase' | 'run';

/** The mutable state of a run that callbacks read and update; the checkpoint stores its `train`. */
export class FitState {
  /** Data order and augmentation; dropout. */
  rng: Random;
  dropRng: Random;
  /** Why and how far the run stops, once a callback called stop(). */
  stopped?: { scope: StopScope; reason: string };
  /** Set by a callback: pause after this batch for a mid-epoch checkpoint (periodic saves); not a stop. */
  pauseRequested?: string;
  /** The epoch in progress (batches trained so far), while one is. */
  epochInProgress?: EpochProgress;

  constructor(
    public train: TrainState,
    rng?: Random,
    dropRng?: Random,
  ) {
    this.rng = rng ?? new Random(train.rngState);
    this.dropRng = dropRng ?? new Random(train.dropoutRngState);
  }

  /** Goes on from `train` (a resumed checkpoint's state), with its random states. */
  startFrom(train: TrainState): void {
    this.train = train;
    this.rng = new Random(train.rngState);
    this.dropRng = new Random(train.dropoutRngState);
  }

  /**
   * Stops the phase after this epoch, or the run now (see StopScope). A phase stop marks the phase
   * finished at once, so the callbacks after the caller at this epoch's end (best weights, the
   * checkpoint) see it; a run stop outranks a phase stop.
   */
  stop(scope: StopScope, reason: string): void {
    if (scope === 'phase') this.train.phaseFinished = true;
    if (this.stopped?.scope !== 'run') this.stopped = { scope, reason };
  }

  /** The reason the run stopped, when a callback stopped it (not just its phase). */
  get runStopped(): string | undefined {
    return this.stopped?.scope === 'run' ? this.stopped.reason : undefined;
  }
}

/** The epoch in progress: TrainState.partial plus the wall-clock start and the data random state at the start. */
export interface EpochProgress extends Omit<PartialEpoch, 'seconds'> {
  started: number;
  rngStart: number;
}

/**
 * What a callback keeps across a resume (Keras' BackupAndRestore collects it the same way): JSON,
 * stored in the checkpoint's state under the callback's stateKey, and tensors, stored in <stateKey>.bin.
 */
export interface CallbackState {
  json: unknown;
  tensors?: NamedTensor[];
}

export interface Callback {
  /** The key of this callback's state in a checkpoint; with state() and restore(), the checkpoint callback saves and restores it. */
  readonly stateKey?: string;
  /** This callback's state now, for a checkpoint. */
  state?(): CallbackState;
  /** Takes back a checkpoint's state (undefined: none stored); the tensors pass to this callback, which disposes them. */
  restore?(json: unknown, tensors: tf.Tensor[] | undefined): void;
  /** Before the first phase: the checkpoint callback resumes here (s.startFrom). */
  onRunBegin?(s: FitState): void | Promise<void>;
  /** After the last phase, a stop or an error: release what the callback holds. */
  onRunEnd?(s: FitState): void | Promise<void>;
  onPhaseBegin?(run: PhaseRun, s: FitState): void | Promise<void>;
  onEpochBegin?(run: PhaseRun, s: FitState, epoch: number): void | Promise<void>;
  onBatchBegin?(run: PhaseRun, s: FitState, step: number): void | Promise<void>;
  onBatchEnd?(run: PhaseRun, s: FitState, row: BatchRow, logs: StepLogs): void | Promise<void>;
  /** After each validation batch (an interrupt there stops the epoch: it is paused as after its last batch). */
  onValBatchEnd?(run: PhaseRun, s: FitState): void | Promise<void>;
  /**
   * The run pauses inside an epoch, s.train.partial set (its rngState is the epoch's start): it stops
   * (s.stop('run')) or a callback asked for a mid-epoch checkpoint (s.pauseRequested).
   */
  onEpochPause?(run: PhaseRun, s: FitState): void | Promise<void>;
  /** After validation and the train state's update; `row` is in s.train.epochRows. */
  onEpochEnd?(run: PhaseRun, s: FitState, row: EpochRow): void | Promise<void>;
  onPhaseEnd?(run: PhaseRun, s: FitState): void | Promise<void>;
}

type Hook = 'onRunBegin' | 'onRunEnd' | 'onPhaseBegin' | 'onEpochBegin' | 'onBatchBegin' | 'onBatchEnd' | 'onValBatchEnd' | 'onEpochPause' | 'onEpochEnd' | 'onPhaseEnd';

export async function emit<H extends Hook>(callbacks: Callback[], hook: H, ...args: Parameters<NonNullable<Callback[H]>>): Promise<void> {
  for (const cb of callbacks) await (cb[hook] as ((...a: unknown[]) => unknown) | undefined)?.call(cb, ...args);
}

/** Validation: the evaluation step over every batch, averaged per image; undefined when `stop` says so after a batch. */
export async function evaluate(
  m: Pick<StepModel, 'forward' | 'numClasses' | 'labelSmoothing'>,
  batches: BatchStream,
  stop?: () => Promise<boolean>,
): Promise<{ loss: number | null; accuracy: number | null } | undefined> {
  let loss = 0;
  let correct = 0;
  let seen = 0;
  for await (const b of batches) {
    const logs = await read(evalStep(m, b), b.xs.shape[0]);
    tf.dispose([b.xs, b.ys]);
    loss += logs.loss * logs.size;
    correct += logs.correct;
    seen += logs.size;
    if (await stop?.()) return undefined;
  }
  return seen ? { loss: loss / seen, accuracy: correct / seen } : { loss: null, accuracy: null };
}

/** Starts epoch `st.phaseEpoch`, or goes on with the one a mid-epoch checkpoint stopped (st.partial, consumed). */
function beginEpoch(st: TrainState, rng: Random): EpochProgress {
  const p = st.partial;
  st.partial = undefined;
  const started = Date.now() - (p?.seconds ?? 0) * 1000;
  return { step: p?.step ?? 0, lossSum: p?.lossSum ?? 0, correctSum: p?.correctSum ?? 0, seen: p?.seen ?? 0, batchRows: p?.batchRows ?? [], started, rngStart: rng.state };
}

/** The stream without its first `n` batches: drawn (the random state moves as in the first pass) and disposed. */
async function* skipBatches(stream: BatchStream, n: number): AsyncGenerator<Batch> {
  let i = 0;
  for await (const b of stream) {
    if (i++ < n) tf.dispose([b.xs, b.ys]);
    else yield b;
  }
}

/** Adds a trained batch to the epoch in progress; returns its history row. */
function addBatch(ep: EpochProgress, run: PhaseRun, st: TrainState, logs: StepLogs, lr: number): BatchRow {
  ep.step++;
  ep.lossSum += logs.loss * logs.size;
  ep.correctSum += logs.correct;
  ep.seen += logs.size;
  const row: BatchRow = { phase: run.phase.name, epoch: st.epoch + 1, step: ep.step, loss: logs.loss, accuracy: logs.correct / logs.size, lr, seconds: (Date.now() - ep.started) / 1000 };
  ep.batchRows.push(row);
  return row;
}

/** Records the epoch so far in s.train (partial, random states) and lets the callbacks save it. */
async function pauseEpoch(run: PhaseRun, s: FitState, ep: EpochProgress, callbacks: Callback[]): Promise<void> {
  const { started, rngStart, ...sofar } = ep;
  s.train.partial = { ...sofar, batchRows: [...sofar.batchRows], seconds: (Date.now() - started) / 1000 };
  s.train.rngState = rngStart;
  s.train.dropoutRngState = s.dropRng.state;
  s.pauseRequested = undefined;
  await emit(callbacks, 'onEpochPause', run, s);
}

/**
 * Runs the remaining epochs of one phase (from s.train.phaseEpoch on). Returns when the phase is
 * done, a callback finished it early (s.stop('phase')), or a callback stopped the run (s.stop('run')).
 */
export async function fitPhase(run: PhaseRun, s: FitState, callbacks: Callback[]): Promise<void> {
  const st = s.train;
  if (s.stopped?.scope === 'phase') s.stopped = undefined; // the previous phase's
  await emit(callbacks, 'onPhaseBegin', run, s);
  for (let e = st.phaseEpoch; e < run.phase.epochs && !s.runStopped; e++) {
    await emit(callbacks, 'onEpochBegin', run, s, e);
    if (s.runStopped) break;
    const ep = (s.epochInProgress = beginEpoch(st, s.rng));
    // A resumed epoch draws its batches again from the epoch-start random state and skips the trained ones.
    let lr = ep.step > 0 ? run.lrAt(e, ep.step - 1) : run.phase.lr;
    for await (const b of skipBatches(run.trainBatches(), ep.step)) {
      await emit(callbacks, 'onBatchBegin', run, s, ep.step);
      lr = run.lrAt(e, ep.step);
      const logs = await read(trainStep(run.step, b, lr, s.dropRng), b.xs.shape[0]);
      tf.dispose([b.xs, b.ys]);
      await emit(callbacks, 'onBatchEnd', run, s, addBatch(ep, run, st, logs, lr), logs);
      if (s.runStopped) break;
      if (s.pauseRequested) await pauseEpoch(run, s, ep, callbacks);
    }
    const valStopped = async () => (await emit(callbacks, 'onValBatchEnd', run, s), !!s.runStopped);
    const val = s.runStopped ? undefined : run.valBatches ? await evaluate(run.step, run.valBatches(), valStopped) : { loss: null, accuracy: null };
    if (!val) {
      await pauseEpoch(run, s, ep, callbacks); // stopped inside the epoch: a resume goes on from here
      break;
    }
    const row: EpochRow = {
      phase: run.phase.name,
      phase_index: run.index,
      epoch: st.epoch + 1,
      phase_epoch: e + 1,
      loss: ep.lossSum / Math.max(1, ep.seen),
      accuracy: ep.correctSum / Math.max(1, ep.seen),
      val_loss: val.loss,
      val_accuracy: val.accuracy,
      lr,
      seconds: (Date.now() - ep.started) / 1000,
      cached: run.cached,
    };
    s.epochInProgress = undefined;
    st.partial = undefined;
    st.epoch = row.epoch;
    st.phaseEpoch = e + 1;
    st.epochRows.push(row);
    st.batchRows.push(...ep.batchRows);
    st.rngState = s.rng.state;
    st.dropoutRngState = s.dropRng.state;
    if (st.phaseEpoch >= run.phase.epochs) st.phaseFinished = true;
    await emit(callbacks, 'onEpochEnd', run, s, row);
    if (s.stopped) break;
  }
  if (!s.runStopped) await emit(callbacks, 'onPhaseEnd', run, s);
}
