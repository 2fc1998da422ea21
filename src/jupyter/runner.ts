/**
 * Headless notebook runner: executes notebooks in order, each in a fresh tslab kernel driven by
 * the Node client (./execute, ./kernel-client: no Python needed), writes the executed copies into
 * an output folder and stops at the first failing cell with an error that names the notebook, the
 * cell and what the cell printed on stderr.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { paths, projectRoot } from '../config';
import { executeNotebook } from './execute';
import { KernelClient, tslabLauncher } from './kernel-client';
import { recordExecuted } from './trust';

/** Per-cell limit when none is given: training cells on a CPU can run for hours. */
export const DEFAULT_CELL_TIMEOUT_SECONDS = 6 * 3600;

/** The notebooks of the workflow in a folder: NN-name.ipynb, in numeric order. */
export function listNotebooks(dir = paths().notebooks): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d\d-.+\.ipynb$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Seconds per cell: the option, else TLWB_CELL_TIMEOUT, else the default; 0 means no limit. */
export function cellTimeout(option?: number | string): number | null {
  const raw = option ?? process.env.TLWB_CELL_TIMEOUT;
  if (raw === undefined || raw === '') return DEFAULT_CELL_TIMEOUT_SECONDS;
  const n = Number(raw);
  if (!(Number.isFinite(n) && n >= 0)) throw new Error(`cell timeout: expected seconds >= 0 (0 = none), got '${raw}'`);
  return n === 0 ? null : n;
}

export type RunnerEvent =
  | { event: 'start'; notebook: string }
  | { event: 'cell'; notebook: string; index: number; seconds: number }
  | { event: 'done'; notebook: string; seconds: number }
  | { event: 'failed'; notebook: string; index: number; codeIndex: number; executionCount: number | null; error: string; source: string };

export interface RunNotebooksOptions {
  /** Folder for the executed copies (same file names). */
  outDir: string;
  /** Extra environment for the kernels (the rest of ours passes through). */
  env?: NodeJS.ProcessEnv;
  /** Seconds per cell; null = no limit. Default cellTimeout(). */
  timeoutSeconds?: number | null;
  /** Seconds to wait for a kernel to start. Default 120 (kernels start slowly on busy machines). */
  startupTimeoutSeconds?: number;
  /** Relay what the cells print to our stderr as it happens. */
  echo?: boolean;
  onEvent?: (e: RunnerEvent) => void;
}

export interface NotebookResult {
  notebook: string;
  output: string;
  seconds: number;
}

/** The first failing cell of a run. */
export class NotebookCellError extends Error {
  constructor(
    readonly notebook: string,
    /** 1-based position among all cells, as a reader counts them in the notebook. */
    readonly cellNumber: number,
    /** 1-based position among the code cells. */
    readonly codeCellNumber: number,
    readonly errorText: string,
    readonly source: string,
    /** The executed copy, outputs up to the failure included. */
    readonly output: string,
    /** Stopped by an interrupt (Ctrl-C): the cell's own message says where and how to go on. */
    readonly interrupted = false,
    /** The cell's output was relayed to the terminal already (a stop message is not repeated). */
    relayed = false,
  ) {
    super(
      interrupted
        ? `${displayPath(notebook)}: cell ${cellNumber} stopped by the interrupt${relayed ? '' : `: ${errorText}`}; executed copy: ${output}`
        : `${displayPath(notebook)}: cell ${cellNumber} (code cell ${codeCellNumber}) failed:\n` +
            `${indent(source)}\n${errorText || '(no error text)'}\nexecuted copy: ${output}`,
    );
    this.name = 'NotebookCellError';
  }
}

function indent(s: string): string {
  return s.split('\n').map((l) => `  > ${l}`).join('\n');
}

function displayPath(file: string): string {
  const rel = path.relative(projectRoot, file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

const JOB_DIR_PREFIX = 'tlwb-run-';
/** A job folder without an owner pid (written before pids were recorded) is stale after this long. */
const UNOWNED_JOB_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, but someone else's
  }
}

/**
 * Removes the job folders (<tmp>/tlwb-run-*) of runs whose process is gone: a run killed with
 * SIGKILL never reaches its cleanup. Folders of live runs are left alone. Returns what it removed.
 */
