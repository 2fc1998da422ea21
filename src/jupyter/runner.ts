/**
 * Headless notebook runner: executes notebooks in order, each in a fresh tslab kernel, through
 * nbclient (src/jupyter/execute_notebooks.py under the Python that has Jupyter), writes the
 * executed copies into an output folder and stops at the first failing cell with an error that
 * names the notebook, the cell and what the cell printed on stderr.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { paths, projectRoot } from '../config';
import { ensureKernel, jupyterEnv } from './kernel';

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
  ) {
    super(
      `${displayPath(notebook)}: cell ${cellNumber} (code cell ${codeCellNumber}) failed:\n` +
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
 * Executes the notebooks in order (each kernel's working folder is the notebook's own folder, so
 * `import * as wb from "../dist/src"` resolves), writing executed copies into opts.outDir.
 * Throws NotebookCellError at the first failing cell; the notebooks after it are not run.
 */
export async function runNotebooks(notebooks: string[], opts: RunNotebooksOptions): Promise<NotebookResult[]> {
  for (const nb of notebooks) if (!fs.existsSync(nb)) throw new Error(`${nb}: no such notebook`);
  const { python } = ensureKernel({ quiet: true });
  const outDir = path.resolve(opts.outDir);
  fs.mkdirSync(outDir, { recursive: true });
  const specs = notebooks.map((nb) => ({
    input: path.resolve(nb),
    output: path.join(outDir, path.basename(nb)),
    cwd: path.dirname(path.resolve(nb)),
  }));
  removeStaleJobDirs();
  const jobDir = fs.mkdtempSync(path.join(os.tmpdir(), JOB_DIR_PREFIX));
  const jobFile = path.join(jobDir, 'job.json');
  fs.writeFileSync(
    jobFile,
    JSON.stringify({
      pid: process.pid,
      notebooks: specs,
      timeout: opts.timeoutSeconds === undefined ? cellTimeout() : opts.timeoutSeconds,
      startupTimeout: opts.startupTimeoutSeconds ?? 120,
      kernel: 'tslab',
      echo: !!opts.echo,
    }),
  );
  const driver = path.join(projectRoot, 'src', 'jupyter', 'execute_notebooks.py');
  const results: NotebookResult[] = [];
  let failure: NotebookCellError | undefined;
  let stderrTail = '';
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(python, [driver, jobFile], {
        env: jupyterEnv({ PYTHONUNBUFFERED: '1', ...opts.env }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let pending = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        pending += chunk;
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (!line.trim()) continue;
          let e: RunnerEvent;
          try {
            e = JSON.parse(line) as RunnerEvent;
          } catch {
            continue; // not one of ours (a library printing to stdout)
          }
          opts.onEvent?.(e);
          const spec = specs.find((s) => s.input === e.notebook);
          if (e.event === 'done' && spec) results.push({ notebook: spec.input, output: spec.output, seconds: e.seconds });
          if (e.event === 'failed' && spec) {
            failure = new NotebookCellError(spec.input, e.index + 1, e.codeIndex, e.error, e.source, spec.output);
          }
        }
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        if (opts.echo) process.stderr.write(chunk);
        stderrTail = (stderrTail + chunk).slice(-8000);
      });
      // A terminal's Ctrl-C reaches the whole process group; a SIGTERM sent to us alone is passed
      // on, so the driver shuts its kernel down instead of leaving it running.
      const forward = (sig: NodeJS.Signals) => {
        child.kill(sig);
        process.exitCode = 128 + (sig === 'SIGINT' ? 2 : 15);
      };
      process.on('SIGTERM', forward);
      process.on('SIGINT', forward);
      const detach = () => {
        process.off('SIGTERM', forward);
        process.off('SIGINT', forward);
      };
      child.on('error', (e) => (detach(), reject(e)));
      child.on('close', (code) => (detach(), resolve(code)));
    });
    if (failure) throw failure;
    if (code !== 0) {
      throw new Error(`the notebook driver (${python} ${displayPath(driver)}) failed with exit ${code}:\n${stderrTail.trim()}`);
    }
  } finally {
    fs.rmSync(jobDir, { recursive: true, force: true });
  }
  return results;
}
