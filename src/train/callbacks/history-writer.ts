/** Rewrites history.csv/.parquet and history-batches.* after every epoch (after its checkpoint). */
import type { Callback, FitState } from '../loop';
import { writeHistory } from '../history';

export class HistoryWriter implements Callback {
  constructor(private readonly runDir: string) {}
  onEpochEnd(_run: unknown, s: FitState): void {
    writeHistory(this.runDir, s.train.epochRows, s.train.batchRows);
  }
}
