/**
 * `cli run`: a fresh run folder for a profile, notebooks 01..05 executed headless into
 * <run>/notebooks/, then the report when the results stage provides one.
 * `cli kernel`: registers the tslab kernel in <root>/.jupyter (idempotent).
 */
import * as path from 'node:path';
import { defineCommand, parseCommand } from '../cli-options';
import { initBackend } from '../backend';
import { loadProfile, paths } from '../config';
import { createRun, defaultProfileFor, readRunProfile } from '../session';
import { ensureKernel, jupyterEnv, jupyterPythonIfAny } from './kernel';
import { trustExecutedNotebooks } from './trust';
import { writeReport } from '../results/report';
import { headlineText, readHeadline } from '../results/report-summary';
import { assertRunFolderFree } from '../train/run-state';
import { isRunFolder, RUN_MARKER } from '../fsutil';
import { cellTimeout, listNotebooks, NotebookResult, RunnerEvent, runNotebooks } from './runner';

export const RUN_COMMAND = defineCommand({
  name: 'run',
  usage: [
    'npm run -s cli -- run [--profile NAME] [--set key.path=value ...] [--resume RUN_DIR] [--timeout SECONDS]',
    '                      [--notebooks DIR] [--quiet] [--json] [--skip-report]',
  ],
  about:
    '  Executes notebooks/NN-*.ipynb in order in a new run folder data/runs/<id>-<profile>/,\n' +
    '  writes the executed copies to <run>/notebooks/ and then the report (when available).',
  options: {
    profile: { type: 'string', value: 'NAME', help: 'profile name (default: TLWB_PROFILE, else quick on CPU, seed with a CUDA GPU)' },
    set: { type: 'string', value: 'key.path=value', multiple: true, help: 'profile override, repeatable (also TLWB_SET="a.b=1;c.d=x")' },
    resume: {
      type: 'string',
      value: 'RUN_DIR',
      help:
        'run the notebooks again in an existing run folder with the profile it started with:\n' +
        'training continues from its last checkpoint (or reports itself finished), then\n' +
        'the results and the report are made afresh',
    },
    timeout: { type: 'string', value: 'SECONDS', help: 'seconds per cell, 0 = none (default: TLWB_CELL_TIMEOUT, else 21600)' },
    notebooks: { type: 'string', value: 'DIR', help: 'folder of notebooks to run (default: notebooks/)' },
    quiet: { type: 'boolean', help: 'do not relay what the cells print' },
    json: { type: 'boolean', help: 'print {"runDir", "notebooks", "report"} as JSON at the end' },
    'skip-report': { type: 'boolean', help: 'run the notebooks only' },
  },
  notes:
    '  While a notebook runs, what its cells print and the training log (phases, epochs, ETA) are relayed\n' +
    "  here; at the end: the test accuracy, the run folder and the report. To open the run's notebooks\n" +
    '  in Jupyter afterwards: npm run notebook -- --run <run folder>.',
});

/**
 * Signs the notebooks the run executed for the user's Jupyter when a Python with Jupyter is there
 * (so they open trusted); without one, `npm run notebook` signs them when it opens the run.
 */
function trustRunNotebooks(dir: string, log: (s: string) => void): void {
  const python = jupyterPythonIfAny();
  if (!python) return;
  try {
    const r = trustExecutedNotebooks(dir, python);
    if (r.signed.length) log(`signed ${r.signed.length} executed notebook(s) for Jupyter (${r.db}): they open trusted`);
  } catch (e) {
    log(`warning: the notebooks could not be signed for Jupyter (they open "Not Trusted"): ${(e as Error).message}`);
  }
}

async function chooseProfile(flag: string | undefined, log: (s: string) => void): Promise<string> {
  const name = flag ?? process.env.TLWB_PROFILE;
  if (name) return name;
  const backend = await initBackend({ quiet: true });
  const d = defaultProfileFor(backend);
  log(`profile: ${d.name} (${d.why})`);
  return d.name;
}

/** "test accuracy 57.2% on 500 test images (validation 60.1%)" from the run's files. */
function runHeadline(runDir: string): string {
  return headlineText(readHeadline(runDir));
}

