/**
 * Trusted run notebooks (issue 29): Jupyter shows the HTML outputs of a notebook only when it is
 * signed for this user (nbformat's NotebookNotary: an HMAC-SHA256 of the notebook under the key in
 * the Jupyter data folder, kept in its nbsignatures.db), else it sanitises them (the sample grids
 * collapse). The project signs what it executed itself, as `jupyter trust` does: the runner when a
 * Python with Jupyter is there, and `npm run notebook` for the run it opens (a run made without
 * Python is trusted once opened).
 *
 * Never a notebook the project did not execute: the runner records a digest of each executed copy
 * it writes (<dir>/.tlwb-executed.json), and only a file whose content is still that digest is
 * signed. A copy the user edited and saved is theirs to trust (Jupyter signs what it saves itself).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeJsonAtomic } from '../fsutil';
import { jupyterEnv } from './kernel';

export const EXECUTED_RECORD = '.tlwb-executed.json';

function digest(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function readRecord(dir: string): Record<string, string> {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(dir, EXECUTED_RECORD), 'utf8')) as unknown;
    return r && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** Notes that the project has just written this executed copy (its exact content). */
export function recordExecuted(file: string): void {
  const dir = path.dirname(file);
  writeJsonAtomic(path.join(dir, EXECUTED_RECORD), { ...readRecord(dir), [path.basename(file)]: digest(file) });
}

/** The notebooks of dir that the project executed and nobody changed since. */
export function executedUnchanged(dir: string): string[] {
  return Object.entries(readRecord(dir))
    .map(([name, sha]) => ({ file: path.join(dir, path.basename(name)), sha }))
    .filter(({ file, sha }) => fs.existsSync(file) && digest(file) === sha)
    .map(({ file }) => file)
    .sort();
}

// `jupyter trust <files>` as a script: it reports which were signed and which already were.
const SIGN = `
import json, sys
from nbformat import read, NO_CONVERT
from nbformat.sign import NotebookNotary
notary = NotebookNotary()
result = {"signed": [], "already": [], "db": notary.db_file}
for path in sys.argv[1:]:
    with open(path, encoding="utf8") as f:
        nb = read(f, NO_CONVERT)
    if notary.check_signature(nb):
        result["already"].append(path)
    else:
        notary.sign(nb)
        result["signed"].append(path)
print(json.dumps(result))
`;

export interface TrustResult {
  signed: string[];
  already: string[];
  /** nbformat's signature database the signatures went to. */
  db: string;
}

/**
 * Signs the notebooks for the user's Jupyter (the data folder the project's server uses: the same
 * environment, jupyterEnv()). Throws with Python's message when it fails.
 */
export function signNotebooks(files: string[], python: string, env: NodeJS.ProcessEnv = jupyterEnv()): TrustResult {
  if (files.length === 0) return { signed: [], already: [], db: '' };
  const r = spawnSync(python, ['-c', SIGN, ...files], { encoding: 'utf8', env, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`signing notebooks with ${python} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TrustResult;
}

/** Signs the executed, unchanged notebooks of a folder (a run's notebooks/). */
export function trustExecutedNotebooks(dir: string, python: string, env?: NodeJS.ProcessEnv): TrustResult {
  return signNotebooks(executedUnchanged(dir), python, env);
}
