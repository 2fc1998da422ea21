/**
 * `npm run -s cli -- bench [--json] [--quick] [--kernels] [--backends wasm,wasm-mt,cpu] [--threads N] [--models resnet50,darknet-tiny] [--no-torch]`
 *
 * Images per second for ResNet-50 (random weights: speed only) and Darknet-Tiny (../shared/data/darknet-tiny):
 * inference at 224 and 128, one Adam training step at 224 (batch 16) and at 32x32 (batch 64), on every
 * TensorFlow.js backend that loads ('wasm' one thread, 'wasm-mt' the threaded binary on all cores, run in
 * a child process since threads must be chosen before wasm starts); the same networks and steps in PyTorch when /usr/bin/python3 has torch
 * (channels_last, 2 threads, tcmalloc preloaded when installed). Ratios are TensorFlow.js images/s divided
 * by PyTorch images/s (keys ending in "RatioVsTorch": 1 = parity, 0.1 = ten times slower).
 * `--quick` uses small batches, one timed repetition and no wasm-mt (about a minute on an idle machine); the cpu backend is measured on
 * Darknet-Tiny only (ResNet-50 on it takes minutes per image batch).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from '../src/backend/wasm-kernels';
import { initWasmThreaded } from '../src/backend/wasm/threads';
import { measureConv, resnetConvShapes, type ConvRate } from './conv-kernels';

export type TaskName = 'inference224' | 'inference128' | 'train224' | 'train32';
export interface TaskSpec { size: number; batch: number; train: boolean }
export type ModelName = 'resnet50' | 'darknet-tiny';

const projectRoot = path.resolve(__dirname, '..', '..');
const darknetDir = path.resolve(projectRoot, '../shared/data/darknet-tiny');

export function taskSpecs(quick: boolean): Record<TaskName, TaskSpec> {
  return {
    inference224: { size: 224, batch: quick ? 2 : 8, train: false },
    inference128: { size: 128, batch: quick ? 4 : 16, train: false },
    train224: { size: 224, batch: quick ? 2 : 16, train: true },
    train32: { size: 32, batch: quick ? 16 : 64, train: true },
  };
}

/**
 * Batch actually used: ResNet-50 training at 224 needs ~0.8 GB of wasm heap per image in TensorFlow.js
 * (3.1 GB at batch 4, measured), and wasm32 stops at 4 GB, so batch 16 (and 8) abort there; the cpu
 * backend is too slow for full batches.
 */
function batchFor(backend: string, model: ModelName, task: TaskName, quick: boolean): number {
  const batch = taskSpecs(quick)[task].batch;
  if (backend.startsWith('wasm') && model === 'resnet50' && task === 'train224') return Math.min(batch, 4);
  if (backend === 'cpu') return Math.min(batch, task === 'inference128' ? 4 : 2);
  return batch;
}

/** Which tasks each backend runs: the cpu backend's convolutions are ~10x slower and its filter gradient ~1000x. */
function tasksFor(backend: string, model: ModelName, quick: boolean): TaskName[] {
  if (backend === 'cpu') {
    if (model !== 'darknet-tiny') return [];
    return quick ? ['inference128'] : ['inference224', 'inference128', 'train32'];
  }
  return ['inference224', 'inference128', 'train224', 'train32'];
}

async function buildModel(name: ModelName, size: number): Promise<tf.LayersModel> {
  if (name === 'resnet50') {
    const { ResNet50 } = await import('../src/model/resnet');
    return ResNet50({ inputShape: [size, size, 3], classes: 1000 });
  }
  if (!fs.existsSync(path.join(darknetDir, 'model.json'))) throw new Error(`${darknetDir}/model.json not found`);
  const { loadTfjsModel } = await import('../src/model/tfjs-backbone');
  return loadTfjsModel(darknetDir, { inputSize: size });
}

async function imagesPerSecond(fn: () => Promise<void>, batch: number, minSeconds: number, minReps: number): Promise<number> {
  await fn(); // warm-up: XNNPACK operators, weight packing, optimizer slots
  let reps = 0;
  const start = performance.now();
  while (reps < minReps || (performance.now() - start) / 1000 < minSeconds) {
    await fn();
    reps++;
  }
  return (batch * reps) / ((performance.now() - start) / 1000);
}

async function measureTask(model: ModelName, spec: TaskSpec, quick: boolean): Promise<number> {
  const net = await buildModel(model, spec.size);
  const classes = (net.outputs[0].shape[net.outputs[0].shape.length - 1] ?? 1000) as number;
  const xs = tf.randomNormal([spec.batch, spec.size, spec.size, 3]);
  const ys = tf.tidy(() => tf.oneHot(tf.randomUniform([spec.batch], 0, classes, 'int32') as tf.Tensor1D, classes));
  const optimizer = tf.train.adam(1e-4);
  try {
    const fn = spec.train
      ? async () => {
          const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(ys, net.apply(xs, { training: true }) as tf.Tensor), true);
          await loss?.data();
          loss?.dispose();
        }
      : async () => {
          const y = net.predict(xs) as tf.Tensor;
          await y.data();
          y.dispose();
        };
    return await imagesPerSecond(fn, spec.batch, quick ? 0 : 3, 1);
  } finally {
    tf.dispose([xs, ys]);
    optimizer.dispose();
    net.dispose();
  }
}

