/**
 * Interruption: stop after a number of epochs in this call (tests, notebooks), or when an AbortSignal
 * fires (a notebook's Kernel -> Interrupt, Ctrl-C). Stopped inside an epoch (in its training batches
 * or its validation), the loop pauses it and the checkpoint callback writes a mid-epoch checkpoint:
 * the resume goes on inside that epoch, and the history equals an uninterrupted run's.
 */
import type { BatchRow } from '../history';
import type { Callback, FitState, PhaseRun } from '../loop';
import { yieldToEventLoop } from '../interrupt';

export class StopAfterEpochs implements Callback {
  private done = 0;
  constructor(private readonly epochs: number) {}
  onEpochEnd(_run: PhaseRun, s: FitState): void {
    if (++this.done >= this.epochs) s.stop('run', `stopped after ${this.done} epochs, as asked`);
  }
}

/**
 * Stops at the next batch once `signal` fires. Each batch (validation too) yields to the event loop
 * first: wasm and cpu steps settle as microtasks, and a SIGINT handler (Kernel -> Interrupt) runs
 * only when the event loop turns.
 */
export class StopOnAbort implements Callback {
  constructor(private readonly signal: AbortSignal) {}
  onEpochBegin(_run: PhaseRun, s: FitState): void {
    if (this.signal.aborted) s.stop('run', `interrupted at epoch ${s.train.epoch + 1}, batch ${s.train.partial?.step ?? 0}`);
  }
  async onBatchEnd(_run: PhaseRun, s: FitState, row: BatchRow): Promise<void> {
    await yieldToEventLoop();
    if (this.signal.aborted) s.stop('run', `interrupted at epoch ${row.epoch}, batch ${row.step}`);
  }
  async onValBatchEnd(_run: PhaseRun, s: FitState): Promise<void> {
    await yieldToEventLoop();
    if (this.signal.aborted) s.stop('run', `interrupted at epoch ${s.train.epoch + 1}, batch ${s.epochInProgress?.step ?? 0}`);
  }
}
