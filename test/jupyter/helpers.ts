/** Writes small tslab notebooks for the runner tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv04 from 'ajv-draft-04';
import type { ValidateFunction } from 'ajv';

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

/** nbformat's published v4 schemas (test/jupyter/fixtures/nbformat, from nbformat 5.5.0). */
const schemaDir = path.resolve(__dirname, '..', '..', '..', 'test', 'jupyter', 'fixtures', 'nbformat');
const validators = new Map<number, ValidateFunction>();

/**
 * Problems of a notebook file against nbformat's schema for its own minor version, as
 * nbformat.validate checks it (4.4 and 4.5, the versions the project writes); [] when it is valid.
 */
export function notebookSchemaErrors(file: string): string[] {
  const nb = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (nb.nbformat !== 4 || ![4, 5].includes(nb.nbformat_minor)) return [`${file}: nbformat ${nb.nbformat}.${nb.nbformat_minor}, expected 4.4 or 4.5`];
  let validate = validators.get(nb.nbformat_minor);
  if (!validate) {
    // nbformat's schemas are JSON Schema draft 4.
    const schema = JSON.parse(fs.readFileSync(path.join(schemaDir, `nbformat.v4.${nb.nbformat_minor}.schema.json`), 'utf8'));
    validate = new Ajv04({ allErrors: true, strict: false }).compile(schema);
    validators.set(nb.nbformat_minor, validate);
  }
  return validate(nb) ? [] : (validate.errors ?? []).map((e) => `${file}: ${e.instancePath || '/'} ${e.message}`);
}