async function useBackend(name: string, threads: number): Promise<boolean> {
  try {
    if (name === 'wasm') {
      require('@tensorflow/tfjs-backend-wasm');
      registerWasmTrainingKernels();
      if (threads > 1) return (await initWasmThreaded(threads)) === threads;
    }
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/** 'wasm-mt': the threaded binary must start before any other wasm use, so it runs in a child process. */
function runThreadedChild(argv: string[], threads: number): { results?: Record<string, Record<string, number | string>>; convGflops?: ConvRate[]; error?: string } {
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const keep = argv.filter((a, i) => !['--backends', '--threads'].includes(a) && !['--backends', '--threads'].includes(argv[i - 1] ?? '') && !a.startsWith('--backends=') && !a.startsWith('--threads='));
  const run = spawnSync(process.execPath, [cli, 'bench', ...keep, '--json', '--no-torch', '--backends', 'wasm', '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.status !== 0) return { error: `child exited ${run.status}` };
  const report = JSON.parse(run.stdout) as { results: Record<string, Record<string, Record<string, number | string>>>; convGflops?: Record<string, ConvRate[]> };
  return { results: report.results.wasm, convGflops: report.convGflops?.wasm };
}

interface TorchResult { version?: string; threads?: number; results?: Record<string, Record<string, number>>; error?: string; tcmalloc?: string | null }

function tcmallocPath(): string | null {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib']) {
    const file = path.join(dir, 'libtcmalloc_minimal.so.4');
    if (fs.existsSync(file)) return file;
  }
  return null;
}

function runTorch(models: ModelName[], quick: boolean, python: string, threads: number): TorchResult | undefined {
  if (!fs.existsSync(python)) return undefined;
  const probe = spawnSync(python, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  if (probe.status !== 0) return undefined;
  const specs = taskSpecs(quick);
  const tasks: Record<string, Record<string, TaskSpec>> = {};
  for (const m of models) tasks[m] = { ...specs };
  const tcmalloc = tcmallocPath();
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), ...(tcmalloc ? { LD_PRELOAD: tcmalloc } : {}) };
  const args = [path.join(projectRoot, 'bench', 'torch_bench.py'), '--tasks', JSON.stringify(tasks), '--threads', String(threads), '--min-seconds', quick ? '0' : '3', '--min-reps', '1'];
  if (fs.existsSync(path.join(darknetDir, 'model.json'))) args.push('--darknet', path.join(darknetDir, 'model.json'));
  const run = spawnSync(python, args, { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (run.status !== 0) return { error: (run.stderr || `exit ${run.status}`).trim().split('\n').slice(-3).join(' | '), tcmalloc };
  return { ...(JSON.parse(run.stdout) as TorchResult), tcmalloc };
}

export async function benchCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      kernels: { type: 'boolean', default: false },
      'no-torch': { type: 'boolean', default: false },
      backends: { type: 'string' },
      threads: { type: 'string', default: '1' },
      models: { type: 'string', default: 'resnet50,darknet-tiny' },
      python: { type: 'string', default: '/usr/bin/python3' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run -s cli -- bench [--json] [--quick] [--kernels] [--backends wasm,wasm-mt,cpu] [--threads N]\n' +
        '                              [--models resnet50,darknet-tiny] [--no-torch] [--python /usr/bin/python3]\n' +
        'Images/s for inference at 224 and 128 and Adam training steps at 224 and 32, per backend, against PyTorch.\n' +
        '  --quick     small batches, one timed repetition, no wasm-mt (about a minute on an idle machine)\n' +
        '  --kernels   also time the convolution gradient kernels alone\n' +
        '  --backends  comma-separated: wasm, wasm-mt (threaded), cpu (default: all that load)\n' +
        '  --threads   PyTorch threads and wasm-mt threads (default 1)\n' +
        '  --models    comma-separated: resnet50, darknet-tiny\n' +
        '  --no-torch  skip the PyTorch comparison\n' +
        '  --python    the Python with torch (default /usr/bin/python3)\n' +
        '  --json      print the results as JSON\n' +
        '  -h, --help  this text\n',
    );
    return;
  }
  const quick = values.quick!;
  const models = values.models!.split(',').filter(Boolean) as ModelName[];
  for (const m of models) if (m !== 'resnet50' && m !== 'darknet-tiny') throw new Error(`--models: unknown model '${m}'; expected resnet50, darknet-tiny`);
  const log = (msg: string) => { if (!values.json) console.log(msg); else process.stderr.write(`${msg}\n`); };
  const started = new Date();
  const report: Record<string, unknown> = {
    date: started.toISOString(),
    command: `npm run -s cli -- bench ${argv.join(' ')}`.trim(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadAverageAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100) },
    tasks: taskSpecs(quick),
    quick,
  };
  const results: Record<string, Record<string, Record<string, number | string>>> = {};
  const kernels: Record<string, ConvRate[]> = {};
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads: expected a positive integer, got '${values.threads}'`);
  const mtThreads = Math.max(2, os.cpus().length);
  report.threads = { wasm: threads, 'wasm-mt': mtThreads };
  // --quick leaves out the threaded child (it repeats every wasm task) unless asked for.
  const backends = (values.backends ?? (quick ? 'wasm,cpu' : 'wasm,wasm-mt,cpu')).split(',').filter(Boolean);
  for (const backend of backends) {
    if (backend === 'wasm-mt') {
      log(`wasm-mt: threaded SIMD binary with ${mtThreads} threads, in a child process ...`);
      const child = runThreadedChild(argv, mtThreads);
      results[backend] = child.results ?? { error: { message: child.error ?? 'no results' } };
      if (child.convGflops) kernels[backend] = child.convGflops;
      continue;
    }
    if (!(await useBackend(backend, threads))) {
      results[backend] = { error: { message: 'backend did not load' } };
      continue;
    }
    if (values.kernels && backend === 'wasm') {
      log(`${backend}: convolution GFLOP/s on ResNet-50 shapes (batch ${quick ? 2 : 8}, ${threads} thread${threads > 1 ? 's' : ''})`);
      kernels[backend] = resnetConvShapes(quick ? 2 : 8).map((shape) => measureConv(shape, quick ? 0.2 : 1));
      for (const k of kernels[backend]) log(`${backend} ${k.name}: forward ${k.forward} / input-grad ${k.inputGrad} / filter-grad ${k.filterGrad} GFLOP/s`);
    }
    for (const model of models) {
      for (const task of tasksFor(backend, model, quick)) {
        const spec = { ...taskSpecs(quick)[task], batch: batchFor(backend, model, task, quick) };
        const entry = ((results[backend] ??= {})[model] ??= {});
        try {
          const ips = await measureTask(model, spec, quick);
          entry[task] = Math.round(ips * 1000) / 1000;
          if (spec.batch !== taskSpecs(quick)[task].batch) entry[`${task}Batch`] = spec.batch;
          log(`${backend} ${model} ${task} (batch ${spec.batch}): ${entry[task]} images/s`);
        } catch (e) {
          entry[`${task}Error`] = (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
          log(`${backend} ${model} ${task}: failed: ${entry[`${task}Error`]}`);
        }
      }
    }
  }
  report.results = results;
  if (Object.keys(kernels).length) report.convGflops = kernels;
  if (!values['no-torch']) {
    // PyTorch with 2 threads (its best configuration on an idle machine) and, outside --quick, 1 thread:
    // with the cores shared, OpenMP's 2 threads can be slower than 1. Ratios use the faster per task.
    const runs: TorchResult[] = [];
    for (const t of quick ? [2] : [2, 1]) {
      log(`pytorch: bench/torch_bench.py with ${t} thread${t > 1 ? 's' : ''} ...`);
      const run = runTorch(models, quick, values.python!, t);
      if (run) runs.push(run);
    }
    const torch: TorchResult | undefined = runs.length === 0 ? undefined : { ...runs[0], results: {} };
    if (torch) {
      for (const run of runs) {
        for (const [model, byTask] of Object.entries(run.results ?? {})) {
          for (const [task, ips] of Object.entries(byTask)) {
            const best = (torch.results![model] ??= {});
            if (!(best[task] >= ips)) best[task] = ips;
          }
        }
      }
    }
    if (!torch) report.torch = { available: false };
    else {
      report.torch = { available: !torch.error, best: torch.results, byThreads: runs.map((r) => ({ threads: r.threads, results: r.results, error: r.error })), version: torch.version, tcmalloc: torch.tcmalloc };
      for (const [backend, byModel] of Object.entries(results)) {
        for (const [model, entry] of Object.entries(byModel)) {
          for (const task of Object.keys(taskSpecs(quick)) as TaskName[]) {
            const ours = entry[task];
            const theirs = torch.results?.[model]?.[task];
            if (typeof ours === 'number' && typeof theirs === 'number' && theirs > 0) entry[`${task}RatioVsTorch`] = Math.round((ours / theirs) * 10000) / 10000;
          }
        }
      }
      if (torch.results) for (const [model, r] of Object.entries(torch.results)) log(`pytorch ${model} (best of thread counts): ${JSON.stringify(r)}`);
    }
  }
  (report.machine as Record<string, unknown>).loadAverageAtEnd = os.loadavg().map((v) => Math.round(v * 100) / 100);
  report.seconds = Math.round((Date.now() - started.getTime()) / 100) / 10;
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else log(`done in ${report.seconds} s`);
}
