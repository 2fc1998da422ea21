/**
 * Training history as nodejs-polars DataFrames: one row per epoch (history.csv / history.parquet)
 * and one per batch (history-batches.csv / .parquet), rewritten atomically after every epoch.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pl, { type DataType } from 'nodejs-polars';
import { replaceFileAtomic } from '../fsutil';

export interface EpochRow {
  phase: string;
  phase_index: number;
  /** 1-based over the whole run. */
  epoch: number;
  /** 1-based within the phase. */
  phase_epoch: number;
  /** Training metrics; null where a history file has no value (e.g. no validation set). */
  loss: number | null;
  accuracy: number | null;
  val_loss: number | null;
  val_accuracy: number | null;
  /** Learning rate of the epoch's last step. */
  lr: number | null;
  /** Wall seconds of the epoch (training + validation). */
  seconds: number | null;
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

/** The columns of each table and their polars types, in file order: the one list the frames are built from. */
const EPOCH_COLUMNS: Record<keyof EpochRow, DataType> = {
  phase: pl.Utf8,
  phase_index: pl.Int32,
  epoch: pl.Int32,
  phase_epoch: pl.Int32,
  loss: pl.Float64,
  accuracy: pl.Float64,
  val_loss: pl.Float64,
  val_accuracy: pl.Float64,
  lr: pl.Float64,
  seconds: pl.Float64,
  cached: pl.Bool,
};
const BATCH_COLUMNS: Record<keyof BatchRow, DataType> = {
  phase: pl.Utf8,
  epoch: pl.Int32,
  step: pl.Int32,
  loss: pl.Float64,
  accuracy: pl.Float64,
  lr: pl.Float64,
  seconds: pl.Float64,
};

function frame<R extends object>(rows: R[], columns: Record<keyof R, DataType>): pl.DataFrame {
  return pl.DataFrame((Object.entries(columns) as [keyof R & string, DataType][]).map(([name, type]) => pl.Series(name, rows.map((r) => r[name]), type)));
}

export function epochFrame(rows: EpochRow[]): pl.DataFrame {
  return frame(rows, EPOCH_COLUMNS);
}

export function batchFrame(rows: BatchRow[]): pl.DataFrame {
  return frame(rows, BATCH_COLUMNS);
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

function num(v: unknown): number | null {
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'bigint' ? Number(v) : Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * Epoch rows from raw records (a history file's rows, or a notebook's own). Rows carrying a `step`
 * value are per-batch logs and are left out; the rest keep their order, and `epoch` numbers them
 * over all phases. A file without phase_epoch (an older or hand-written one) has its `epoch`
 * column read as the epoch within the phase.
 */
export function historyFromRecords(records: Record<string, unknown>[], origin = 'history'): EpochRow[] {
  const out: EpochRow[] = [];
  const phases: string[] = [];
  records.forEach((r, i) => {
    if (num(r.step) !== null) return;
    if (r.phase === undefined || r.epoch === undefined) {
      throw new Error(`${origin}: row ${i + 1} lacks the column 'phase' or 'epoch' (columns: ${Object.keys(r).join(', ')})`);
    }
    const phase = String(r.phase);
    if (phases[phases.length - 1] !== phase) phases.push(phase);
    out.push({
      phase,
      phase_index: num(r.phase_index) ?? phases.length - 1,
      epoch: out.length + 1,
      phase_epoch: num(r.phase_epoch) ?? num(r.epoch) ?? 0,
      loss: num(r.loss),
      accuracy: num(r.accuracy),
      val_loss: num(r.val_loss),
      val_accuracy: num(r.val_accuracy),
      lr: num(r.lr),
      seconds: num(r.seconds),
      cached: r.cached === true || r.cached === 'true',
    });
  });
  return out;
}

/**
 * The epoch history of a run: history.parquet (exact), else history.csv. The one reader of training
 * histories: the train stage's notebook, the results stage and the study all use it.
 */
export function readHistory(runDir: string): EpochRow[] {
  const parquet = path.join(runDir, HISTORY_FILES.epochsParquet);
  const csv = path.join(runDir, HISTORY_FILES.epochsCsv);
  if (fs.existsSync(parquet)) return historyFromRecords(pl.readParquet(parquet).toRecords() as Record<string, unknown>[], parquet);
  if (fs.existsSync(csv)) {
    if (fs.readFileSync(csv, 'utf8').trim().split('\n').length < 2) return [];
    return historyFromRecords(pl.readCSV(csv).toRecords() as Record<string, unknown>[], csv);
  }
  throw new Error(`${runDir}: no training history (expected ${HISTORY_FILES.epochsCsv} or ${HISTORY_FILES.epochsParquet} - has the train stage run?)`);
}

/** A run's history as a table: one row per epoch, or per batch (history-batches.parquet). */
export function historyTable(runDir: string, which: 'epochs' | 'batches' = 'epochs'): pl.DataFrame {
  if (which === 'epochs') return epochFrame(readHistory(runDir));
  const file = path.join(runDir, HISTORY_FILES.batchesParquet);
  if (!fs.existsSync(file)) throw new Error(`${file}: no per-batch training history in this run (train it first)`);
  return pl.readParquet(file);
}
