/**
 * Training history from a run folder and the Vega-Lite specs the results notebook and the report
 * show. Specs are plain objects (data inlined), so they render the same in tslab (display.chart),
 * in a browser and in `jupyter nbconvert` output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pl from 'nodejs-polars';

/** One epoch of training as the train stage logs it (history.csv / history.parquet). */
export interface HistoryRow {
  phase: string;
  /** The epoch number as logged (within the phase or overall - the trainer decides). */
  epoch: number;
  /** 1-based position over all phases: the x axis of the curves. */
  globalEpoch: number;
  loss: number | null;
  accuracy: number | null;
  val_loss: number | null;
  val_accuracy: number | null;
  lr: number | null;
  seconds: number | null;
}

const NUMERIC = ['loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds'] as const;

function num(v: unknown): number | null {
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * Epoch rows from raw records: rows carrying a `step` value are per-batch logs and are left out;
 * the rest keep file order and get a running globalEpoch.
 */
export function historyFromRecords(records: Record<string, unknown>[], origin = 'history'): HistoryRow[] {
  const out: HistoryRow[] = [];
  records.forEach((r, i) => {
    if (num(r.step) !== null) return;
    if (r.phase === undefined || r.epoch === undefined) {
      throw new Error(`${origin}: row ${i + 1} lacks the column 'phase' or 'epoch' (columns: ${Object.keys(r).join(', ')})`);
    }
    const row = { phase: String(r.phase), epoch: num(r.epoch) ?? 0, globalEpoch: out.length + 1 } as HistoryRow;
    for (const k of NUMERIC) row[k] = num(r[k]);
    out.push(row);
  });
  return out;
}

/** Reads <runDir>/history.csv (or history.parquet when the CSV is absent). */
export function readHistory(runDir: string): HistoryRow[] {
  const csv = path.join(runDir, 'history.csv');
  const parquet = path.join(runDir, 'history.parquet');
  if (fs.existsSync(csv)) {
    if (fs.readFileSync(csv, 'utf8').trim().split('\n').length < 2) return [];
    return historyFromRecords(pl.readCSV(csv).toRecords() as Record<string, unknown>[], csv);
  }
  if (fs.existsSync(parquet)) return historyFromRecords(pl.readParquet(parquet).toRecords() as Record<string, unknown>[], parquet);
  throw new Error(`${runDir}: no training history (expected history.csv or history.parquet - has the train stage run?)`);
}

export interface PhaseSpan {
  phase: string;
  /** First and last globalEpoch of the phase. */
  start: number;
  end: number;
}

/** Consecutive runs of the same phase name, in order. */
export function phaseSpans(rows: HistoryRow[]): PhaseSpan[] {
  const spans: PhaseSpan[] = [];
  for (const r of rows) {
    const last = spans[spans.length - 1];
    if (last && last.phase === r.phase) last.end = r.globalEpoch;
    else spans.push({ phase: r.phase, start: r.globalEpoch, end: r.globalEpoch });
  }
  return spans;
}

/** x positions (between two epochs) where one phase ends and the next begins. */
export function phaseBoundaries(rows: HistoryRow[]): { x: number; label: string }[] {
  const spans = phaseSpans(rows);
  return spans.slice(1).map((s, i) => ({ x: s.start - 0.5, label: `${spans[i].phase} → ${s.phase}` }));
}

export type VegaLiteSpec = Record<string, unknown>;
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/**
 * Train and validation curves of one metric over all epochs, with a dashed rule where each phase
 * begins (e.g. fine-tuning after the head-only phase) and the phase names along the top.
 */
export function historySpec(rows: HistoryRow[], metric: 'accuracy' | 'loss', opts: { width?: number; height?: number } = {}): VegaLiteSpec {
  const points: { epoch: number; phase: string; split: string; value: number }[] = [];
  for (const r of rows) {
    const train = r[metric];
    const val = r[metric === 'accuracy' ? 'val_accuracy' : 'val_loss'];
    if (train !== null) points.push({ epoch: r.globalEpoch, phase: r.phase, split: 'train', value: train });
    if (val !== null) points.push({ epoch: r.globalEpoch, phase: r.phase, split: 'validation', value: val });
  }
  const spans = phaseSpans(rows).map((s) => ({ ...s, middle: (s.start + s.end) / 2 }));
  const boundaries = phaseBoundaries(rows);
  const layers: VegaLiteSpec[] = [
    {
      data: { values: points },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch (all phases)', axis: { tickMinStep: 1 }, scale: { domain: [0.5, Math.max(1, rows.length) + 0.5], nice: false } },
        y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: false } },
        color: { field: 'split', type: 'nominal', title: null, scale: { domain: ['train', 'validation'] } },
        tooltip: [
          { field: 'phase' },
          { field: 'epoch' },
          { field: 'split' },
          { field: 'value', format: '.4f' },
        ],
      },
    },
  ];
  if (boundaries.length) {
    layers.push({
      data: { values: boundaries },
      mark: { type: 'rule', strokeDash: [4, 4], color: '#888' },
      encoding: { x: { field: 'x', type: 'quantitative' }, tooltip: [{ field: 'label', title: 'phase change' }] },
    });
  }
  layers.push({
    data: { values: spans },
    mark: { type: 'text', baseline: 'top', dy: 2, color: '#555', fontSize: 10 },
    encoding: { x: { field: 'middle', type: 'quantitative' }, y: { value: 0 }, text: { field: 'phase' } },
  });
  return {
    $schema: SCHEMA,
    title: `${metric} per epoch`,
    width: opts.width ?? 320,
    height: opts.height ?? 220,
    layer: layers,
  };
}

