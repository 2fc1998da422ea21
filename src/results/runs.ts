/**
 * One row per run folder, read from the files each run wrote (profile.json, train-summary.json,
 * evaluation.json), so runs made by other versions or stopped half-way still show what they have.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pl from 'nodejs-polars';
import { paths } from '../config';
import { readJsonObjectIfExists } from '../fsutil';

export type RunRow = {
  run: string;
  profile: string | null;
  backbone: string | null;
  backend: string | null;
  epochs: number | null;
  wall_seconds: number | null;
  val_accuracy: number | null;
  test_accuracy: number | null;
  /** Images the test accuracy is over (a profile's data.testLimit can cut the test set). */
  test_images: number | null;
  tta_accuracy: number | null;
  /** The run's files that exist but could not be read, each with why (their columns are empty); null when none. */
  unreadable: string | null;
};

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const strOrNull = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);

/** The backend name however train-summary.json spells it: a string or a BackendInfo object. */
function backendName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object') return strOrNull((v as { choice?: unknown }).choice) ?? strOrNull((v as { tfName?: unknown }).tfName);
  return null;
}

/** Total epochs: a number, or per-phase counts (array or object) summed. */
function epochCount(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (Array.isArray(v)) return v.reduce<number>((s, x) => s + (typeof x === 'number' ? x : numOrNull((x as { epochs?: unknown })?.epochs) ?? 0), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce<number>((s, x) => s + (typeof x === 'number' ? x : 0), 0);
  return null;
}

/** What one run folder says about itself. */
export function readRunRow(runDir: string): RunRow {
  // A listing of many runs still shows a run with a damaged file, by what the other files say, and
  // names the damaged file in its `unreadable` column instead of leaving it out or hiding why.
  const unreadable: string[] = [];
  const read = (name: string): Record<string, unknown> | null => {
    try {
      return readJsonObjectIfExists(path.join(runDir, name));
    } catch (e) {
      unreadable.push(`${name}: ${(e as Error).message.replace(`${path.join(runDir, name)}: `, '')}`);
      return null;
    }
  };
  const profile = read('profile.json');
  const summary = read('train-summary.json');
  const evaluation = read('evaluation.json');
  const model = (profile?.model ?? {}) as Record<string, unknown>;
  const profileName = strOrNull(profile?.name) ?? strOrNull(summary?.profile);
  return {
    run: path.basename(runDir),
    profile: profileName,
    backbone: strOrNull(model.arch) ? `${model.arch}@${model.inputSize ?? '?'}` : null,
    backend: backendName(summary?.backend),
    epochs: epochCount(summary?.epochs),
    wall_seconds: numOrNull(summary?.wallSeconds) === null ? null : Math.round(numOrNull(summary?.wallSeconds)! * 10) / 10,
    val_accuracy: numOrNull(summary?.finalValAccuracy),
    test_accuracy: numOrNull(evaluation?.accuracy),
    test_images: numOrNull(evaluation?.count),
    tta_accuracy: numOrNull((evaluation?.tta as { accuracy?: unknown } | null)?.accuracy),
    unreadable: unreadable.length ? unreadable.join('; ') : null,
  };
}

/** Every run folder (with a profile.json) under runsDir, newest first. */
export function runRows(runsDir = paths().runs): RunRow[] {
  if (!fs.existsSync(runsDir)) return [];
  return fs
    .readdirSync(runsDir)
    .filter((n) => fs.existsSync(path.join(runsDir, n, 'profile.json')))
    .sort()
    .reverse()
    .map((n) => readRunRow(path.join(runsDir, n)));
}

export const RUN_COLUMNS: (keyof RunRow)[] = [
  'run', 'profile', 'backbone', 'backend', 'epochs', 'wall_seconds', 'val_accuracy', 'test_accuracy', 'test_images', 'tta_accuracy', 'unreadable',
];

/** The runs as a polars DataFrame (typed columns, nulls where a run lacks a file). */
export function runsTable(runsDir = paths().runs): pl.DataFrame {
  const rows = runRows(runsDir);
  const text = (k: keyof RunRow) => pl.Series(k, rows.map((r) => r[k] as string | null), pl.Utf8);
  const float = (k: keyof RunRow) => pl.Series(k, rows.map((r) => r[k] as number | null), pl.Float64);
  return pl.DataFrame([
    text('run'), text('profile'), text('backbone'), text('backend'),
    pl.Series('epochs', rows.map((r) => r.epochs), pl.Int32),
    float('wall_seconds'), float('val_accuracy'), float('test_accuracy'),
    pl.Series('test_images', rows.map((r) => r.test_images), pl.Int32),
    float('tta_accuracy'), text('unreadable'),
  ]);
}
