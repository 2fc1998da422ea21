/** Progress (terminal bar, log lines or the notebook's live display) as a callback of the loop. */
import type { Callback, FitState, PhaseRun, StepLogs } from '../loop';
import type { BatchRow, EpochRow } from '../history';
import type { Progress } from '../progress';

export class ProgressCallback implements Callback {
  constructor(
    private readonly progress: Progress,
    private readonly phases: number,
  ) {}
  onPhaseBegin(run: PhaseRun, s: FitState): void {
    this.progress.phaseStart({
      phase: run.phase.name,
      phaseIndex: run.index,
      phases: this.phases,
      epochs: run.phase.epochs,
      startEpoch: s.train.phaseEpoch,
      stepsPerEpoch: run.stepsPerEpoch,
      cached: run.cached,
    });
  }
  onEpochBegin(_run: PhaseRun, _s: FitState, epoch: number): void {
    this.progress.epochStart(epoch);
  }
  onBatchEnd(_run: PhaseRun, _s: FitState, row: BatchRow, _logs: StepLogs): void {
    this.progress.batch(row.step, row.loss, row.accuracy, row.lr);
  }
  async onEpochEnd(_run: PhaseRun, s: FitState, row: EpochRow): Promise<void> {
    await this.progress.epochEnd(row, s.train.epochRows);
  }
}

/** Calls `fn` with each finished epoch's row (after its checkpoint): TrainOptions.onEpoch. */
export class OnEpoch implements Callback {
  constructor(private readonly fn: (row: EpochRow) => void) {}
  onEpochEnd(_run: PhaseRun, _s: FitState, row: EpochRow): void {
    this.fn(row);
  }
}
