/**
 * The training curves of a run as Vega-Lite specs: train and validation loss and accuracy per
 * epoch, with the phase boundaries marked. The train notebook's live display, notebook 04 and the
 * results stage draw the same curves from here.
 */
import { VEGA_LITE_SCHEMA, type VegaLiteSpec } from '../display';
import type { EpochRow } from './history';

export interface PhaseSpan {
  phase: string;
  /** First and last globalEpoch of the phase. */
  start: number;
  end: number;
}

/** Consecutive runs of the same phase name, in order. */
export function phaseSpans(rows: EpochRow[]): PhaseSpan[] {
  const spans: PhaseSpan[] = [];
  for (const r of rows) {
    const last = spans[spans.length - 1];
    if (last && last.phase === r.phase) last.end = r.epoch;
    else spans.push({ phase: r.phase, start: r.epoch, end: r.epoch });
  }
  return spans;
}

/** x positions (between two epochs) where one phase ends and the next begins. */
export function phaseBoundaries(rows: EpochRow[]): { x: number; label: string }[] {
  const spans = phaseSpans(rows);
  return spans.slice(1).map((s, i) => ({ x: s.start - 0.5, label: `${spans[i].phase} → ${s.phase}` }));
}


/**
 * Train and validation curves of one metric over all epochs, with a dashed rule where each phase
 * begins (e.g. fine-tuning after the head-only phase) and the phase names along the top.
 */
export function historySpec(rows: EpochRow[], metric: 'accuracy' | 'loss', opts: { width?: number; height?: number } = {}): VegaLiteSpec {
  const points: { epoch: number; phase: string; split: string; value: number }[] = [];
  for (const r of rows) {
    const train = r[metric];
    const val = r[metric === 'accuracy' ? 'val_accuracy' : 'val_loss'];
    if (train !== null) points.push({ epoch: r.epoch, phase: r.phase, split: 'train', value: train });
    if (val !== null) points.push({ epoch: r.epoch, phase: r.phase, split: 'validation', value: val });
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
    $schema: VEGA_LITE_SCHEMA,
    title: `${metric} per epoch`,
    width: opts.width ?? 320,
    height: opts.height ?? 220,
    layer: layers,
  };
}

/** Accuracy and loss side by side. */
export function trainingCurvesSpec(rows: EpochRow[]): VegaLiteSpec {
  const strip = (s: VegaLiteSpec) => {
    const { $schema: _drop, ...rest } = s;
    return rest;
  };
  return { $schema: VEGA_LITE_SCHEMA, hconcat: [strip(historySpec(rows, 'accuracy')), strip(historySpec(rows, 'loss'))] };
}

