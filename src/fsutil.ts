/**
 * Atomic file and folder writes (write beside, then rename: a reader never sees half of one) and JSON reads
 * whose errors name the file. Shared by every stage that writes into a run folder or a cache.
 */
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
    throw e;
  }
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
    throw e;
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
