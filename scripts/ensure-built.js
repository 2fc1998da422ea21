#!/usr/bin/env node
/**
 * Runs the TypeScript build only when a source is newer than the last build, so that
 * `npm run -s cli -- --help` answers at once on a built tree while nothing ever runs stale code.
 * Plain JavaScript: it must run before anything is compiled.
 *   node scripts/ensure-built.js          (build when stale)
 *   node scripts/ensure-built.js --force  (`npm run build`: always)
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const stamp = path.join(root, 'dist', '.build-stamp');
const SOURCES = ['src', 'test', 'bench'];
const FILES = ['tsconfig.json', 'package.json', 'package-lock.json'];

/** The newest modification time under the compiled folders (TypeScript and JSON the build reads). */
function newestSource() {
  let newest = 0;
  const visit = (p) => {
    let st;
    try {
      st = fs.statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    } else if (/\.(ts|json)$/.test(p)) {
      newest = Math.max(newest, st.mtimeMs);
    }
  };
  for (const d of SOURCES) visit(path.join(root, d));
  for (const f of FILES) visit(path.join(root, f));
  return newest;
}

function builtAt() {
  try {
    return fs.statSync(stamp).mtimeMs;
  } catch {
    return -1;
  }
}

if (process.argv.includes('--force') || builtAt() < newestSource() || !fs.existsSync(path.join(root, 'dist', 'src', 'cli.js'))) {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) process.exit(r.status ?? 1);
  fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
}
