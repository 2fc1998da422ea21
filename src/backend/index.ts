/**
 * Picks the fastest TensorFlow.js backend that loads on this machine:
 * tfjs-node-gpu (CUDA) -> tfjs-node (libtensorflow) -> wasm (XNNPACK, SIMD) -> cpu (plain JS).
 * The native ones are optionalDependencies: their install downloads libtensorflow, so on a machine
 * without internet npm drops them and we fall back to wasm.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from './wasm-kernels';
import { initWasmThreaded } from './wasm/threads';

export { tf };

export type BackendChoice = 'node-gpu' | 'node' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendChoice[] = ['node-gpu', 'node', 'wasm', 'cpu'];

export interface BackendInfo {
  /** Our name for the choice, as TLWB_BACKEND takes it. */
  choice: BackendChoice;
  /** tf.getBackend() after the choice: 'tensorflow', 'wasm' or 'cpu'. */
  tfName: string;
  /** Why each faster backend was not used. */
  skipped: { choice: BackendChoice; reason: string }[];
  /** True when convolutions train at native speed (CUDA or libtensorflow). */
  native: boolean;
  gpu: boolean;
  /** XNNPACK threads on wasm (1 unless TLWB_WASM_THREADS asked for more and the threaded binary started). */
  threads: number;
}

let current: Promise<BackendInfo> | undefined;

const NO_NATIVE = 'no native library (npm ran no install script: README, Backends)';

/** Whether a tfjs-node package is installed with its compiled binding (lib/napi-v<N>/tfjs_binding.node). */
function hasNativeBinding(pkg: string): boolean {
  let dir: string;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`Cannot find module '${pkg}'`);
  }
  const lib = path.join(dir, 'lib');
  return fs.existsSync(lib) && fs.readdirSync(lib).some((d) => d.startsWith('napi-v') && fs.existsSync(path.join(lib, d, 'tfjs_binding.node')));
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/Cannot find module '(@tensorflow\/tfjs-node(-gpu)?)'/.test(msg)) return 'not installed';
  // The package is there but npm ran no install script (the project's .npmrc), so libtensorflow never came.
  if (/native addon module \(tfjs_binding\.node\) can not be found/.test(msg)) return NO_NATIVE;
  return msg.split('\n')[0].slice(0, 160);
}

async function tryBackend(choice: BackendChoice): Promise<void> {
  switch (choice) {
    case 'node-gpu':
    case 'node': {
      const pkg = choice === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      // Installed without its install script, the package has no libtensorflow binding; requiring it
      // anyway registers its kernels before failing, and the next package prints ~200 "already registered" lines.
      if (!hasNativeBinding(pkg)) throw new Error(NO_NATIVE);
      // Loading the package registers the 'tensorflow' backend with the shared tfjs-core.
      if (choice === 'node-gpu') require('@tensorflow/tfjs-node-gpu');
      else require('@tensorflow/tfjs-node');
      if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend failed to initialise');
      if (choice === 'node-gpu') {
        const devices = (tf.backend() as unknown as { binding?: { isUsingGpuDevice?: () => boolean } }).binding;
        if (devices?.isUsingGpuDevice && !devices.isUsingGpuDevice()) throw new Error('no CUDA device visible');
      }
      return;
    }
    case 'wasm': {
      require('@tensorflow/tfjs-backend-wasm');
      registerWasmTrainingKernels();
      const threads = wasmThreadsRequested();
      if (threads > 1) {
        await initWasmThreaded(threads);
        return;
      }
      if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
      return;
    }
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend failed to initialise');
      return;
  }
}

/**
 * TLWB_WASM_THREADS: how many threads the wasm backend runs. Default: one per core - on an idle
 * 2-core machine the threaded binary ran convolutions 2.0x and ResNet-50 inference 1.7x faster
 * (docs/benchmarks.md); 1 keeps the single-threaded binary.
 */
export function wasmThreadsRequested(): number {
  const raw = process.env.TLWB_WASM_THREADS;
  if (raw === undefined || raw === '' || raw === 'auto') return os.cpus().length;
  const n = Number(raw);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`TLWB_WASM_THREADS: expected a whole number >= 1 or auto, got '${raw}'`);
  return n;
}

function wasmThreadsInUse(): number {
  const wasm = require('@tensorflow/tfjs-backend-wasm') as { getThreadsCount?: () => number };
  return wasm.getThreadsCount?.() ?? 1;
}

function parseChoice(value: string | undefined, origin: string): BackendChoice | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if ((BACKEND_ORDER as readonly string[]).includes(value)) return value as BackendChoice;
  throw new Error(`${origin}: unknown backend '${value}'; expected one of ${BACKEND_ORDER.join(', ')} or auto`);
}

/**
 * Selects and initialises the backend once per process (later calls return the same answer).
 * `force` (or the environment variable TLWB_BACKEND) names one backend; it is then the only one tried.
 */
export function initBackend(opts: { force?: string; quiet?: boolean } = {}): Promise<BackendInfo> {
  if (!current) current = select(opts);
  return current;
}

async function select(opts: { force?: string; quiet?: boolean }): Promise<BackendInfo> {
  const forced = parseChoice(opts.force, 'backend option') ?? parseChoice(process.env.TLWB_BACKEND, 'TLWB_BACKEND');
  const candidates = forced ? [forced] : BACKEND_ORDER;
  const skipped: BackendInfo['skipped'] = [];
  for (const choice of candidates) {
    try {
      await tryBackend(choice);
      await tf.ready();
      const info: BackendInfo = {
        choice,
        tfName: tf.getBackend(),
        skipped,
        native: choice === 'node' || choice === 'node-gpu',
        gpu: choice === 'node-gpu',
        threads: choice === 'wasm' ? wasmThreadsInUse() : 1,
      };
      quietCpuBanner();
      if (!opts.quiet) console.log(describeBackend(info));
      return info;
    } catch (e) {
      skipped.push({ choice, reason: firstLine(e) });
    }
  }
  current = undefined;
  throw new Error(`no TensorFlow.js backend could be loaded: ${skipped.map((s) => `${s.choice}: ${s.reason}`).join('; ')}`);
}

/**
 * tfjs' cpu backend prints "Hi, looks like you are running TensorFlow.js in Node.js ... install our node
 * backend" at its first tensor (the cpu kernels also serve some ops under wasm); the backend line has
 * already said which backend runs and why. Marking that first use done silences just this banner,
 * where tf.enableProdMode() would silence every tfjs warning.
 */
function quietCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu && 'firstUse' in cpu) cpu.firstUse = false;
}

/** A faster backend that is simply absent on a CPU machine (not installed, or installed without libtensorflow). */
const ABSENT = /^(not installed|no native library)/;

/**
 * One line naming the backend in use and why each faster one was not used. `short` (a notebook's
 * line) leaves out backends that are merely absent, keeping real failures such as "no CUDA device visible".
 */
export function describeBackend(info: BackendInfo, opts: { short?: boolean } = {}): string {
  // Backends skipped for the same reason are named together ("node-gpu, node: not installed").
  const byReason = new Map<string, BackendChoice[]>();
  for (const s of info.skipped) if (!(opts.short && ABSENT.test(s.reason))) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.choice]);
  const why = [...byReason].map(([reason, choices]) => `${choices.join(', ')}: ${reason}`).join('; ');
  const threads = info.threads > 1 ? `, ${info.threads} threads` : '';
  return `backend: ${info.choice} (tf '${info.tfName}'${threads})${why ? ` - skipped ${why}` : ''}`;
}
