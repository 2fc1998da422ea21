/**
 * Comparing finished runs side by side: one row per run (test accuracy, wall time, backend,
 * resolution, epochs per phase, the command that makes the run again) and their curves on one chart.
 *
 *   npm run -s cli -- compare data/runs/a data/runs/b --out docs/results
 *
 * Everything is read from the files each run wrote (profile.json, train-summary.json,
 * evaluation.json, history.csv), so the table holds only numbers the pipeline produced.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { quote } from 'shell-quote';
import { readJsonFile, readJsonObjectIfExists } from '../fsutil';
import { loadProfile } from '../config';
import { describeDivergence, readDivergence } from './divergence';
import { readHistory, type VegaLiteSpec } from './charts';
import { readRunRow } from './runs';
import { describeMachine, type Machine } from '../backend/machine';

export interface StudyRow {
  run: string;
  profile: string;
  /** Accuracy on the whole test set, and how many images that is (a profile's data.testLimit can cut it). */
  testAccuracy: number | null;
  testImages: number | null;
  /** Test accuracy with flip test-time augmentation, when the evaluation made it. */
  ttaAccuracy: number | null;
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
  /** The machine that finished the training (train-summary.json; runs before it was recorded: null). */
  machine: string | null;
  /** Where and why the training diverged (its numbers come from a broken run), else null. */
  diverged: string | null;
  /** Mean test accuracy over the corrupted copies of the test set (evaluation.json's robustness), when measured. */
  meanCorruptionAccuracy: number | null;
}

/**
 * key.path=value for every leaf where `actual` differs from `base` (arrays by index, as --set takes
 * them; an array of another length whole, since --set indexes only within an array).
 */
export function profileOverrides(base: unknown, actual: unknown, prefix = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object';
  const resized = Array.isArray(base) && Array.isArray(actual) && base.length !== actual.length;
  if (isObject(base) && isObject(actual) && Array.isArray(base) === Array.isArray(actual) && !resized) {
    const keys = [...new Set([...Object.keys(base), ...Object.keys(actual)])];
    return keys.flatMap((k) => profileOverrides(base[k], actual[k], prefix ? `${prefix}.${k}` : k));
  }
  if (JSON.stringify(base) === JSON.stringify(actual) || actual === undefined) return [];
  return [`${prefix}=${typeof actual === 'string' ? actual : JSON.stringify(actual)}`];
}

/** One word for a POSIX shell: as it is when it holds no character the shell reads (key.path=48), else quoted by shell-quote. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : quote([word]);
}

/**
 * `npm start -- --profile NAME` plus a --set for each field the run changed from the profile file,
 * each word quoted for a POSIX shell (a value such as {"name":"boom"} or $HOME pastes as written).
 */
export function reproduceCommand(saved: Record<string, unknown>): string {
  const name = String(saved.name);
  let sets: string[];
  try {
    const fresh = loadProfile(name) as unknown as Record<string, unknown>;
    // The name and description are not settings; data.dir is where this machine keeps CIFAR-10.
    sets = profileOverrides(fresh, saved).filter((s) => !/^(name|description|data\.dir)=/.test(s));
  } catch {
    return `npm start -- --profile ${shellWord(name)}   # (profile file not found: see profile.json in the run)`;
  }
  return ['npm start --', ...['--profile', name, ...sets.flatMap((s) => ['--set', s])].map(shellWord)].join(' ');
}

/** What one finished (or half-finished) run says about itself: the runs table's row, and what a comparison adds. */
export function studyRow(runDir: string): StudyRow {
  const file = path.join(runDir, 'profile.json');
  if (!fs.existsSync(file)) throw new Error(`${runDir}: not a run folder (no profile.json)`);
  const profile = readJsonFile<Record<string, unknown>>(file, "the run's profile (expected the JSON object written when the run was made)");
  const row = readRunRow(runDir);
  const summary = readJsonObjectIfExists(path.join(runDir, 'train-summary.json'));
  const robustness = readJsonObjectIfExists(path.join(runDir, 'evaluation.json'))?.robustness as { meanAccuracy?: unknown } | undefined;
  const phases = (summary?.phases ?? []) as { name: string; ran: boolean; epochs: number }[];
  const threads = typeof summary?.threads === 'number' && summary.threads > 1 ? `, ${summary.threads} threads` : '';
  const features = summary?.featureEngine === 'onnx' ? ', features on ONNX Runtime' : '';
  const model = profile.model as { inputSize?: number };
  const divergence = readDivergence(runDir);
  return {
    run: row.run,
    profile: String(profile.name),
    testAccuracy: row.test_accuracy,
    testImages: row.test_images,
    ttaAccuracy: row.tta_accuracy,
    valAccuracy: row.val_accuracy,
    trainMinutes: row.wall_seconds === null ? null : row.wall_seconds / 60,
    backend: row.backend === null ? null : `${row.backend}${threads}${features}`,
    resolution: typeof model?.inputSize === 'number' ? model.inputSize : null,
    epochs: phases.filter((p) => p.ran && p.epochs > 0).map((p) => `${p.name} ${p.epochs}`).join(' + ') || '-',
    command: reproduceCommand(profile),
    machine: summary?.machine && typeof summary.machine === 'object' ? describeMachine(summary.machine as Machine) : null,
    diverged: divergence ? describeDivergence(divergence) : null,
    meanCorruptionAccuracy: typeof robustness?.meanAccuracy === 'number' ? robustness.meanAccuracy : null,
  };
}

