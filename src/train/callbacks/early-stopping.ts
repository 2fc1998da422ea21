/**
 * Early stopping within a phase (Keras EarlyStopping): the phase ends when `monitor` stops improving
 * for `patience` epochs. Its counters ride in the checkpoint under `early`.
 */
import type { Callback, CallbackState, FitState, PhaseRun } from '../loop';
import type { EpochRow } from '../history';
import type { Progress } from '../progress';

export type Monitor = 'val_loss' | 'val_accuracy';

/** Whether `value` beats `best` for `monitor` (lower loss, higher accuracy); a missing value never does. */
export function improves(monitor: Monitor, value: number | null, best: number | null): boolean {
  if (value === null || !Number.isFinite(value)) return false;
  return best === null || (monitor === 'val_loss' ? value < best : value > best);
}

export interface EarlyState {
  best: number | null;
  bad: number;
}

export class EarlyStopping implements Callback {
  readonly stateKey = 'early';
  private early: EarlyState = { best: null, bad: 0 };

  constructor(
    private readonly monitor: Monitor,
    private readonly patience: number,
    private readonly progress: Progress,
  ) {}

  state(): CallbackState {
    return { json: { ...this.early } };
  }

  restore(json: unknown): void {
    this.early = json ? { ...(json as EarlyState) } : { best: null, bad: 0 };
  }

  onPhaseBegin(_run: PhaseRun, s: FitState): void {
    // A phase starts its own count; a resumed phase keeps the checkpoint's.
    if (s.train.phaseEpoch === 0) this.early = { best: null, bad: 0 };
  }

  onEpochEnd(run: PhaseRun, s: FitState, row: EpochRow): void {
    const value = row[this.monitor];
    if (improves(this.monitor, value, this.early.best)) this.early = { best: value, bad: 0 };
    else this.early.bad++;
    if (this.early.bad >= this.patience && !s.train.phaseFinished) {
      const reason = `early stopping in phase '${run.phase.name}': ${this.monitor} did not improve for ${this.patience} epochs (best ${this.early.best})`;
      s.stop('phase', reason);
      this.progress.message(reason);
    }
  }
}
