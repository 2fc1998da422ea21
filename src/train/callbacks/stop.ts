/**
 * Interruption: stop after a number of epochs in this call (tests, notebooks), or when an AbortSignal
 * fires (a notebook's Kernel -> Interrupt, Ctrl-C). The run keeps its last checkpoint; an unfinished
 * epoch is dropped and repeated whole by the resume, so the history equals an uninterrupted run's.
 */
import type { Callback, FitState, PhaseRun } from '../loop';

export class StopAfterEpochs implements Callback {
  private done = 0;
  constructor(private readonly epochs: number) {}
  onEpochEnd(_run: PhaseRun, s: FitState): void {
    if (++this.done >= this.epochs) s.stopRun = `stopped after ${this.done} epochs, as asked`;
  }
}

export class StopOnAbort implements Callback {
  constructor(private readonly signal: AbortSignal) {}
  onBatchEnd(_run: PhaseRun, s: FitState): void {
    if (this.signal.aborted) s.stopRun = 'interrupted';
  }
  onEpochBegin(_run: PhaseRun, s: FitState): void {
    if (this.signal.aborted) s.stopRun = 'interrupted';
  }
}
