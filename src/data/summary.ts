/**
 * What notebook 01 and `cli data` show about a data set: counts per class and split (plain rows,
 * a polars DataFrame, a Vega-Lite bar chart) and sample images per class.
 */
import pl from 'nodejs-polars';
import type { TopLevelSpec } from 'vega-lite';
import type { GridImage } from '../display';
import { Dataset, ImageSet, SkippedFile, countPerClass, imageBytes } from './types';

export interface SplitDescription {
  count: number;
  perClass: number[];
  firstLabels: number[];
}

/** The shape `cli data --json` prints (skipped and warnings only when the data set has them). */
export interface DatasetDescription {
  classes: string[];
  train: SplitDescription;
  test: SplitDescription;
  source: string;
  /** Unreadable files left out (data.skipUnreadable / --skip-unreadable), each with the reason. */
  skipped?: SkippedFile[];
  /** What is unusual but accepted: a partial CIFAR-10 copy, imbalanced classes. */
  warnings?: string[];
}

export function describeSplit(set: ImageSet | undefined, numClasses: number): SplitDescription {
  if (!set) return { count: 0, perClass: new Array<number>(numClasses).fill(0), firstLabels: [] };
  return { count: set.count, perClass: countPerClass(set, numClasses), firstLabels: Array.from(set.labels.subarray(0, 10)) };
}

export function describeDataset(ds: Dataset): DatasetDescription {
  const n = ds.classes.length;
  return {
    classes: ds.classes,
    train: describeSplit(ds.train, n),
    test: describeSplit(ds.test, n),
    source: ds.source,
    ...(ds.skipped ? { skipped: ds.skipped } : {}),
    ...(ds.warnings?.length ? { warnings: ds.warnings } : {}),
  };
}

/** A plain-text table of the description, for the terminal. */
export function formatDescription(d: DatasetDescription, seconds?: number, size?: number): string {
  const width = Math.max(5, ...d.classes.map((c) => c.length));
  const lines = [
    `source: ${d.source}`,
    `${d.classes.length} classes, ${d.train.count} training and ${d.test.count} test images${size ? ` at ${size}x${size}` : ''}` +
      (seconds !== undefined ? `, loaded in ${seconds.toFixed(2)} s` : ''),
    '',
    `${'class'.padEnd(width)}  ${'train'.padStart(7)}  ${'test'.padStart(7)}`,
    ...d.classes.map((c, i) => `${c.padEnd(width)}  ${String(d.train.perClass[i]).padStart(7)}  ${String(d.test.perClass[i]).padStart(7)}`),
    `${'total'.padEnd(width)}  ${String(d.train.count).padStart(7)}  ${String(d.test.count).padStart(7)}`,
    '',
    `first training labels: ${d.train.firstLabels.join(' ')}`,
  ];
  if (d.skipped) {
    lines.push('', `${d.skipped.length} unreadable file${d.skipped.length === 1 ? '' : 's'} skipped${d.skipped.length ? ':' : ''}`, ...d.skipped.map((s) => `  ${s.file}: ${s.reason}`));
  }
  return lines.join('\n') + '\n';
}

export interface ClassCountRow {
  class: string;
  split: string;
  count: number;
}

/** Long-format rows: one per class and split (the data behind the table and the chart). */
export function classCountRows(ds: Dataset, splits: Record<string, ImageSet | undefined> = { train: ds.train, test: ds.test }): ClassCountRow[] {
  const rows: ClassCountRow[] = [];
  for (const [split, set] of Object.entries(splits)) {
    if (!set) continue;
    countPerClass(set, ds.classes.length).forEach((count, i) => rows.push({ class: ds.classes[i], split, count }));
  }
  return rows;
}

/** Wide table: class | <split>... | total, one row per class plus a total row. */
export function classCountTable(ds: Dataset, splits?: Record<string, ImageSet | undefined>): pl.DataFrame {
  const rows = classCountRows(ds, splits);
  const splitNames = [...new Set(rows.map((r) => r.split))];
  const columns: pl.Series[] = [pl.Series('class', [...ds.classes, 'total'], pl.Utf8)];
  for (const s of splitNames) {
    const counts = ds.classes.map((c) => rows.find((r) => r.class === c && r.split === s)!.count);
    columns.push(pl.Series(s, [...counts, counts.reduce((a, b) => a + b, 0)], pl.Int64));
  }
  return pl.DataFrame(columns);
}

/** Vega-Lite spec: grouped bars of images per class, one colour per split. */
export function classCountChart(ds: Dataset, splits?: Record<string, ImageSet | undefined>): TopLevelSpec {
  const rows = classCountRows(ds, splits);
  const splitOrder = [...new Set(rows.map((r) => r.split))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${ds.name}: images per class`,
    data: { values: rows },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x: { field: 'class', type: 'nominal', sort: ds.classes, title: null },
      xOffset: { field: 'split', type: 'nominal', sort: splitOrder },
      y: { field: 'count', type: 'quantitative', title: 'images' },
      color: { field: 'split', type: 'nominal', sort: splitOrder },
    },
    width: 480,
    height: 220,
  };
}

/** The image at `index` as a display.imageGrid item (a view, no copy). */
export function imageItem(set: ImageSet, index: number, caption: string): GridImage {
  const size = imageBytes(set);
  return { rgb: set.images.subarray(index * size, (index + 1) * size), width: set.width, height: set.height, caption };
}

/** The first `perClass` images of every class, class by class (rows of a grid). */
export function sampleImages(ds: Dataset, perClass = 8, set: ImageSet = ds.train): GridImage[] {
  const picked: number[][] = ds.classes.map(() => []);
  for (let i = 0; i < set.count; i++) {
    const list = picked[set.labels[i]];
    if (list.length < perClass) list.push(i);
  }
  return picked.flatMap((indices, c) => indices.map((i) => imageItem(set, i, ds.classes[c])));
}