/** Accuracy and loss side by side. */
export function trainingCurvesSpec(rows: HistoryRow[]): VegaLiteSpec {
  const strip = (s: VegaLiteSpec) => {
    const { $schema: _drop, ...rest } = s;
    return rest;
  };
  return { $schema: SCHEMA, hconcat: [strip(historySpec(rows, 'accuracy')), strip(historySpec(rows, 'loss'))] };
}

/** Heatmap of counts[actual][predicted] with the count written in each cell; rows sum to the class support. */
/**
 * The confusion matrix as a heatmap; with `normalize`, colours and labels are shares of each true
 * class (row %), which compares classes of different sizes, the counts staying in the tooltip.
 */
export function confusionMatrixSpec(matrix: number[][], classes: string[], opts: { title?: string; cell?: number; normalize?: boolean } = {}): VegaLiteSpec {
  if (matrix.length !== classes.length) throw new Error(`confusionMatrixSpec: ${matrix.length} rows for ${classes.length} classes`);
  const values: { actual: string; predicted: string; count: number; share: number }[] = [];
  matrix.forEach((row, a) => {
    const total = row.reduce((s, v) => s + v, 0);
    row.forEach((count, p) => values.push({ actual: classes[a], predicted: classes[p], count, share: total ? count / total : 0 }));
  });
  const shown = opts.normalize ? 'share' : 'count';
  const max = opts.normalize ? 1 : Math.max(1, ...values.map((v) => v.count));
  const cell = opts.cell ?? 34;
  const axis = (title: string) => ({ field: title, type: 'nominal', sort: classes, title });
  return {
    $schema: SCHEMA,
    title: opts.title ?? (opts.normalize ? 'confusion matrix, % of each true class (rows sum to 100%)' : 'confusion matrix (rows: true class)'),
    width: cell * classes.length,
    height: cell * classes.length,
    data: { values },
    encoding: { x: { ...axis('predicted'), axis: { labelAngle: -45 } }, y: axis('actual') },
    layer: [
      {
        mark: { type: 'rect' },
        encoding: {
          color: { field: shown, type: 'quantitative', scale: { scheme: 'blues', domain: [0, max] }, legend: { title: opts.normalize ? 'share of row' : 'count', ...(opts.normalize ? { format: '.0%' } : {}) } },
          tooltip: [{ field: 'actual' }, { field: 'predicted' }, { field: 'count' }, { field: 'share', format: '.1%', title: 'share of row' }],
        },
      },
      {
        mark: { type: 'text', fontSize: 10 },
        encoding: {
          text: opts.normalize ? { field: 'share', type: 'quantitative', format: '.0%' } : { field: 'count', type: 'quantitative' },
          color: { condition: { test: `datum.${shown} > ${max / 2}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}
