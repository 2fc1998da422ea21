/**
 * The divergence guard. The loss is the clipped cross-entropy: once the weights are NaN it stays at
 * -ln(1e-7) = 16.1181 and looks finite, so the guard also checks the sum of the model's outputs at
 * every step (one more scalar beside the loss) and every trained weight at the end of each epoch and
 * before a mid-epoch checkpoint, before the checkpoint callback: a diverged state is never checkpointed.
 */
import * as tf from '@tensorflow/tfjs';
import type { Callback, FitState, PhaseRun, StepLogs } from '../loop';
import type { BatchRow, EpochRow } from '../history';
import type { DivergedAt } from '../run-state';
import type { TrainState } from '../checkpoint';

/** The loss or the model's output went NaN or infinite: training stopped, the last good checkpoint is kept. */
export class TrainingDivergedError extends Error {
  /** The run's state when it diverged (the epochs before are complete); set by runPhases. */
  state?: TrainState;
  constructor(
    message: string,
    readonly checkpoint: string | undefined,
    readonly at?: DivergedAt,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/** The names of the weights holding a NaN or infinite value. */
export async function nonFiniteWeights(weights: tf.LayerVariable[]): Promise<string[]> {
  if (weights.length === 0) return [];
  const flags = tf.tidy(() => tf.stack(weights.map((w) => tf.all(tf.isFinite(w.read())).cast('int32'))));
  const ok = await flags.data();
  flags.dispose();
  return weights.filter((_, i) => !ok[i]).map((w) => w.originalName ?? w.name);
}

export class DivergenceGuard implements Callback {
  constructor(
    /** Every weight of the model (moving statistics too: they are not trained but can overflow). */
    private readonly weights: () => tf.LayerVariable[],
    private readonly lastGood: () => string | undefined,
    private readonly onDiverged: (at: DivergedAt, message: string, checkpoint: string | undefined) => void,
  ) {}

  private fail(run: PhaseRun, where: { phaseEpoch: number; epoch: number; step: number }, what: string, lr: number | null): never {
    const good = this.lastGood();
    const at: DivergedAt = { phase: run.phase.name, epoch: where.epoch, step: where.step, reason: what };
    const msg =
      // Epochs counted over all phases, as history.csv's epoch column, train-summary.json and predict count them.
      `training diverged in phase '${run.phase.name}', epoch ${where.epoch}, step ${where.step}: ${what} (lr ${(lr ?? NaN).toExponential(2)}). ` +
      `Stopped; ${good ? `the last good checkpoint is kept: ${good}` : 'no checkpoint was written yet'}. ` +
      `Lower the learning rate (--set train.phases.${run.index}.lr=...) or clip the gradients (train.phases.${run.index}.clipNorm) and start a new run.`;
    this.onDiverged(at, msg, good);
    throw new TrainingDivergedError(msg, good, at);
  }

  onBatchEnd(run: PhaseRun, s: FitState, row: BatchRow, logs: StepLogs): void {
    const where = { phaseEpoch: s.train.phaseEpoch + 1, epoch: s.train.epoch + 1, step: row.step };
    if (!Number.isFinite(logs.loss)) this.fail(run, where, `the loss is ${logs.loss}`, row.lr);
    if (!Number.isFinite(logs.outputSum)) this.fail(run, where, `the model's output is ${logs.outputSum} (the clipped loss reads ${logs.loss.toFixed(4)})`, row.lr);
  }

  private async checkWeights(run: PhaseRun, where: { phaseEpoch: number; epoch: number; step: number }, lr: number | null): Promise<void> {
    const bad = await nonFiniteWeights(this.weights());
    if (bad.length) this.fail(run, where, `${bad.length} weight tensors hold NaN or infinite values (${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ', ...' : ''})`, lr);
  }

  /** Before a mid-epoch checkpoint too: a diverged state is never saved. */
  onEpochPause(run: PhaseRun, s: FitState): Promise<void> {
    const p = s.train.partial;
    return this.checkWeights(run, { phaseEpoch: s.train.phaseEpoch + 1, epoch: s.train.epoch + 1, step: p?.step ?? 0 }, p?.batchRows.at(-1)?.lr ?? null);
  }

  onEpochEnd(run: PhaseRun, _s: FitState, row: EpochRow): Promise<void> {
    return this.checkWeights(run, { phaseEpoch: row.phase_epoch, epoch: row.epoch, step: 0 }, row.lr);
  }
}
