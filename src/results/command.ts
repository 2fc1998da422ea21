/**
 * `report` and `predict` on the command line:
 *   npm run -s cli -- report [--run <runDir>] [--json]
 *   npm run -s cli -- predict --run <runDir> [--top 3] [--json] <image>...
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineCommand, helpText, parseCommand } from '../cli-options';
import { listRuns, readRunProfile } from '../session';
import { paths } from '../config';

export const REPORT_COMMAND = defineCommand({
  name: 'report',
  usage: ['npm run -s cli -- report [--run <runDir>] [--check] [--json]', 'npm run -s cli -- report --compare <runDir> <runDir>... [--out FILE] [--json]'],
  about:
    "  Writes <runDir>/report.html: the result first (test accuracy, setup, the command that makes the\n" +
    "  run again), then the run's executed notebooks (<runDir>/notebooks/, where `npm run notebook`\n" +
    '  saves your reruns) in one self-contained page (charts and images embedded, nothing fetched).\n' +
    '  Default run: the newest in data/runs. Prints the path of the report.',
  positionals: true,
  options: {
    run: { type: 'string', value: '<runDir>', help: 'the run folder' },
    check: {
      type: 'boolean',
      help:
        'also open it in headless Chromium, save <runDir>/report.png and fail if a chart\n' +
        'or image did not render, the page requested anything, opened a dialog, or holds a\n' +
        'script element, an event-handler attribute or a javascript: URL',
    },
    json: { type: 'boolean', help: 'print {"runDir", "report"} (or {"runs", "report"}) as JSON' },
    compare: {
      type: 'boolean',
      help: 'several runs on one page: the comparison table, their curves overlaid and the profile\nfields they differ in; written to --out (default data/reports/compare-<time>.html)',
    },
    out: { type: 'string', value: 'FILE', help: "the comparison page's file" },
  },
});

export const PREDICT_COMMAND = defineCommand({
  name: 'predict',
  usage: ['npm run -s cli -- predict [--run <runDir>] [--top 3] [--backend NAME] [--json] <image>...'],
  about: '  Top classes with probabilities for PNG/JPEG files of any size, using <runDir>/model.',
  positionals: true,
  options: {
    run: { type: 'string', value: '<runDir>', help: 'the run whose model predicts (default: the newest in data/runs that has a trained model)' },
    top: { type: 'string', value: 'N', default: '3', help: 'how many classes per image' },
    json: { type: 'boolean', help: 'one JSON line per image' },
    backend: { type: 'string', value: 'NAME', help: 'cpu, wasm, node or node-gpu (default TLWB_BACKEND, else the fastest that loads)' },
  },
});

/** The run folder named by --run (checked), else the newest run that passes `want`. */
export function chooseRun(option: string | undefined, want: (dir: string) => boolean, what: string): string {
  if (option) {
    const dir = path.resolve(option);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--run ${option}: no such folder`);
    return dir;
  }
  const run = listRuns().find(want);
  if (!run) throw new Error(`no run folder with ${what} in data/runs; give one with --run <runDir>`);
  return run;
}

export async function reportCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(REPORT_COMMAND, argv);
  if (!parsed) return;
  const { values, positionals } = parsed;
  if (values.compare) {
    const runs = positionals.map((p) => path.resolve(p));
    const { writeComparePage } = await import('./compare-page');
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const out = path.resolve(values.out ?? path.join(paths().data, 'reports', `compare-${stamp}.html`));
    const { assertOutTarget } = await import('../fsutil');
    assertOutTarget(out, { kind: 'file' });
    await writeComparePage(runs, out);
    process.stdout.write(values.json ? `${JSON.stringify({ runs, report: out })}\n` : `${out}\n`);
    return;
  }
  if (positionals.length) throw new Error(`report: unexpected ${positionals.join(' ')} (several runs: report --compare <run>...)`);
  const runDir = chooseRun(values.run, (d) => fs.existsSync(path.join(d, 'notebooks')), 'executed notebooks');
  const { writeReport } = await import('./report');
  const out = await writeReport(runDir);
  let check: { screenshot: string; charts: number; images: number; problems: string[] } | undefined;
  if (values.check) {
    const { inspectPage, reportProblems } = await import('./browser');
    const screenshot = path.join(runDir, 'report.png');
    const r = await inspectPage(out, { screenshot });
    // the file as written, parsed: what could run or fetch even where this Chromium would not
    const { htmlViolations } = await import('./report');
    const statics = htmlViolations(fs.readFileSync(out, 'utf8')).map((v) => `in the file: ${v}`);
    check = { screenshot, charts: r.charts.length, images: r.images.length, problems: [...reportProblems(r), ...statics] };
    if (!values.json) {
      process.stderr.write(`checked in Chromium: ${check.charts} charts, ${check.images} images, ${r.requests.length} request(s); screenshot ${screenshot}\n`);
      for (const p of check.problems) process.stderr.write(`problem: ${p}\n`);
    }
    if (check.problems.length) process.exitCode = 1;
  }
  process.stdout.write(values.json ? `${JSON.stringify({ runDir, report: out, ...(check ? { check } : {}) })}\n` : `${out}\n`);
}

export async function predictCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(PREDICT_COMMAND, argv);
  if (!parsed) return;
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new Error(`predict: no image files given\n${helpText(PREDICT_COMMAND)}`);
  const top = Number(values.top);
  if (!(Number.isInteger(top) && top >= 1)) throw new Error(`--top: expected a positive integer, got '${values.top}'`);
  const runDir = chooseRun(values.run, (d) => fs.existsSync(path.join(d, 'model', 'model.json')), 'a trained model (model/model.json)');
  const { initBackend } = await import('../backend');
  await initBackend({ force: values.backend, quiet: true });
  const { loadPredictor, predictFile } = await import('./predict');
  const predictor = await loadPredictor(runDir);
  const { headlineText, readHeadline } = await import('./report-summary');
  const shownRun = path.relative(process.cwd(), runDir).startsWith('..') ? runDir : path.relative(process.cwd(), runDir) || runDir;
  let profileName = '?';
  try {
    profileName = readRunProfile(runDir).name;
  } catch {
    // a model folder without profile.json still predicts; the line says what it knows
  }
  process.stderr.write(`model: run ${shownRun} (profile ${profileName}; ${headlineText(readHeadline(runDir))})${values.run ? '' : ' - the newest run with a trained model; another: --run <runDir>'}\n`);
  const { announceEngine } = await import('../model/engine');
  announceEngine((line) => process.stderr.write(`${line}${predictor.onnx ? ` (${predictor.onnx.file})` : ''}\n`));
  if (predictor.onnxSkipped) process.stderr.write(`model.onnx not used: ${predictor.onnxSkipped}; predicting from the TF.js model in model/\n`);
  let failed = 0;
  for (const file of positionals) {
    try {
      const p = await predictFile(predictor, file, top);
      if (values.json) process.stdout.write(`${JSON.stringify(p)}\n`);
      else process.stdout.write(`${file} (${p.width}x${p.height}): ${p.top.map((t) => `${t.class} ${(t.probability * 100).toFixed(1)}%`).join(', ')}\n`);
    } catch (e) {
      failed++;
      const message = (e as Error).message;
      if (values.json) process.stdout.write(`${JSON.stringify({ file, error: message })}\n`);
      process.stderr.write(`error: ${message}\n`);
    }
  }
  // Every good image is still predicted; the exit code says whether any file failed.
  if (failed) process.exitCode = 1;
}

export const COMPARE_COMMAND = defineCommand({
  name: 'compare',
  usage: ['npm run -s cli -- compare <runDir>... [--out DIR] [--json]'],
  about:
    '  One row per run - test accuracy (on all test images; the header says how many), validation\n' +
    '  accuracy, training time, backend, resolution, epochs per phase, and the command that makes the run\n' +
    '  again - printed as a Markdown table.',
  positionals: true,
  options: {
    out: { type: 'string', value: 'DIR', help: 'also write DIR/table.md and DIR/curves.svg (validation accuracy and training loss per\nepoch, one line per run)' },
    json: { type: 'boolean', help: 'print the rows as JSON instead' },
  },
  notes: '  One self-contained HTML page with the table, the curves and the profile differences:\n  npm run -s cli -- report --compare <runDir>...',
});

export async function compareCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(COMPARE_COMMAND, argv);
  if (!parsed) return;
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new Error(`compare: no run folders given\n${helpText(COMPARE_COMMAND)}`);
  const { assertOutTarget, writeFileAtomic } = await import('../fsutil');
  // table.md and curves.svg go beside what the folder holds (e.g. docs/results), never into a run.
  if (values.out) assertOutTarget(values.out, { kind: 'folder', addsFiles: true });
  const { studyRow, studyMarkdown, studyCurvesSpec } = await import('./study');
  const rows = positionals.map((dir) => studyRow(dir));
  const table = studyMarkdown(rows);
  if (values.out) {
    const { chartSvg } = await import('../display');
    writeFileAtomic(path.join(values.out, 'table.md'), table);
    writeFileAtomic(path.join(values.out, 'curves.svg'), await chartSvg(studyCurvesSpec(positionals)));
  }
  process.stdout.write(values.json ? `${JSON.stringify(rows)}\n` : table);
}

export const ROBUSTNESS_COMMAND = defineCommand({
  name: 'robustness',
  usage: ['npm run -s cli -- robustness [--run <runDir>] [--only NAME,...] [--tta | --no-tta] [--save] [--json]'],
  about:
    "  Scores the run's model on its test set clean and corrupted in memory (seeded, deterministic):\n" +
    '  JPEG quality 90/75/50, Gaussian noise, Gaussian blur, defocus blur, contrast and brightness at\n' +
    "  CIFAR-10-C's severity-3 parameters (src/preprocess/corruptions.ts), on ONNX Runtime when it loads.\n" +
    '  Prints the table (clean, each corruption, their mean) and the wall time.',
  options: {
    run: { type: 'string', value: '<runDir>', help: 'the run folder or a published folder (default: the newest run with a trained model)' },
    only: { type: 'string', value: 'NAME,...', help: 'a comma-separated list of corruption names (default: all)' },
    tta: { type: 'boolean', help: "also score flip test-time augmentation (default: the profile's results.tta)" },
    'no-tta': { type: 'boolean', help: 'do not' },
    save: { type: 'boolean', help: 'write the whole evaluation, with its robustness table, to <runDir>/evaluation.json' },
    backend: { type: 'string', value: 'NAME', help: 'cpu, wasm, node or node-gpu (default TLWB_BACKEND, else the fastest that loads)' },
    json: { type: 'boolean', help: 'print the robustness table as JSON' },
  },
});

export async function robustnessCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(ROBUSTNESS_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  const { CORRUPTION_NAMES } = await import('../config');
  type Name = (typeof CORRUPTION_NAMES)[number];
  let names: Name[] | true = true;
  if (values.only !== undefined) {
    const asked = values.only.split(',').map((n) => n.trim()).filter(Boolean);
    const unknown = asked.filter((n) => !(CORRUPTION_NAMES as readonly string[]).includes(n));
    if (unknown.length || !asked.length) throw new Error(`--only: unknown corruption ${unknown.map((n) => `'${n}'`).join(', ') || '(none given)'}; known: ${CORRUPTION_NAMES.join(', ')}`);
    names = asked as Name[];
  }
  if (values.tta && values['no-tta']) throw new Error('--tta and --no-tta: give one');
  const runDir = chooseRun(values.run, (d) => fs.existsSync(path.join(d, 'model', 'model.json')), 'a trained model (model/model.json)');
  const { initBackend } = await import('../backend');
  await initBackend({ force: values.backend, quiet: true });
  const { announceEngine } = await import('../model/engine');
  announceEngine((line) => process.stderr.write(`${line}\n`));
  const { readRunProfile } = await import('../session');
  const { evaluateRun, saveEvaluation } = await import('./run');
  const { robustnessRows } = await import('./robustness');
  const profile = readRunProfile(runDir);
  const tta = values.tta ? true : values['no-tta'] ? false : undefined;
  const t0 = performance.now();
  let last = 0;
  const r = await evaluateRun({ profile, runDir }, {
    tta,
    robustness: names,
    progress: false,
    onProgress: (text) => {
      const now = performance.now();
      if (now - last > 10000) {
        last = now;
        process.stderr.write(`${text}\n`);
      }
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const table = r.summary.robustness!;
  if (values.save) process.stderr.write(`saved ${saveEvaluation(runDir, r.summary)}\n`);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ runDir, seconds, robustness: table })}\n`);
    return;
  }
  const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(2)}%`);
  const rows = robustnessRows(table);
  const ttaColumn = rows.some((row) => row.tta_accuracy !== null);
  const lines = [
    `| test set (${table.count.toLocaleString('en-US')} images each) | accuracy | drop |${ttaColumn ? ' with flip TTA |' : ''}`,
    `| --- | --- | --- |${ttaColumn ? ' --- |' : ''}`,
    ...rows.map((row) => `| ${row.test_set} | ${pct(row.accuracy)} | ${row.drop === null ? '-' : `${(100 * row.drop).toFixed(2)}`} |${ttaColumn ? ` ${pct(row.tta_accuracy)} |` : ''}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n\n${runDir}: ${seconds.toFixed(0)} s wall (evaluation and corruption, ${r.evaluation.count * (1 + table.corruptions.length) * (r.evaluation.tta ? 2 : 1)} forward passes)\n`);
}