export function removeStaleJobDirs(tmp = os.tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(tmp).filter((n) => n.startsWith(JOB_DIR_PREFIX));
  } catch {
    return removed;
  }
  for (const name of names) {
    const dir = path.join(tmp, name);
    try {
      const st = fs.lstatSync(dir);
      if (!st.isDirectory() || (typeof process.getuid === 'function' && st.uid !== process.getuid())) continue;
      let pid: unknown;
      try {
        pid = (JSON.parse(fs.readFileSync(path.join(dir, 'job.json'), 'utf8')) as { pid?: unknown }).pid;
      } catch {
        pid = undefined; // no or half-written job.json: judged by age below
      }
      const stale = typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? !isAlive(pid) : Date.now() - st.mtimeMs > UNOWNED_JOB_MAX_AGE_MS;
      if (stale) {
        fs.rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
      }
    } catch {
      // another process removed it meanwhile, or it is not ours to remove
    }
  }
  return removed;
}

/**
 * Executes the notebooks in order, each in a fresh tslab kernel (its working folder the notebook's
 * own folder, so `import * as wb from "../dist/src"` resolves), writing executed copies into
 * opts.outDir. Throws NotebookCellError at the first failing cell; the notebooks after it are not run.
 *
 * Ctrl-C (SIGINT) interrupts the running kernel as Jupyter's Kernel -> Interrupt does (a training
 * cell stops after its batch with a checkpoint and fails with where it stopped); a second one, or
 * SIGTERM, kills the kernel and stops the run.
 */
export async function runNotebooks(notebooks: string[], opts: RunNotebooksOptions): Promise<NotebookResult[]> {
  for (const nb of notebooks) if (!fs.existsSync(nb)) throw new Error(`${nb}: no such notebook`);
  if (!fs.existsSync(tslabLauncher())) throw new Error(`${tslabLauncher()} is missing: run \`npm ci\` (tslab is a dependency of this project)`);
  const outDir = path.resolve(opts.outDir);
  fs.mkdirSync(outDir, { recursive: true });
  removeStaleJobDirs();
  const jobDir = fs.mkdtempSync(path.join(os.tmpdir(), JOB_DIR_PREFIX));
  fs.writeFileSync(path.join(jobDir, 'job.json'), JSON.stringify({ pid: process.pid, notebooks }));
  const timeoutSeconds = opts.timeoutSeconds === undefined ? cellTimeout() : opts.timeoutSeconds;

  let kernel: KernelClient | null = null;
  let stoppedBy: NodeJS.Signals | null = null;
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    process.exitCode = 128 + (sig === 'SIGINT' ? 2 : 15);
    if (sig === 'SIGINT' && ++interrupts === 1 && kernel?.alive) {
      process.stderr.write('notebook runner: interrupting the kernel (training stops after its batch with a checkpoint); Ctrl-C again to quit now\n');
      void kernel.interrupt();
      return;
    }
    stoppedBy = sig;
    kernel?.kill();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const results: NotebookResult[] = [];
  try {
    for (const nb of notebooks) {
      const input = path.resolve(nb);
      const output = path.join(outDir, path.basename(nb));
      opts.onEvent?.({ event: 'start', notebook: input });
      const outcome = await executeNotebook({
        input,
        output,
        cwd: path.dirname(input),
        env: opts.env,
        timeoutSeconds,
        startupTimeoutSeconds: opts.startupTimeoutSeconds ?? 120,
        runtimeDir: jobDir,
        echo: opts.echo,
        onCell: (index, seconds) => opts.onEvent?.({ event: 'cell', notebook: input, index, seconds }),
        onKernel: (k) => {
          kernel = k;
          if (k && stoppedBy) k.kill();
        },
      });
      // What the project executed itself, so that it may sign it for Jupyter (./trust), now or when the run is opened.
      if (fs.existsSync(output)) recordExecuted(output);
      if (stoppedBy) throw new Error(`notebook runner: stopped by ${stoppedBy} in ${displayPath(input)}; executed copy: ${output}`);
      const f = outcome.failure;
      if (f) {
        opts.onEvent?.({ event: 'failed', notebook: input, index: f.index, codeIndex: f.codeIndex, executionCount: f.executionCount, error: f.error, source: f.source });
        throw new NotebookCellError(input, f.index + 1, f.codeIndex, f.error, f.source, output, f.interrupted, !!opts.echo);
      }
      opts.onEvent?.({ event: 'done', notebook: input, seconds: outcome.seconds });
      results.push({ notebook: input, output, seconds: outcome.seconds });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    fs.rmSync(jobDir, { recursive: true, force: true });
  }
  return results;
}
