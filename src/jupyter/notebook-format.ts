/**
 * Notebooks (nbformat 4) as nbclient reads and writes them: the cell outputs made from kernel
 * messages (nbformat.v4.output_from_msg), and the file written as nbformat.write does (keys
 * sorted, one-space indent, multi-line strings split into lines, a final newline).
 */
import type { KernelMessage } from './kernel-client';
import { readJsonFile } from '../fsutil';

export type MimeBundle = Record<string, unknown>;

export type Output =
  | { output_type: 'stream'; name: string; text: string | string[] }
  | { output_type: 'display_data'; data: MimeBundle; metadata: Record<string, unknown> }
  | { output_type: 'execute_result'; data: MimeBundle; metadata: Record<string, unknown>; execution_count: number | null }
  | { output_type: 'error'; ename: string; evalue: string; traceback: string[] };

export interface Cell {
  cell_type: string;
  id?: string;
  source: string | string[];
  metadata: Record<string, unknown> & { execution?: Record<string, string> };
  outputs?: Output[];
  execution_count?: number | null;
  attachments?: unknown;
}

export interface Notebook {
  nbformat: number;
  nbformat_minor: number;
  metadata: Record<string, unknown>;
  cells: Cell[];
}

/** A notebook file, read as nbformat.read does for version 4 (names the file and what is wrong). */
export function readNotebook(file: string): Notebook {
  const nb = readJsonFile<Notebook>(file, 'a notebook (.ipynb)');
  if (!nb || typeof nb !== 'object' || nb.nbformat !== 4) throw new Error(`${file}: expected an nbformat 4 notebook, got nbformat ${JSON.stringify(nb?.nbformat)}`);
  if (!Array.isArray(nb.cells)) throw new Error(`${file}: "cells" must be a list`);
  nb.metadata ??= {};
  nb.cells.forEach((c, i) => {
    if (typeof c?.cell_type !== 'string') throw new Error(`${file}: cell ${i + 1} has no cell_type`);
    c.metadata ??= {};
  });
  return nb;
}

export function joinText(text: string | string[] | undefined): string {
  return Array.isArray(text) ? text.join('') : (text ?? '');
}

/** The output a kernel message makes, or null for messages that are not outputs (nbformat's output_from_msg). */
export function outputFromMessage(msg: KernelMessage): Output | null {
  const c = msg.content as Record<string, never>;
  switch (msg.header.msg_type) {
    case 'stream':
      return { output_type: 'stream', name: c.name, text: c.text };
    case 'display_data':
    case 'update_display_data':
      return { output_type: 'display_data', data: c.data ?? {}, metadata: c.metadata ?? {} };
    case 'execute_result':
      return { output_type: 'execute_result', data: c.data ?? {}, metadata: c.metadata ?? {}, execution_count: c.execution_count ?? null };
    case 'error':
      return { output_type: 'error', ename: c.ename ?? '', evalue: c.evalue ?? '', traceback: c.traceback ?? [] };
    default:
      return null;
  }
}

/** Python's str.splitlines(keepends=True), which nbformat uses to split multi-line strings. */
// eslint-disable-next-line no-control-regex -- Python's line boundaries include control characters
const LINE = /[^\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]*(?:\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]|$)/gu;
export function splitLines(text: string): string[] {
  return (text.match(LINE) ?? []).filter((l) => l !== '');
}

/** JSON mime types stay objects; every other string in a bundle is split into lines. */
function isJsonMime(key: string): boolean {
  return key === 'application/json' || (key.startsWith('application/') && key.endsWith('+json'));
}

function splitBundle(bundle: MimeBundle): MimeBundle {
  return Object.fromEntries(Object.entries(bundle).map(([k, v]) => [k, typeof v === 'string' && !isJsonMime(k) ? splitLines(v) : v]));
}

/** nbformat's split_lines, applied to a copy. */
function splitNotebookLines(nb: Notebook): Notebook {
  const cells = nb.cells.map((cell) => {
    const c: Cell = { ...cell };
    if (typeof c.source === 'string') c.source = splitLines(c.source);
    if (c.outputs) {
      c.outputs = c.outputs.map((o) => {
        if (o.output_type === 'stream' && typeof o.text === 'string') return { ...o, text: splitLines(o.text) };
        if (o.output_type === 'display_data' || o.output_type === 'execute_result') return { ...o, data: splitBundle(o.data) };
        return o;
      });
    }
    return c;
  });
  return { ...nb, cells };
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** The text nbformat.write writes for a notebook. */
export function notebookJson(nb: Notebook): string {
  return `${JSON.stringify(sortKeys(splitNotebookLines(nb)), null, 1)}\n`;
}