function progress(log: (s: string) => void): (e: RunnerEvent) => void {
  return (e) => {
    const name = path.basename(e.notebook);
    if (e.event === 'start') log(`▶ ${name}`);
    else if (e.event === 'done') log(`✓ ${name} (${e.seconds.toFixed(1)} s)`);
    else if (e.event === 'failed') log(`✗ ${name}: cell ${e.index + 1}`);
  };
}

export async function runCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(RUN_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const timeout = cellTimeout(values.timeout);
  const dir = path.resolve(values.notebooks ?? paths().notebooks);
  const notebooks = listNotebooks(dir);
  if (notebooks.length === 0) throw new Error(`no notebooks to run: ${dir} has no NN-name.ipynb files`);

  let name: string;
  let runDir: string;
  if (values.resume) {
    if (values.set?.length || values.profile) throw new Error('--resume keeps the profile the run started with: drop --profile and --set');
    runDir = path.resolve(values.resume);
    // A folder of the user's is not a run to write notebooks and a model into.
    if (!isRunFolder(runDir)) throw new Error(`--resume ${values.resume}: not a run folder (no ${RUN_MARKER}, no run profile.json); nothing was changed`);
    // Before any notebook starts: a trainer still working in that folder is named, not overwritten.
    assertRunFolderFree(runDir, 'run --resume');
    name = readRunProfile(runDir).name;
    log(`run folder (resumed, profile ${name}): ${runDir}`);
  } else {
    name = await chooseProfile(values.profile, log);
    const profile = loadProfile(name, values.set ?? []);
    runDir = createRun(profile);
    log(`run folder: ${runDir}`);
  }
  log(`notebooks: ${notebooks.map((n) => path.basename(n)).join(', ')}${timeout ? ` (cell timeout ${timeout} s)` : ''}`);

  let results: NotebookResult[];
  try {
    results = await runNotebooks(notebooks, {
      outDir: path.join(runDir, 'notebooks'),
      env: { TLWB_PROFILE: name, TLWB_RUN_DIR: runDir, TLWB_HEADLESS: '1' },
      timeoutSeconds: timeout,
      echo: !values.quiet,
      onEvent: progress(log),
    });
  } catch (e) {
    trustRunNotebooks(path.join(runDir, 'notebooks'), log);
    log(`run folder (incomplete): ${runDir}`);
    log(`continue it with: npm start -- --resume ${path.relative(process.cwd(), runDir) || runDir}`);
    throw e;
  }

  trustRunNotebooks(path.join(runDir, 'notebooks'), log);
  let report: string | undefined;
  if (!values['skip-report']) report = await writeReport(runDir);

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ runDir, notebooks: results.map((r) => r.output), report: report ?? null })}\n`);
  } else {
    // The last lines: the result first, then where everything is.
    const headline = runHeadline(runDir);
    if (headline) process.stdout.write(`${headline}\n`);
    process.stdout.write(`run folder: ${runDir}\n`);
    if (report) process.stdout.write(`report: ${report}\n`);
  }
}

export const KERNEL_COMMAND = defineCommand({
  name: 'kernel',
  usage: ['npm run -s cli -- kernel [--force] [--json]'],
  about:
    '  Registers the tslab kernel in <project>/.jupyter for a Python that has Jupyter\n' +
    '  (TLWB_PYTHON, /usr/bin/python3, then python3 on PATH). Quick when already done.',
  options: {
    force: { type: 'boolean', help: 'register again even when it is in place' },
    json: { type: 'boolean', help: 'print {python, jupyterPath, kernelJson, installed, JUPYTER_PATH} as JSON' },
  },
});

export async function kernelCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(KERNEL_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  const info = ensureKernel({ force: values.force, quiet: !!values.json });
  const env = jupyterEnv();
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ...info, JUPYTER_PATH: env.JUPYTER_PATH })}\n`);
    return;
  }
  process.stdout.write(
    `tslab kernel ${info.installed ? 'registered' : 'already registered'}: ${info.kernelJson}\n` +
      `python with Jupyter: ${info.python}\n` +
      `to use it from your own shell: export JUPYTER_PATH=${env.JUPYTER_PATH}\n`,
  );
}
