/**
 * Access to h5wasm (HDF5 compiled to WebAssembly) from this CommonJS build, plus the two checks
 * HDF5 itself only reports on stderr: "is this HDF5 at all" and "is the file complete".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

export type H5Module = typeof import('h5wasm');

// h5wasm is an ES module only ("exports" has no "require" condition). TypeScript's commonjs output
// turns import() into require(), so the real dynamic import is kept out of its sight.
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

let loaded: Promise<H5Module> | undefined;

/** Loads h5wasm's Node build once and waits until its WebAssembly module is ready. */
export function h5wasm(): Promise<H5Module> {
  if (!loaded) {
    loaded = (async () => {
      const candidates = (require.resolve.paths('h5wasm') ?? []).map((dir) => path.join(dir, 'h5wasm', 'dist', 'node', 'hdf5_hl.js'));
      const entry = candidates.find((f) => fs.existsSync(f));
      if (!entry) throw new Error(`h5wasm is not installed (looked for ${candidates[0]}); run npm install`);
      const mod = (await importEsm(pathToFileURL(entry).href)) as H5Module;
      await mod.ready;
      return mod;
    })();
  }
  return loaded;
}

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Checks the HDF5 superblock before h5wasm opens the file: the signature (at 0, 512, 1024, ...) and
 * the end-of-file address it records against the real size, so a non-HDF5 or truncated file fails
 * with a message naming it.
 */
export function checkHdf5File(file: string): void {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r');
  try {
    for (let base = 0; base + 8 <= size; base = base === 0 ? 512 : base * 2) {
      const head = Buffer.alloc(96);
      const n = fs.readSync(fd, head, 0, head.length, base);
      if (n < 8 || !head.subarray(0, 8).equals(SIGNATURE)) continue;
      const version = head[8];
      let eofAt: number;
      let offsetSize: number;
      if (version === 0 || version === 1) {
        offsetSize = head[13];
        eofAt = (version === 0 ? 24 : 28) + 2 * offsetSize;
      } else {
        offsetSize = head[9];
        eofAt = 12 + 2 * offsetSize;
      }
      if (n >= eofAt + offsetSize && (offsetSize === 8 || offsetSize === 4)) {
        const eof = offsetSize === 8 ? Number(head.readBigUInt64LE(eofAt)) : head.readUInt32LE(eofAt);
        if (eof > size - base) {
          throw new Error(`${file}: truncated HDF5 file (${size} bytes, its superblock says ${eof + base}); download it again`);
        }
      }
      return;
    }
  } finally {
    fs.closeSync(fd);
  }
  throw new Error(`${file}: not an HDF5 file (no HDF5 signature; expected a Keras .h5 weights file)`);
}
