/**
 * Vega-Lite specs of the results stage (confusion matrix); the training curves and the history reader
 * belong to the train stage (src/train/curves.ts, src/train/history.ts) and are re-exported here for
 * the results notebook. Specs are plain objects (data inlined), so they render the same in tslab
 * (display.chart), in a browser and in `jupyter nbconvert` output.
 */
import { VEGA_LITE_SCHEMA, type VegaLiteSpec } from '../display';
import type { RobustnessSummary } from './robustness';

export type { VegaLiteSpec } from '../display';
export type { EpochRow } from '../train/history';
export { readHistory, historyFromRecords } from '../train/history';
export { phaseSpans, phaseBoundaries, historySpec, trainingCurvesSpec, type PhaseSpan } from '../train/curves';

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
    $schema: VEGA_LITE_SCHEMA,
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

/** Bars: accuracy on the clean test set and on each corrupted copy, the clean level as a rule. */
export function robustnessSpec(r: RobustnessSummary, opts: { title?: string } = {}): VegaLiteSpec {
  const values = [
    { set: 'clean', accuracy: r.clean.accuracy, kind: 'clean' },
    ...r.corruptions.map((c) => ({ set: c.label, accuracy: c.accuracy, kind: c.name.startsWith('jpeg') ? 'JPEG' : c.name.includes('blur') ? 'blur' : c.name.includes('noise') ? 'noise' : 'colour' })),
  ];
  const order = values.map((v) => v.set);
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: opts.title ?? `test accuracy, clean and corrupted (${r.count.toLocaleString('en-US')} images each)`,
    width: 420,
    height: 26 * values.length,
    layer: [
      {
        data: { values },
        mark: { type: 'bar' },
        encoding: {
          y: { field: 'set', type: 'nominal', sort: order, title: null, axis: { labelLimit: 280 } },
          x: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '.0%' }, title: 'accuracy' },
          color: { field: 'kind', type: 'nominal', title: 'kind', sort: ['clean', 'JPEG', 'blur', 'noise', 'colour'] },
          tooltip: [{ field: 'set' }, { field: 'accuracy', format: '.2%' }],
        },
      },
      {
        data: { values },
        mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 },
        encoding: {
          y: { field: 'set', type: 'nominal', sort: order },
          x: { field: 'accuracy', type: 'quantitative' },
          text: { field: 'accuracy', type: 'quantitative', format: '.1%' },
        },
      },
      {
        data: { values: [{ accuracy: r.clean.accuracy }] },
        mark: { type: 'rule', strokeDash: [4, 3], color: '#444' },
        encoding: { x: { field: 'accuracy', type: 'quantitative' } },
      },
    ],
  };
}
