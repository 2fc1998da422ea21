/**
 * Checkpointing and resume. After every epoch: the weights (stable order), the optimizer state, the
 * train state (phase, epoch, random states, history) and the state of every stateful callback (its
 * state(), as Keras' BackupAndRestore collects it: early stopping's counters, the phase's best
 * weights), as one checkpoint. Inside an epoch, when the loop pauses it (an interrupt, or every
 * `everyMinutes` of an epoch, which this callback asks for): the same with the epoch so far
 * (TrainState.partial), from which the loop resumes inside the epoch.
 *
 * Resume is this callback's run-begin hook: the newest intact checkpoint is loaded (its checksums
 * verified once), broken ones are skipped, each named with the reason, and the callbacks get their
 * states back; the optimizer state goes into the phase in progress when it begins.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HISTORY_FILES, type BatchRow } from '../history';
import type { Callback, FitState, PhaseRun } from '../loop';
import { checkpointsDir, findCheckpoint, loadCheckpoint, removeStaleTemporaries, saveCheckpoint, type CheckpointState, type LoadedCheckpoint, type TrainState } from '../checkpoint';
import { optimizerState, restoreOptimizerState, type NamedTensor } from '../optimizer';
import type { Progress } from '../progress';

export interface CheckpointingOptions {
  runDir: string;
  weights: () => tf.LayerVariable[];
  keep: number;
  /** Training seconds over all processes so far. */
  wallSeconds: () => number;
  /** The callbacks whose state() rides in the checkpoint and restore() takes it back. */
  stateful: () => Callback[];
  /** Also save inside an epoch every this many minutes (train.checkpointEveryMinutes). */
  everyMinutes?: number;
  /** Continue from the newest intact checkpoint (default true); false: start over. */
  resume?: boolean;
  progress: Progress;
  /** The phases' names, for the resume message. */
  phaseNames: string[];
}

export class Checkpointing implements Callback {
  private lastSave = Date.now();
  /** The checkpoint this run resumed from. */
  resumedFrom?: string;
  /** Checkpoints (and pointers) the resume skipped as broken, with the reason. */
  skipped: { path: string; why: string }[] = [];
  /** The optimizer state for the phase in progress at the resume, until that phase begins. */
  private resumeOptimizer?: NamedTensor[];

  constructor(private readonly o: CheckpointingOptions) {}

  async onRunBegin(s: FitState): Promise<void> {
    const { runDir, progress } = this.o;
    for (const t of removeStaleTemporaries(runDir)) progress.message(`removed ${path.join(checkpointsDir(runDir), t)}: left by a checkpoint write that did not finish`);
    const resumed = this.o.resume === false ? undefined : resumeFromCheckpoint(runDir, this.o.weights());
    this.skipped = resumed?.skipped ?? (this.o.resume === false ? [] : findCheckpoint(runDir).skipped);
    for (const sk of this.skipped) progress.message(`skipped ${sk.path}: ${sk.why}`);
    if (!resumed) {
      if (this.skipped.length) progress.message(`no intact checkpoint in ${runDir}: training starts over`);
      // A run started over drops the history of an earlier attempt.
      for (const f of Object.values(HISTORY_FILES)) fs.rmSync(path.join(runDir, f), { force: true });
      return;
    }
    const { epoch, partial, phaseIndex } = resumed.state;
    const within = partial ? `, and ${partial.step} batches of epoch ${epoch + 1}` : '';
    progress.message(`resuming ${runDir} from ${path.basename(resumed.from)} (phase '${this.o.phaseNames[phaseIndex]}', ${epoch} epochs done${within})`);
    this.resumedFrom = resumed.from;
    this.resumeOptimizer = resumed.optimizer;
    s.startFrom(restoreCallbacks(resumed.state, resumed.tensors, this.o.stateful()));
  }

  async onPhaseBegin(run: PhaseRun): Promise<void> {
    const opt = this.resumeOptimizer;
    if (!opt) return;
    this.resumeOptimizer = undefined;
    await restoreOptimizerState(run.step.optimizer, opt);
    tf.dispose(opt.map((o) => o.tensor));
  }

  onRunEnd(): void {
    if (this.resumeOptimizer) tf.dispose(this.resumeOptimizer.map((o) => o.tensor));
    this.resumeOptimizer = undefined;
  }

  onEpochBegin(): void {
    this.lastSave = Date.now();
  }

