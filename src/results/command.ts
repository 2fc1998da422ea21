/**
 * `report` and `predict` on the command line:
 *   npm run -s cli -- report [--run <runDir>] [--json]
 *   npm run -s cli -- predict --run <runDir> [--top 3] [--json] <image>...
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { listRuns, readRunProfile } from '../session';
import { paths } from '../config';

const REPORT_USAGE = `usage: npm run -s cli -- report [--run <runDir>] [--check] [--json]
       npm run -s cli -- report --compare <runDir> <runDir>... [--out FILE] [--json]
  Writes <runDir>/report.html: the result first (test accuracy, setup, the command that makes the
  run again), then the run's executed notebooks (<runDir>/notebooks/, where \`npm run notebook\`
  saves your reruns) in one self-contained page (charts and images embedded, nothing fetched).
  Default run: the newest in data/runs. Prints the path of the report.
  --run      the run folder
  --check    also open it in headless Chromium, save <runDir>/report.png and fail if a chart
             or image did not render, the page requested anything, opened a dialog, or holds a
             script element, an event-handler attribute or a javascript: URL
  --compare  several runs on one page: the comparison table, their curves overlaid and the profile
             fields they differ in; written to --out (default data/reports/compare-<time>.html)
  --out      the comparison page's file
  --json     print {"runDir", "report"} (or {"runs", "report"}) as JSON
  -h, --help this text
`;

const PREDICT_USAGE = `usage: npm run -s cli -- predict [--run <runDir>] [--top 3] [--backend NAME] [--json] <image>...
  Top classes with probabilities for PNG/JPEG files of any size, using <runDir>/model.
  --run      the run whose model predicts (default: the newest in data/runs that has a trained model)
  --top      how many classes per image (default 3)
  --backend  cpu, wasm, node or node-gpu (default TLWB_BACKEND, else the fastest that loads)
  --json     one JSON line per image
  -h, --help this text
`;

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
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      run: { type: 'string' },
      check: { type: 'boolean' },
      json: { type: 'boolean' },
      compare: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(REPORT_USAGE);
    return;
  }
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
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      run: { type: 'string' },
      top: { type: 'string', default: '3' },
      json: { type: 'boolean' },
      backend: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(PREDICT_USAGE);
    return;
  }
  if (positionals.length === 0) throw new Error(`predict: no image files given\n${PREDICT_USAGE}`);
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

const COMPARE_USAGE = `usage: npm run -s cli -- compare <runDir>... [--out DIR] [--json]
  One row per run - test accuracy (on all test images; the header says how many), validation
  accuracy, training time, backend, resolution, epochs per phase, and the command that makes the run
  again - printed as a Markdown table.
  --out       also write DIR/table.md and DIR/curves.svg (validation accuracy and training loss per
              epoch, one line per run)
  --json      print the rows as JSON instead
  -h, --help  this text
  One self-contained HTML page with the table, the curves and the profile differences:
  npm run -s cli -- report --compare <runDir>...
`;

export async function compareCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { out: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(COMPARE_USAGE);
    return;
  }
  if (positionals.length === 0) throw new Error(`compare: no run folders given\n${COMPARE_USAGE}`);
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

const ROBUSTNESS_USAGE = `usage: npm run -s cli -- robustness [--run <runDir>] [--only NAME,...] [--tta | --no-tta] [--save] [--json]
  Scores the run's model on its test set clean and corrupted in memory (seeded, deterministic):
  JPEG quality 90/75/50, Gaussian noise, Gaussian blur, defocus blur, contrast and brightness at
  CIFAR-10-C's severity-3 parameters (src/preprocess/corruptions.ts), on ONNX Runtime when it loads.
  Prints the table (clean, each corruption, their mean) and the wall time.
  --run      the run folder or a published folder (default: the newest run with a trained model)
  --only     a comma-separated list of corruption names (default: all)
  --tta      also score flip test-time augmentation (default: the profile's results.tta)
  --no-tta   do not
  --save     write the whole evaluation, with its robustness table, to <runDir>/evaluation.json
  --backend  cpu, wasm, node or node-gpu (default TLWB_BACKEND, else the fastest that loads)
  --json     print the robustness table as JSON
  -h, --help this text
`;

export async function robustnessCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      run: { type: 'string' },
      only: { type: 'string' },
      tta: { type: 'boolean' },
      'no-tta': { type: 'boolean' },
      save: { type: 'boolean' },
      backend: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(ROBUSTNESS_USAGE);
    return;
  }
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
