/**
 * Executes one notebook in a fresh tslab kernel, cell by cell, as nbclient does: the cells' outputs
 * collected from iopub into nbformat 4 (consecutive stream outputs of one name merged, as Jupyter's
 * frontends save them; display_data updated in place by display id; clear_output), execution
 * counts, and nbclient's timing record in each cell's metadata.execution. Stops at the first
 * failing cell (tslab cancels the cells queued after an error anyway); the executed copy, partial
 * on failure, is written either way.
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil';
import { KernelClient, KernelMessage } from './kernel-client';
import { Cell, joinText, Notebook, notebookJson, Output, outputFromMessage, readNotebook } from './notebook-format';

export interface CellFailure {
  /** 0-based index among all cells. */
  index: number;
  /** 1-based position among the code cells. */
  codeIndex: number;
  executionCount: number | null;
  /** What went wrong, as the user reads it under the cell (stack frames of tslab itself left out). */
  error: string;
  source: string;
  /** True when the kernel was interrupted while this cell ran (Ctrl-C, Kernel -> Interrupt). */
  interrupted: boolean;
}

export interface ExecuteNotebookOptions {
  input: string;
  output: string;
  /** The kernel's working folder. Default: the input's folder. */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Seconds per cell; null = no limit. */
  timeoutSeconds: number | null;
  startupTimeoutSeconds?: number;
  /** Folder for the kernel's connection file. */
  runtimeDir: string;
  /** Relay what the cells print (streams, and the new lines of live text displays) to stderr. */
  echo?: boolean;
  onCell?: (index: number, seconds: number) => void;
  /** Told the running kernel once it is up, and null when it is gone (to interrupt it). */
  onKernel?: (kernel: KernelClient | null) => void;
}

// eslint-disable-next-line no-control-regex -- ANSI colour codes start with ESC
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
/** Stack frames of the kernel's own machinery: noise under a notebook error. */
const KERNEL_FRAMES = /^\s+at .*(node:vm|node:internal|[/\\]tslab[/\\]dist[/\\]|sigintHandlersWrap).*$\n?/gm;

/** The error text of a failed cell: its stderr and error outputs, as the Python runner reported them. */
export function cellErrorText(cell: Cell): string {
  const parts: string[] = [];
  for (const o of cell.outputs ?? []) {
    if (o.output_type === 'stream' && o.name === 'stderr') parts.push(joinText(o.text));
    else if (o.output_type === 'error') parts.push(o.traceback.length ? o.traceback.join('\n') : [o.ename, o.evalue].filter(Boolean).join(': '));
  }
  return parts.join('').replace(ANSI, '').replace(KERNEL_FRAMES, '').trim();
}

/** nbclient's timestamp: the message's date with microseconds. */
function timestamp(msg: KernelMessage): string {
  const d = new Date(msg.header.date);
  return Number.isNaN(d.getTime()) ? msg.header.date : `${d.toISOString().slice(0, 23)}000Z`;
}

/** Output bookkeeping across the notebook: display ids can be updated from later cells. */
class Outputs {
  /** display id -> the outputs (cell index, output index) showing it. */
  private readonly displays = new Map<string, Map<number, number[]>>();
  private clearBeforeNext = false;
  private readonly relayed = new Map<string, Set<string>>();

  constructor(
    private readonly nb: Notebook,
    private readonly echo: boolean,
  ) {}

  start(): void {
    this.clearBeforeNext = false;
  }

  handle(msg: KernelMessage, cell: Cell, cellIndex: number): void {
    const type = msg.header.msg_type;
    const content = msg.content;
    const displayId = (content.transient as { display_id?: string } | undefined)?.display_id;
    if (this.echo) this.relay(msg, displayId);
    if (displayId && (type === 'display_data' || type === 'update_display_data' || type === 'execute_result')) this.updateDisplay(displayId, msg);
    if (typeof content.execution_count === 'number') cell.execution_count = content.execution_count;
    const timing = cell.metadata.execution;
    if (timing && type === 'status') {
      if (content.execution_state === 'busy') timing['iopub.status.busy'] = timestamp(msg);
      else if (content.execution_state === 'idle') timing['iopub.status.idle'] = timestamp(msg);
    } else if (timing && type === 'execute_input') {
      timing['iopub.execute_input'] = timestamp(msg);
    }
    if (type === 'clear_output') {
      if (content.wait) this.clearBeforeNext = true;
      else this.clear(cell, cellIndex);
      return;
    }
    if (type === 'update_display_data') return;
    const out = outputFromMessage(msg);
    if (!out) return;
    const outs = (cell.outputs ??= []);
    if (this.clearBeforeNext) {
      this.clear(cell, cellIndex);
      this.clearBeforeNext = false;
    }
    const last = outs[outs.length - 1];
    if (out.output_type === 'stream' && last?.output_type === 'stream' && last.name === out.name) {
      last.text = joinText(last.text) + joinText(out.text);
      return;
    }
    if (displayId) {
      const cells = this.displays.get(displayId) ?? new Map<number, number[]>();
      this.displays.set(displayId, cells);
      cells.set(cellIndex, [...(cells.get(cellIndex) ?? []), outs.length]);
    }
    outs.push(out);
  }

