/**
 * Checkpointing and resume. After every epoch: the weights (stable order), the optimizer state, the
 * train state (phase, epoch, random states, early-stopping counters, history) and the phase's best
 * weights, as one checkpoint. Inside an epoch, when the loop pauses it (an interrupt, or every
 * `everyMinutes` of an epoch, which this callback asks for): the same with the epoch so far
 * (TrainState.partial), from which the loop resumes inside the epoch. Before training: the newest
 * intact checkpoint is loaded, after verifying its checksums; broken ones are skipped, each named
 * with the reason.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BatchRow } from '../history';
import type { Callback, FitState, PhaseRun } from '../loop';
import { findCheckpoint, loadCheckpoint, saveCheckpoint, type LoadedCheckpoint, type TrainState } from '../checkpoint';
import { optimizerState, type NamedTensor } from '../optimizer';

export class Checkpointing implements Callback {
  private lastSave = Date.now();

  constructor(
    private readonly runDir: string,
    private readonly weights: () => tf.LayerVariable[],
    private readonly keep: number,
    private readonly wallSeconds: () => number,
    private readonly best?: () => NamedTensor[] | undefined,
    /** Also save inside an epoch every this many minutes (train.checkpointEveryMinutes). */
    private readonly everyMinutes?: number,
  ) {}

  onEpochBegin(): void {
    this.lastSave = Date.now();
  }

  onBatchEnd(run: PhaseRun, s: FitState, row: BatchRow): void {
    // Not after the epoch's last batch: its end-of-epoch checkpoint follows.
    const due = this.everyMinutes !== undefined && Date.now() - this.lastSave >= this.everyMinutes * 60_000;
    if (due && row.step < run.stepsPerEpoch) s.pauseRequested = `every ${this.everyMinutes} minutes`;
  }

  onEpochPause(run: PhaseRun, s: FitState): Promise<void> {
    return this.save(run, s);
  }

  onEpochEnd(run: PhaseRun, s: FitState): Promise<void> {
    return this.save(run, s);
  }

  private async save(run: PhaseRun, s: FitState): Promise<void> {
    s.train.wallSeconds = this.wallSeconds();
    const optState = await optimizerState(run.step.optimizer);
    await saveCheckpoint(
      this.runDir,
      s.train,
      this.weights().map((w) => ({ name: w.originalName ?? w.name, tensor: w.read() })),
      optState,
      this.keep,
      s.train.phaseFinished ? undefined : this.best?.(),
    );
    // getWeights() makes a fresh iteration-count scalar each call.
    tf.dispose(optState.filter((o) => o.name === 'iter').map((o) => o.tensor));
    this.lastSave = Date.now();
  }
}

export interface Resumed {
  state: TrainState;
  /** The optimizer state to restore into the phase in progress (undefined when that phase had finished). */
  optimizer?: NamedTensor[];
  best?: tf.Tensor[];
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
      tf.dispose([...ck.weights, ...ck.optimizer.map((o) => o.tensor), ...(ck.best ?? [])]);
      throw new Error(`${dir}: its ${ck.weights.length} weight tensors do not match the model's ${weights.length}; was it made by another profile?`);
    }
    weights.forEach((w, i) => w.write(ck.weights[i]));
    tf.dispose(ck.weights);
    const optimizer = ck.state.phaseFinished ? (tf.dispose(ck.optimizer.map((o) => o.tensor)), undefined) : ck.optimizer;
    return { state: ck.state, optimizer, best: ck.best, from: dir, skipped };
  }
  return undefined;
}
