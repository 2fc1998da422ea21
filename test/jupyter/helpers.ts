/** Writes small tslab notebooks for the runner tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type CellSpec = string | { markdown: string };

export function writeNotebook(file: string, cells: CellSpec[]): string {
  const nb = {
    nbformat: 4,
    nbformat_minor: 4,
    metadata: {
      kernelspec: { name: 'tslab', display_name: 'TypeScript', language: 'typescript' },
      language_info: { name: 'typescript' },
    },
    cells: cells.map((c) =>
      typeof c === 'string'
        ? { cell_type: 'code', metadata: {}, execution_count: null, outputs: [], source: c }
        : { cell_type: 'markdown', metadata: {}, source: c.markdown },
    ),
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(nb, null, 1));
  return file;
}

export interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

export function readCells(file: string): { cell_type: string; execution_count?: number | null; outputs?: Output[] }[] {
  return JSON.parse(fs.readFileSync(file, 'utf8')).cells;
}

export function streamText(outputs: Output[] = [], name = 'stdout'): string {
  return outputs
    .filter((o) => o.output_type === 'stream' && o.name === name)
    .map((o) => (Array.isArray(o.text) ? o.text.join('') : o.text ?? ''))
    .join('');
}

/** The compiled library as an absolute import path (the tests' notebooks live in temp folders). */
export const distSrc = path.resolve(__dirname, '..', '..', 'src');
