/**
 * Runs tfjs-backend-wasm's threaded SIMD binary under Node (XNNPACK's thread pool on emscripten
 * pthreads = worker_threads). tfjs turns threads off under Node (WASM_HAS_MULTITHREAD_SUPPORT is
 * false there, tfjs issue 3830) because its loader hands the pthread workers Blob URLs, which Node's
 * Worker cannot open. This writes the worker script to a file, hands the workers a file path instead,
 * and gives them the bundle's module-scope names the threaded factory expects.
 *
 * A second obstacle: the binary caps its pool at emscripten_num_logical_cores() / 2 ("x86 has two
 * hyperthreads per core"), which is 1 on a 2-core machine; os.cpus() (what that call reads under
 * Node) is widened while the module starts.
 *
 * Call initWasmThreaded() before anything else initialises the wasm backend.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

let enabled: number | undefined;
const poolWorkers: import('worker_threads').Worker[] = [];

function workerContents(): string {
  const bundle = require.resolve('@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.node.js');
  const text = fs.readFileSync(bundle, 'utf8');
  const match = /var wasmWorkerContents = ("(?:[^"\\]|\\.)*");/.exec(text);
  if (!match) throw new Error(`${bundle}: no wasmWorkerContents (tfjs-backend-wasm changed its bundle layout)`);
  // As tfjs does before making its Blob: the script has newlines inside string literals.
  return (JSON.parse(match[1]) as string).replace(/\n/g, "\\n");
}

function workerFileFor(pid: number): string {
  return path.join(os.tmpdir(), `tlwb-wasm-pthread-worker-${pid}.js`);
}

/** Node-side shim prepended to emscripten's pthread worker script. */
const WORKER_SHIM = `(() => {
const { parentPort } = require('worker_threads');
const fs = require('fs'), path = require('path'), os = require('os');
Object.assign(globalThis, { require$$0: fs, require$$1: path, require$$3: require('perf_hooks'), require$$4: os, commonjsGlobal: globalThis });
// Messages in order; the 'load' message carries the main script as a Blob, which importScripts
// (fs.readFileSync) cannot open: write it to a file first.
const onMessage = parentPort.on.bind(parentPort);
parentPort.on = (event, handler) => {
  if (event !== 'message') return onMessage(event, handler);
  let chain = Promise.resolve();
  return onMessage('message', (data) => {
    chain = chain.then(async () => {
      if (data && data.cmd === 'load' && data.urlOrBlob && typeof data.urlOrBlob !== 'string') {
        const file = path.join(os.tmpdir(), 'tlwb-wasm-threaded-main-' + process.pid + '-' + Math.random().toString(36).slice(2) + '.js');
        fs.writeFileSync(file, await data.urlOrBlob.text());
        data.urlOrBlob = file;
        try { handler(data); } finally { fs.rmSync(file, { force: true }); } // importScripts read it synchronously
        return;
      }
      handler(data);
    }).catch((e) => { process.stderr.write('wasm pthread worker: ' + (e && e.stack || e) + '\\n'); });
  });
};
})();
`;

/**
 * Switches the wasm backend to its threaded binary with `threads` threads. Returns false (and changes
 * nothing) when the backend is already initialised or SharedArrayBuffer is missing.
 */
export function enableWasmThreads(threads = os.cpus().length): boolean {
  if (enabled !== undefined) return enabled === threads;
  if (typeof SharedArrayBuffer === 'undefined') return false;
  const wasm = require('@tensorflow/tfjs-backend-wasm') as { setThreadsCount(n: number): void };
  if (tf.findBackend('wasm') && (tf.engine() as unknown as { registry: Record<string, unknown> }).registry.wasm) return false;
  const workerFile = workerFileFor(process.pid);
  fs.writeFileSync(workerFile, WORKER_SHIM + workerContents());
  const createObjectURL = URL.createObjectURL;
  // The loader asks for an object URL of the worker script; Node workers need a file.
  URL.createObjectURL = (obj: Blob) => ((obj as Blob).type === 'application/javascript' ? workerFile : createObjectURL(obj));
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  enabled = threads;
  return true;
}

/**
 * Initialises the wasm backend with its threaded binary and `threads` XNNPACK threads, and makes it the
 * current backend. Returns the thread count XNNPACK reports (1 when threads could not be enabled).
 */
export async function initWasmThreaded(threads = os.cpus().length): Promise<number> {
  const wasm = require('@tensorflow/tfjs-backend-wasm') as { getThreadsCount(): number };
  // The module object itself (the bundle's require('os')), not the import's read-only namespace copy.
  const osModule = require('os') as { cpus: typeof os.cpus };
  const cpus = osModule.cpus;
  const ready = enableWasmThreads(threads);
  if (ready) {
    // Module-wide, for the moment the wasm module's static constructors run.
    osModule.cpus = () => {
      const list = cpus();
      return Array.from({ length: 2 * threads }, (_, i) => list[i % list.length]);
    };
  }
  // The pool's workers must not keep the process alive (XNNPACK only uses them synchronously, while
  // the main thread waits): the glue takes require('worker_threads').Worker when it starts.
  const workerThreads = require('worker_threads') as { Worker: typeof import('worker_threads').Worker };
  const Worker = workerThreads.Worker;
  if (ready) {
    workerThreads.Worker = class extends Worker {
      constructor(...args: ConstructorParameters<typeof Worker>) {
        super(...args);
        this.unref();
        poolWorkers.push(this);
      }
    };
  }
  const handles = () => (process as unknown as { _getActiveHandles(): { constructor: { name: string }; unref?: () => void }[] })._getActiveHandles();
  const before = new Set(handles());
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
  } finally {
    osModule.cpus = cpus;
    workerThreads.Worker = Worker;
    // Every pool worker has loaded its script by now (the pool is running).
    if (ready) fs.rmSync(workerFileFor(process.pid), { force: true });
  }
  // Listening on a worker re-references it: unreference the pool (and any port the glue opened) once
  // it is listening, or Node would never exit.
  if (ready) {
    for (const w of poolWorkers) w.unref();
    for (const h of handles()) if (!before.has(h) && h.constructor.name === 'MessagePort') h.unref?.();
  }
  return wasm.getThreadsCount();
}

/** The pthread pool's workers (for diagnostics and orderly shutdown). */
export function wasmThreadWorkers(): readonly import('worker_threads').Worker[] {
  return poolWorkers;
}
