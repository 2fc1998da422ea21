import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

// Backend choice is made once per process, so each case runs in a child process of its own.
const backendModule = path.resolve(__dirname, '../../src/backend/index.js');

function choose(env: Record<string, string | undefined>): { status: number | null; stdout: string; stderr: string } {
  const script = `require(${JSON.stringify(backendModule)}).initBackend().then(
    (i) => console.log(JSON.stringify({ choice: i.choice, tfName: i.tfName, skipped: i.skipped })),
    (e) => { console.error(e.message); process.exit(3); })`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Whether the package loads for real (installed with its native library), tried in a child process. */
function loads(name: string): boolean {
  return spawnSync(process.execPath, ['-e', `require(${JSON.stringify(name)})`], { stdio: 'ignore', timeout: 60_000 }).status === 0;
}

test('auto picks the fastest backend that loads and says once why the faster ones were skipped', (t) => {
  if (loads('@tensorflow/tfjs-node')) return t.skip('tfjs-node loads here, so the fallback path is not taken');
  // Without install scripts (the project's .npmrc) the packages are present but lack libtensorflow;
  // elsewhere npm may have dropped them.
  const reason = fsExists('@tensorflow/tfjs-node')
    ? 'no native library (npm ran no install script: README, Backends)'
    : 'not installed';
  const r = choose({ TLWB_BACKEND: undefined, TLWB_WASM_THREADS: undefined });
  const threads = os.cpus().length > 1 ? `, ${os.cpus().length} threads` : '';
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], `backend: wasm (tf 'wasm'${threads}) - skipped node-gpu, node: ${reason}`);
  const info = JSON.parse(lines[1]);
  assert.equal(info.choice, 'wasm');
  assert.deepEqual(info.skipped.map((s: { choice: string }) => s.choice), ['node-gpu', 'node']);
});

function fsExists(name: string): boolean {
  try {
    require.resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

test('TLWB_BACKEND forces one backend', () => {
  const r = choose({ TLWB_BACKEND: 'cpu' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^backend: cpu \(tf 'cpu'\)\n/);
});

test('an unknown TLWB_BACKEND is an error naming the variable and the choices', () => {
  const r = choose({ TLWB_BACKEND: 'tpu' });
  assert.equal(r.status, 3);
  assert.match(r.stderr, /TLWB_BACKEND: unknown backend 'tpu'; expected one of node-gpu, node, wasm, cpu or auto/);
});

test('TLWB_WASM_THREADS=1 keeps the single-threaded binary', () => {
  const r = choose({ TLWB_BACKEND: 'wasm', TLWB_WASM_THREADS: '1' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^backend: wasm \(tf 'wasm'\)\n/);
});

test('TLWB_WASM_THREADS starts the threaded wasm binary and the line says so', () => {
  const r = choose({ TLWB_BACKEND: 'wasm', TLWB_WASM_THREADS: '2' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^backend: wasm \(tf 'wasm', 2 threads\)\n/);
  assert.equal(choose({ TLWB_BACKEND: 'wasm', TLWB_WASM_THREADS: 'two' }).status, 3);
});
