/**
 * Training history as nodejs-polars DataFrames: one row per epoch (history.csv / history.parquet)
 * and one per batch (history-batches.csv / .parquet), rewritten atomically after every epoch.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pl from 'nodejs-polars';
import { replaceFileAtomic } from '../session';

export interface EpochRow {
  phase: string;
  phase_index: number;
  /** 1-based over the whole run. */
  epoch: number;
  /** 1-based within the phase. */
  phase_epoch: number;
  loss: number;
  accuracy: number;
  val_loss: number;
  val_accuracy: number;
  /** Learning rate of the epoch's last step. */
  lr: number;
  /** Wall seconds of the epoch (training + validation). */
  seconds: number;
  /** Whether the phase trained on cached base features. */
  cached: boolean;
}

export interface BatchRow {
  phase: string;
  epoch: number;
  /** 1-based within the epoch. */
  step: number;
  loss: number;
  accuracy: number;
  lr: number;
  /** Seconds since the epoch started. */
  seconds: number;
}

export const HISTORY_FILES = {
  epochsCsv: 'history.csv',
  epochsParquet: 'history.parquet',
  batchesCsv: 'history-batches.csv',
  batchesParquet: 'history-batches.parquet',
} as const;

export function epochFrame(rows: EpochRow[]): pl.DataFrame {
  return pl.DataFrame([
    pl.Series('phase', rows.map((r) => r.phase), pl.Utf8),
    pl.Series('phase_index', rows.map((r) => r.phase_index), pl.Int32),
    pl.Series('epoch', rows.map((r) => r.epoch), pl.Int32),
    pl.Series('phase_epoch', rows.map((r) => r.phase_epoch), pl.Int32),
    pl.Series('loss', rows.map((r) => r.loss), pl.Float64),
    pl.Series('accuracy', rows.map((r) => r.accuracy), pl.Float64),
    pl.Series('val_loss', rows.map((r) => r.val_loss), pl.Float64),
    pl.Series('val_accuracy', rows.map((r) => r.val_accuracy), pl.Float64),
    pl.Series('lr', rows.map((r) => r.lr), pl.Float64),
    pl.Series('seconds', rows.map((r) => r.seconds), pl.Float64),
    pl.Series('cached', rows.map((r) => r.cached), pl.Bool),
  ]);
}

export function batchFrame(rows: BatchRow[]): pl.DataFrame {
  return pl.DataFrame([
    pl.Series('phase', rows.map((r) => r.phase), pl.Utf8),
    pl.Series('epoch', rows.map((r) => r.epoch), pl.Int32),
    pl.Series('step', rows.map((r) => r.step), pl.Int32),
    pl.Series('loss', rows.map((r) => r.loss), pl.Float64),
    pl.Series('accuracy', rows.map((r) => r.accuracy), pl.Float64),
    pl.Series('lr', rows.map((r) => r.lr), pl.Float64),
    pl.Series('seconds', rows.map((r) => r.seconds), pl.Float64),
  ]);
}

/** Writes both tables as CSV and Parquet into runDir (each file replaced atomically). */
export function writeHistory(runDir: string, epochs: EpochRow[], batches: BatchRow[]): void {
  fs.mkdirSync(runDir, { recursive: true });
  const e = epochFrame(epochs);
  const b = batchFrame(batches);
  replaceFileAtomic(path.join(runDir, HISTORY_FILES.epochsCsv), (tmp) => e.writeCSV(tmp));
  replaceFileAtomic(path.join(runDir, HISTORY_FILES.epochsParquet), (tmp) => e.writeParquet(tmp));
  replaceFileAtomic(path.join(runDir, HISTORY_FILES.batchesCsv), (tmp) => b.writeCSV(tmp));
  replaceFileAtomic(path.join(runDir, HISTORY_FILES.batchesParquet), (tmp) => b.writeParquet(tmp));
}

/** The epoch history of a run as a DataFrame (from history.parquet). */
export function readHistory(runDir: string, which: 'epochs' | 'batches' = 'epochs'): pl.DataFrame {
  const file = path.join(runDir, which === 'epochs' ? HISTORY_FILES.epochsParquet : HISTORY_FILES.batchesParquet);
  if (!fs.existsSync(file)) throw new Error(`${file}: no training history in this run (train it first)`);
  return pl.readParquet(file);
}
