/**
 * Atomic file and folder writes (write beside, then rename: a reader never sees half of one), JSON reads
 * whose errors name the file, file checksums, and the one rule for which folders the project may write
 * (run folders it created; never a folder of the user's). Shared by every stage that writes.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes JSON through a temporary file and a rename, so a reader never sees half a file. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  replaceFileAtomic(file, (tmp) => fs.writeFileSync(tmp, data));
}

/**
 * Lets `write` fill a temporary file beside `file`, then renames it over `file` (a writer that only
 * takes a path, such as polars' writeCSV/writeParquet). The temporary file is removed on failure.
 */
export function replaceFileAtomic(file: string, write: (tmp: string) => void): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    write(tmp);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw namedWriteError(file, e);
  }
}

const WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EISDIR', 'ENOTDIR', 'EACCES', 'EPERM']);

/** A write error that names the file it was for (ENOSPC alone names only the syscall); the old file is left as it was. */
function namedWriteError(target: string, e: unknown): unknown {
  const err = e as NodeJS.ErrnoException;
  if (!err?.code || !WRITE_ERRORS.has(err.code) || err.message.includes(target)) return e;
  const why = err.code === 'ENOSPC' ? 'the disk is full' : err.code === 'EISDIR' ? 'a folder is in the way' : err.code === 'EACCES' || err.code === 'EPERM' ? 'no permission' : err.code;
  return Object.assign(new Error(`${target}: cannot write (${why}: ${err.message}); the previous version, if any, is unchanged`, { cause: e }), { code: err.code });
}

/**
 * Lets `fill` write a temporary folder beside `dir`, then puts it in place of `dir` (any old folder
 * is renamed aside and removed after), so a reader sees the old folder or the new one, never half a
 * folder. The temporary folder is removed on failure.
 */
export async function replaceFolderAtomic(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    await fill(tmp);
    const old = `${dir}.old-${process.pid}`;
    if (fs.existsSync(dir)) fs.renameSync(dir, old);
    fs.renameSync(tmp, dir);
    fs.rmSync(old, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw namedWriteError(dir, e);
  }
}

/** Parses a JSON file; a missing or broken file is an error that names it. */
export function readJsonFile<T>(file: string, what = 'JSON'): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${file}: ${what} is not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Parses a JSON file that may not exist yet (a run stopped before writing it): null when it is
 * absent, and otherwise what readJsonFile gives - a file that is there but unreadable or not valid
 * JSON is an error naming it, never silently taken for absent (writes are atomic, so such a file is
 * damaged, not half-written).
 */
export function readJsonIfExists<T>(file: string, what = 'JSON'): T | null {
  if (!fs.existsSync(file)) return null;
  return readJsonFile<T>(file, what);
}

/** A JSON file's top-level object, or null when the file is absent; an array or scalar is an error naming the file. */
export function readJsonObjectIfExists(file: string, what = 'JSON object'): Record<string, unknown> | null {
  const j = readJsonIfExists<unknown>(file, what);
  if (j === null) return null;
  if (typeof j !== 'object' || Array.isArray(j)) throw new Error(`${file}: expected ${what}, got ${Array.isArray(j) ? 'an array' : typeof j}`);
  return j as Record<string, unknown>;
}

/** size and sha256 of a file: what a checksums file records, and what a reader compares. */
export function fileChecksum(file: string): { bytes: number; sha256: string } {
  const data = fs.readFileSync(file);
  return { bytes: data.byteLength, sha256: createHash('sha256').update(data).digest('hex') };
}

/** Checksums of the named files (paths relative to `dir`), as a checksums file holds them. */
export function checksumsOf(dir: string, files: string[]): Record<string, { bytes: number; sha256: string }> {
  return Object.fromEntries(files.map((f) => [f, fileChecksum(path.join(dir, f))]));
}

/**
 * Compares files with the checksums recorded for them (`recordedIn` names the file that holds them):
 * the first that is missing or changed is an error naming it, "weights.bin changed since it was saved".
 */
export function verifyChecksums(dir: string, expected: Record<string, { bytes?: number; sha256: string }>, recordedIn: string, when = 'it was saved'): void {
  for (const [name, want] of Object.entries(expected)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new Error(`${file}: missing (expected the file ${recordedIn} lists)`);
    const got = fileChecksum(file);
    const base = path.basename(name);
    if (want.bytes !== undefined && got.bytes !== want.bytes) {
      throw new Error(`${file}: ${base} changed since ${when} (${got.bytes} bytes, expected ${want.bytes} as recorded in ${recordedIn}); refusing to use it`);
    }
    if (got.sha256 !== want.sha256) {
      throw new Error(`${file}: ${base} changed since ${when} (sha256 ${got.sha256.slice(0, 12)}..., expected ${want.sha256.slice(0, 12)}... as recorded in ${recordedIn}); refusing to use it`);
    }
  }
}