  onBatchEnd(run: PhaseRun, s: FitState, row: BatchRow): void {
    // Not after the epoch's last batch: its end-of-epoch checkpoint follows.
    const due = this.o.everyMinutes !== undefined && Date.now() - this.lastSave >= this.o.everyMinutes * 60_000;
    if (due && row.step < run.stepsPerEpoch) s.pauseRequested = `every ${this.o.everyMinutes} minutes`;
  }

  onEpochPause(run: PhaseRun, s: FitState): Promise<void> {
    return this.save(run, s);
  }

  onEpochEnd(run: PhaseRun, s: FitState): Promise<void> {
    return this.save(run, s);
  }

  /** The train state with every stateful callback's state beside it: what a checkpoint stores. */
  checkpointState(train: TrainState): { state: CheckpointState; tensors: Record<string, NamedTensor[]> } {
    const state: CheckpointState = { ...train };
    const tensors: Record<string, NamedTensor[]> = {};
    for (const cb of this.o.stateful()) {
      const key = cb.stateKey!;
      const st = cb.state!();
      if (st.json !== undefined) state[key] = st.json;
      if (st.tensors) tensors[key] = st.tensors;
    }
    return { state, tensors };
  }

  private async save(run: PhaseRun, s: FitState): Promise<void> {
    s.train.wallSeconds = this.o.wallSeconds();
    const optState = await optimizerState(run.step.optimizer);
    const { state, tensors } = this.checkpointState(s.train);
    await saveCheckpoint(this.o.runDir, state, this.o.weights().map((w) => ({ name: w.originalName ?? w.name, tensor: w.read() })), optState, this.o.keep, tensors);
    // getWeights() makes a fresh iteration-count scalar each call.
    tf.dispose(optState.filter((o) => o.name === 'iter').map((o) => o.tensor));
    this.lastSave = Date.now();
  }
}

/**
 * Hands each stateful callback its state from a checkpoint (and its tensors: ownership passes) and
 * returns the train state without them. Tensors no callback takes are disposed.
 */
function restoreCallbacks(state: CheckpointState, tensors: Record<string, tf.Tensor[]>, stateful: Callback[]): TrainState {
  const train: CheckpointState = { ...state };
  const left = { ...tensors };
  for (const cb of stateful) {
    const key = cb.stateKey!;
    cb.restore!(state[key], left[key]);
    delete train[key];
    delete left[key];
  }
  tf.dispose(Object.values(left).flat());
  return train;
}

export interface Resumed {
  state: CheckpointState;
  /** The optimizer state to restore into the phase in progress (undefined when that phase had finished). */
  optimizer?: NamedTensor[];
  /** Callbacks' tensors by stateKey; the caller disposes. */
  tensors: Record<string, tf.Tensor[]>;
  from: string;
  /** Newer checkpoints that were broken, with the reason. */
  skipped: { path: string; why: string }[];
}

/**
 * Loads the newest intact checkpoint of `runDir` into `weights`; undefined when there is none. A
 * checkpoint that fails to load is skipped for the one before it; one whose tensors do not fit the
 * model is an error (another profile made it).
 */
export function resumeFromCheckpoint(runDir: string, weights: tf.LayerVariable[]): Resumed | undefined {
  const choice = findCheckpoint(runDir);
  const skipped = [...choice.skipped];
  let dir = choice.dir;
  while (dir) {
    let ck: LoadedCheckpoint;
    try {
      ck = loadCheckpoint(dir);
    } catch (e) {
      skipped.push({ path: dir, why: (e as Error).message });
      const older = findCheckpoint(runDir, path.basename(dir));
      skipped.push(...older.skipped);
      dir = older.dir;
      continue;
    }
    const mismatch = ck.weights.length !== weights.length || ck.weights.some((t, i) => t.shape.join('x') !== weights[i].shape.join('x'));
    if (mismatch) {
      tf.dispose([...ck.weights, ...ck.optimizer.map((o) => o.tensor), ...Object.values(ck.tensors).flat()]);
      throw new Error(`${dir}: its ${ck.weights.length} weight tensors do not match the model's ${weights.length}; was it made by another profile?`);
    }
    weights.forEach((w, i) => w.write(ck.weights[i]));
    tf.dispose(ck.weights);
    const optimizer = ck.state.phaseFinished ? (tf.dispose(ck.optimizer.map((o) => o.tensor)), undefined) : ck.optimizer;
    return { state: ck.state, optimizer, tensors: ck.tensors, from: dir, skipped };
  }
  return undefined;
}
