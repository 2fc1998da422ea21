/**
 * Comparing finished runs side by side: one row per run (test accuracy, wall time, backend,
 * resolution, epochs per phase, the command that makes the run again) and their curves on one chart.
 *
 *   npm run -s cli -- compare data/runs/a data/runs/b --out docs/results
 *
 * Everything is read from the files each run wrote (profile.json, train-summary.json,
 * evaluation.json, history.csv), so the table holds only numbers the pipeline produced.
 */
import * as path from 'node:path';
import { loadProfile } from '../config';
import { readHistory, type VegaLiteSpec } from './charts';
import { readJson, readRunRow } from './runs';

export interface StudyRow {
  run: string;
  profile: string;
  /** Accuracy on the whole test set, and on CIFAR-10's exact first 1,000 test images (null elsewhere). */
  testAccuracy: number | null;
  /** How many test images testAccuracy is measured on (a limited profile tests on fewer than 10,000). */
  testCount: number | null;
  first1000Accuracy: number | null;
  valAccuracy: number | null;
  /** Training wall time (all phases, summed over resumed sittings). */
  trainMinutes: number | null;
  backend: string | null;
  /** Input size of the network in pixels (the stored images are resized to it inside the model). */
  resolution: number | null;
  /** Epochs of each phase that ran, e.g. "head 4 + finetune-all 2". */
  epochs: string;
  /** The command that runs this profile again from a fresh clone. */
  command: string;
}

/** key.path=value for every leaf where `actual` differs from `base` (arrays by index, as --set takes them). */
export function profileOverrides(base: unknown, actual: unknown, prefix = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object';
  if (isObject(base) && isObject(actual)) {
    const keys = [...new Set([...Object.keys(base), ...Object.keys(actual)])];
    return keys.flatMap((k) => profileOverrides(base[k], actual[k], prefix ? `${prefix}.${k}` : k));
  }
  if (JSON.stringify(base) === JSON.stringify(actual) || actual === undefined) return [];
  return [`${prefix}=${typeof actual === 'string' ? actual : JSON.stringify(actual)}`];
}

/** `npm start -- --profile NAME` plus a --set for each field the run changed from the profile file. */
export function reproduceCommand(saved: Record<string, unknown>): string {
  const name = String(saved.name);
  let sets: string[] = [];
  try {
    const fresh = loadProfile(name) as unknown as Record<string, unknown>;
    // The name and description are not settings; data.dir is where this machine keeps CIFAR-10.
    sets = profileOverrides(fresh, saved).filter((s) => !/^(name|description|data\.dir)=/.test(s));
  } catch {
    return `npm start -- --profile ${name}   # (profile file not found: see profile.json in the run)`;
  }
  return ['npm start -- --profile', name, ...sets.map((s) => `--set ${s}`)].join(' ');
}

function testCountOf(runDir: string): number | null {
  const count = readJson(path.join(runDir, 'evaluation.json'))?.count;
  return typeof count === 'number' ? count : null;
}

/** What one finished (or half-finished) run says about itself: the runs table's row, and what a comparison adds. */
export function studyRow(runDir: string): StudyRow {
  const profile = readJson(path.join(runDir, 'profile.json'));
  if (!profile) throw new Error(`${runDir}: not a run folder (no profile.json)`);
  const row = readRunRow(runDir);
  const summary = readJson(path.join(runDir, 'train-summary.json'));
  const phases = (summary?.phases ?? []) as { name: string; ran: boolean; epochs: number }[];
  const threads = typeof summary?.threads === 'number' && summary.threads > 1 ? `, ${summary.threads} threads` : '';
  const model = profile.model as { inputSize?: number };
  return {
    run: row.run,
    profile: String(profile.name),
    testAccuracy: row.test_accuracy,
    testCount: testCountOf(runDir),
    first1000Accuracy: row.first1000_accuracy,
    valAccuracy: row.val_accuracy,
    trainMinutes: row.wall_seconds === null ? null : row.wall_seconds / 60,
    backend: row.backend === null ? null : `${row.backend}${threads}`,
    resolution: typeof model?.inputSize === 'number' ? model.inputSize : null,
    epochs: phases.filter((p) => p.ran && p.epochs > 0).map((p) => `${p.name} ${p.epochs}`).join(' + ') || '-',
    command: reproduceCommand(profile),
  };
}

const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(2)}%`);

/**
 * The test column's label with the real test-set size: "test (10,000)" when every run tested on the
 * same number of images, else "test" with each run's count in its cell.
 */
export function testColumn(rows: StudyRow[]): { label: string; cell: (r: StudyRow) => string } {
  const counts = [...new Set(rows.map((r) => r.testCount))];
  const n = (c: number | null) => (c === null ? '?' : c.toLocaleString('en-US'));
  if (counts.length === 1) return { label: `test (${n(counts[0])})`, cell: (r) => pct(r.testAccuracy) };
  return { label: 'test (images)', cell: (r) => `${pct(r.testAccuracy)} (${n(r.testCount)})` };
}

/** The rows as a Markdown table (the command in a code span). */
export function studyMarkdown(rows: StudyRow[]): string {
  const test = testColumn(rows);
  const head = ['run', test.label, 'test (first 1,000)', 'val', 'train time', 'backend', 'resolution', 'epochs', 'command'];
  const lines = rows.map((r) => [
    r.run,
    test.cell(r),
    pct(r.first1000Accuracy),
    pct(r.valAccuracy),
    r.trainMinutes === null ? '-' : `${r.trainMinutes.toFixed(1)} min`,
    r.backend ?? '-',
    r.resolution === null ? '-' : `${r.resolution}x${r.resolution}`,
    r.epochs,
    `\`${r.command}\``,
  ]);
  return [head, head.map(() => '---'), ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n') + '\n';
}

/** Validation accuracy and training loss per epoch, one line per run. */
export function studyCurvesSpec(runDirs: string[]): VegaLiteSpec {
  const points: { run: string; epoch: number; phase: string; metric: string; value: number }[] = [];
  for (const dir of runDirs) {
    const run = path.basename(dir);
    for (const r of readHistory(dir)) {
      if (r.val_accuracy !== null) points.push({ run, epoch: r.globalEpoch, phase: r.phase, metric: 'validation accuracy', value: r.val_accuracy });
      if (r.loss !== null) points.push({ run, epoch: r.globalEpoch, phase: r.phase, metric: 'training loss', value: r.loss });
    }
  }
  const panel = (metric: string): VegaLiteSpec => ({
    title: metric,
    width: 340,
    height: 240,
    transform: [{ filter: { field: 'metric', equal: metric } }],
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch (all phases)', axis: { tickMinStep: 1 } },
      y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: false } },
      color: { field: 'run', type: 'nominal', title: 'run', legend: { orient: 'bottom', columns: 3, labelLimit: 400 } },
      tooltip: [{ field: 'run' }, { field: 'phase' }, { field: 'epoch' }, { field: 'value', format: '.4f' }],
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    data: { values: points },
    hconcat: [panel('validation accuracy'), panel('training loss')],
  };
}