/*
 * Which folders are the project's to write. A run folder carries RUN_MARKER, written when the
 * project creates it; runs made before the marker existed are recognised by a profile.json that
 * holds a resolved profile (name, data, model, train), and a published folder by published.json.
 * Anything else that exists and is not empty belongs to the user: the project writes nothing there.
 */

/** The file that marks a folder as a run the project created. */
export const RUN_MARKER = '.tl-workbench-run';

/** Writes the marker into a run folder the project has just created. */
export function markRunFolder(dir: string): void {
  const file = path.join(dir, RUN_MARKER);
  if (!fs.existsSync(file)) writeJsonAtomic(file, { createdBy: 'tl-workbench', created: new Date().toISOString() });
}

function holdsResolvedProfile(dir: string): boolean {
  try {
    const p = readJsonFile<Record<string, unknown>>(path.join(dir, 'profile.json'));
    const obj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    return obj(p) && typeof p.name === 'string' && obj(p.data) && obj(p.model) && obj(p.train);
  } catch {
    return false;
  }
}

/** Whether `dir` is a run folder of the project: the marker, a published folder, or (older runs) a resolved profile.json. */
export function isRunFolder(dir: string): boolean {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return false;
  return fs.existsSync(path.join(dir, RUN_MARKER)) || fs.existsSync(path.join(dir, 'published.json')) || holdsResolvedProfile(dir);
}

/** The run folder that holds `p` (p itself included), if any. */
export function enclosingRunFolder(p: string): string | undefined {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    if (isRunFolder(dir)) return dir;
    if (path.dirname(dir) === dir) return undefined;
  }
}

function listSome(dir: string): string {
  const names = fs.readdirSync(dir);
  return `${names.slice(0, 4).join(', ')}${names.length > 4 ? `, ... ${names.length} entries` : ''}`;
}

/**
 * A folder to train (or otherwise make a run) in: absent, empty, or a run folder of the project.
 * An existing folder of the user's is refused by name before anything is written.
 */
export function assertRunFolderTarget(dir: string, flag = '--run-dir'): void {
  if (!fs.existsSync(dir)) return;
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${flag} ${dir}: exists and is not a folder; expected a new folder or a run folder`);
  if (fs.readdirSync(dir).length === 0 || isRunFolder(dir)) return;
  throw new Error(
    `${flag} ${dir}: an existing folder that is not a run folder (no ${RUN_MARKER}, no run profile.json; it holds ${listSome(dir)}). ` +
      `Nothing was changed: the project writes only into new or empty folders and runs it created. Choose another folder.`,
  );
}

export interface OutTarget {
  /** The option, for messages (e.g. '--out'). */
  flag?: string;
  /** A file to write, or a folder to write files into. */
  kind: 'file' | 'folder';
  /** Paths inside a run folder (relative to it) that this command writes there itself, e.g. 'model.onnx'. */
  allowedInRun?: string[];
  /** The run those paths are allowed in (default: any run); another run's files stay refused. */
  ownRun?: string;
  /** For a folder: an existing non-empty folder this command may replace (e.g. one publish wrote). */
  replaceable?: (dir: string) => boolean;
  /** For a folder: files are written into it beside what it holds (compare's table.md); the folder is not replaced. */
  addsFiles?: boolean;
}

/**
 * Checks where an --out may write: never over a run's own files (profile.json, model/, ...), never
 * over a folder where a file was expected, and never in place of a folder the project did not write.
 */
export function assertOutTarget(out: string, t: OutTarget): void {
  const flag = t.flag ?? '--out';
  const target = path.resolve(out);
  const exists = fs.existsSync(target);
  if (t.kind === 'file' && exists && fs.statSync(target).isDirectory()) {
    throw new Error(`${flag} ${out}: is a folder; expected the path of a file to write (e.g. ${path.join(out, 'model.onnx')})`);
  }
  if (t.kind === 'folder' && exists && !fs.statSync(target).isDirectory()) throw new Error(`${flag} ${out}: exists and is not a folder; expected a folder to write into`);
  const run = enclosingRunFolder(t.kind === 'file' ? path.dirname(target) : target);
  if (run) {
    const rel = path.relative(run, target);
    const replacingPublished = t.kind === 'folder' && rel === '' && !!t.replaceable?.(target);
    const own = t.ownRun === undefined || path.resolve(t.ownRun) === run;
    if (!replacingPublished && !(own && (t.allowedInRun ?? []).includes(rel))) {
      throw new Error(
        `${flag} ${out}: ${rel ? `inside the run folder ${run} (its own files)` : `is the run folder ${run} itself`}; ` +
          `a run's files are never replaced by an --out: write outside the run folder.`,
      );
    }
  }
  if (t.kind === 'folder' && exists && !t.addsFiles && fs.readdirSync(target).length > 0 && !t.replaceable?.(target)) {
    throw new Error(`${flag} ${out}: a folder with other files (${listSome(target)}) that this command did not write; it replaces only its own folders - choose an empty or new folder`);
  }
}