const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(2)}%`);
const images = (n: number) => `${n.toLocaleString('en-US')} images`;

/** The test-set size most runs were scored on (the first of equally common ones), null when none was. */
function commonTestImages(rows: StudyRow[]): number | null {
  const counts = rows.map((r) => r.testImages).filter((n): n is number => n !== null);
  let best: number | null = null;
  let bestRuns = 0;
  for (const n of counts) {
    const runs = counts.filter((c) => c === n).length;
    if (runs > bestRuns) [best, bestRuns] = [n, runs];
  }
  return best;
}

/** The test column: its header names the size the runs share; a run scored on another number says so in its cell. */
export function testColumn(rows: StudyRow[]): { label: string; cell: (r: StudyRow) => string } {
  const common = commonTestImages(rows);
  return {
    label: common === null ? 'test' : `test (${images(common)})`,
    cell: (r) => pct(r.testAccuracy) + (r.testAccuracy !== null && r.testImages !== null && r.testImages !== common ? ` (${images(r.testImages)})` : ''),
  };
}

/**
 * The rows as a Markdown table (the command in a code span). The test column's header names the
 * test-set size the runs share; a run scored on another number of images says so in its cell. A
 * flip-TTA column appears when a run has one, a "mean corruption accuracy" column when a run's
 * evaluation has a robustness table, and a line under the table names the machines.
 */
export function studyMarkdown(rows: StudyRow[]): string {
  const test = testColumn(rows);
  const tta = rows.some((r) => r.ttaAccuracy !== null);
  const robust = rows.some((r) => r.meanCorruptionAccuracy !== null);
  const head = ['run', test.label, ...(tta ? ['with flip TTA'] : []), ...(robust ? ['mean corruption accuracy'] : []), 'val', 'train time', 'backend', 'resolution', 'epochs', 'command'];
  const lines = rows.map((r) => [
    r.diverged ? `${r.run} **diverged** (${r.diverged})` : r.run,
    test.cell(r),
    ...(tta ? [pct(r.ttaAccuracy)] : []),
    ...(robust ? [pct(r.meanCorruptionAccuracy)] : []),
    pct(r.valAccuracy),
    r.trainMinutes === null ? '-' : `${r.trainMinutes.toFixed(1)} min`,
    r.backend ?? '-',
    r.resolution === null ? '-' : `${r.resolution}x${r.resolution}`,
    r.epochs,
    // a | would end the table cell (GitHub's tables take \| inside a code span)
    `\`${r.command.replace(/\|/g, '\\|')}\``,
  ]);
  const table = [head, head.map(() => '---'), ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
  return `${table}\n\n${machinesLine(rows)}\n`;
}

/** "Trained on: <machine> (runs a, b); not recorded: c." - one entry per machine. */
export function machinesLine(rows: StudyRow[]): string {
  const byMachine = new Map<string | null, string[]>();
  for (const r of rows) byMachine.set(r.machine, [...(byMachine.get(r.machine) ?? []), r.run]);
  const parts = [...byMachine].map(([m, runs]) => {
    const which = byMachine.size === 1 ? 'all runs' : runs.join(', ');
    return m === null ? `machine not recorded (trained before train-summary.json kept it): ${which}` : `${m}: ${which}`;
  });
  return `Trained on: ${parts.join('; ')}.`;
}

/** Validation accuracy and training loss per epoch, one line per run. */
export function studyCurvesSpec(runDirs: string[]): VegaLiteSpec {
  const points: { run: string; epoch: number; phase: string; metric: string; value: number }[] = [];
  for (const dir of runDirs) {
    const run = path.basename(dir);
    for (const r of readHistory(dir)) {
      if (r.val_accuracy !== null) points.push({ run, epoch: r.epoch, phase: r.phase, metric: 'validation accuracy', value: r.val_accuracy });
      if (r.loss !== null) points.push({ run, epoch: r.epoch, phase: r.phase, metric: 'training loss', value: r.loss });
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
