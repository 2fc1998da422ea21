/**
 * Archive extraction with the `tar` package. Extraction goes into a temporary sibling folder that is
 * renamed into place only when complete, so a crash or a corrupt archive never leaves a folder
 * that a later run would take for finished.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tar from 'tar';

/**
 * Extracts a .tar.gz (or .tar) into `dest`, which must not exist yet. Returns `dest`.
 * Errors name the archive; the half-written temporary folder is removed.
 */
export async function extractTarGz(archive: string, dest: string): Promise<string> {
  if (!fs.existsSync(archive)) throw new Error(`${archive}: no such archive`);
  if (fs.existsSync(dest)) throw new Error(`${dest}: already exists; extraction needs an empty destination`);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.extracting-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    // strict: every warning (bad header, truncated data, zlib error) is an error.
    await tar.x({ file: archive, cwd: tmp, strict: true });
    if (fs.readdirSync(tmp).length === 0) throw new Error('no entries');
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`${archive}: cannot extract (${(e as Error).message}); the archive is corrupt or truncated`, { cause: e });
  }
  return dest;
}