  private clear(cell: Cell, cellIndex: number): void {
    cell.outputs = [];
    for (const cells of this.displays.values()) if (cells.has(cellIndex)) cells.set(cellIndex, []);
  }

  private updateDisplay(displayId: string, msg: KernelMessage): void {
    const cells = this.displays.get(displayId);
    if (!cells) return;
    const out = outputFromMessage({ ...msg, header: { ...msg.header, msg_type: 'display_data' } }) as Extract<Output, { output_type: 'display_data' }>;
    for (const [cellIndex, indices] of cells) {
      const outs = this.nb.cells[cellIndex].outputs ?? [];
      for (const i of indices) {
        const o = outs[i];
        if (o && (o.output_type === 'display_data' || o.output_type === 'execute_result')) {
          o.data = out.data;
          o.metadata = out.metadata;
        }
      }
    }
  }

  /**
   * Streams as they are; of a live display (training progress is one display, updated in place:
   * its first line, the status, changes every batch and is skipped) the new lines, each once.
   */
  private relay(msg: KernelMessage, displayId: string | undefined): void {
    const type = msg.header.msg_type;
    if (type === 'stream') {
      process.stderr.write(String(msg.content.text ?? ''));
      return;
    }
    if (!displayId || (type !== 'display_data' && type !== 'update_display_data')) return;
    const text = joinText((msg.content.data as Record<string, string | string[]> | undefined)?.['text/plain']);
    if (!text.includes('\n')) return;
    const seen = this.relayed.get(displayId) ?? new Set<string>();
    this.relayed.set(displayId, seen);
    const fresh = text
      .split('\n')
      .slice(1)
      .filter((line) => line.trim() && !seen.has(line) && seen.add(line));
    if (fresh.length) process.stderr.write(`${fresh.join('\n')}\n`);
  }
}

export interface NotebookOutcome {
  seconds: number;
  failure?: CellFailure;
}

/** Runs the notebook's code cells in order in a fresh kernel and writes the executed copy. */
export async function executeNotebook(opts: ExecuteNotebookOptions): Promise<NotebookOutcome> {
  const nb = readNotebook(opts.input);
  const began = Date.now();
  const kernel = await KernelClient.start({
    cwd: opts.cwd ?? path.dirname(path.resolve(opts.input)),
    env: opts.env,
    runtimeDir: opts.runtimeDir,
    startupTimeoutSeconds: opts.startupTimeoutSeconds,
    onProcessOutput: opts.echo ? (text) => process.stderr.write(text) : undefined,
  });
  let interrupted = false;
  const interrupt = kernel.interrupt.bind(kernel);
  kernel.interrupt = async () => {
    interrupted = true;
    await interrupt();
  };
  opts.onKernel?.(kernel);
  const outputs = new Outputs(nb, !!opts.echo);
  let failure: CellFailure | undefined;
  let codeIndex = 0;
  try {
    for (const [index, cell] of nb.cells.entries()) {
      if (cell.cell_type !== 'code') continue;
      codeIndex++;
      const source = joinText(cell.source);
      if (!source.trim()) continue; // nbclient skips empty cells, outputs untouched
      cell.metadata.execution = {};
      cell.outputs = [];
      cell.execution_count = null;
      outputs.start();
      const t0 = Date.now();
      const result = await kernel.execute(source, (msg) => outputs.handle(msg, cell, index), opts.timeoutSeconds);
      if (result.reply) {
        cell.metadata.execution['shell.execute_reply'] = timestamp(result.reply);
        const count = result.reply.content.execution_count;
        // tslab sends no execute_input, so the count comes with the reply.
        if (cell.execution_count == null && typeof count === 'number') cell.execution_count = count;
      }
      const status = result.reply?.content.status;
      if (status === 'ok') {
        opts.onCell?.(index, (Date.now() - t0) / 1000);
        continue;
      }
      let error = cellErrorText(cell);
      if (result.timedOut) error = `timed out after ${opts.timeoutSeconds} s (set --timeout or TLWB_CELL_TIMEOUT)\n${error}`;
      else if (result.died) error = `the kernel died (${result.died})\n${error}\n${kernel.processOutputTail.trim()}`.trim();
      else if (!error) {
        const c = result.reply?.content ?? {};
        error = [c.ename, c.evalue].filter(Boolean).join(': ') || `the kernel reported ${status === 'abort' ? 'the cell aborted' : 'an error with no message'} (see the executed notebook)`;
      }
      failure = { index, codeIndex, executionCount: cell.execution_count ?? null, error: error.trim(), source, interrupted };
      break;
    }
  } finally {
    opts.onKernel?.(null);
    await kernel.shutdown(failure ? 1 : 5);
  }
  writeFileAtomic(opts.output, notebookJson(nb));
  return { seconds: (Date.now() - began) / 1000, failure };
}
