/**
 * `npm run -s cli -- bench decode [...]`: decoding users' photos instead (bench/decode.ts).
 * `npm run -s cli -- bench [--json] [--quick] [--kernels] [--backends wasm,wasm-mt,cpu,onnx] [--threads N] [--models resnet50,darknet-tiny] [--no-torch]`
 *
 * Images per second for ResNet-50 (random weights: speed only) and Darknet-Tiny (../shared/data/darknet-tiny):
 * inference at 224 and 128, one Adam training step at 224 (batch 16) and at 32x32 (batch 64), on every
 * TensorFlow.js backend that loads ('wasm' one thread, 'wasm-mt' the threaded binary on all cores, run in
 * a child process since threads must be chosen before wasm starts); the same networks and steps in PyTorch when /usr/bin/python3 has torch
 * (one thread per core with OpenMP's default and passive wait, channels_last or contiguous - the faster per
 * task -, tcmalloc preloaded when installed; outside --quick also 1 thread and, on AVX-512 CPUs,
 * ATEN_CPU_CAPABILITY=avx512; the best counts). Ratios are TensorFlow.js images/s divided
 * by PyTorch images/s (keys ending in "RatioVsTorch": 1 = parity, 0.1 = ten times slower).
 * MobileNet v1 0.75 (its preset's files): inference at 224 and 128, training steps at 96, 128, 160 and 224 px (batch 32; 16 at 224),
 * the projected minutes of one 45,000-image epoch at 96/128/160, and one profiled step's kernel shares (the depthwise gradients').
 * `--quick` uses small batches and one timed repetition (a few minutes on an idle machine); the cpu backend is measured on
 * Darknet-Tiny only (ResNet-50 on it takes minutes per image batch).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { defineCommand, parseCommand } from '../src/cli-options';
import * as tf from '@tensorflow/tfjs';
import { machineInfo } from '../src/backend/machine';
import { registerWasmTrainingKernels } from '../src/backend/wasm-kernels';
import { initWasmThreaded } from '../src/backend/wasm/threads';
import { measureConv, measureDepthwise, mobilenetDepthwiseShapes, resnetConvShapes, type ConvRate } from './conv-kernels';
import { benchOnnx } from './onnx';
import type { ProfileCase } from './profile-kernels';
import { PRESETS, tfjsSource, type TfjsPreset } from '../src/model/presets';

export type TaskName = 'inference224' | 'inference128' | 'train224' | 'train32' | 'train96' | 'train128' | 'train160';
export interface TaskSpec { size: number; batch: number; train: boolean }
export type ModelName = 'resnet50' | 'darknet-tiny' | 'mobilenet-v1-0.75';
export const MODEL_NAMES: readonly ModelName[] = ['resnet50', 'darknet-tiny', 'mobilenet-v1-0.75'];
/** Training images in one epoch of the full CIFAR-10 training split (50,000 less a 10% validation split). */
export const EPOCH_IMAGES = 45_000;

const projectRoot = path.resolve(__dirname, '..', '..');
const darknetDir = path.resolve(process.env.DARKNET_TINY_DIR || path.join(projectRoot, '../shared/data/darknet-tiny'));

export function taskSpecs(quick: boolean): Record<TaskName, TaskSpec> {
  return {
    inference224: { size: 224, batch: quick ? 2 : 8, train: false },
    inference128: { size: 128, batch: quick ? 4 : 16, train: false },
    train224: { size: 224, batch: quick ? 2 : 16, train: true },
    train32: { size: 32, batch: quick ? 16 : 64, train: true },
    // MobileNet's fine-tuning resolutions (batch 32, what its profiles train with).
    train96: { size: 96, batch: quick ? 8 : 32, train: true },
    train128: { size: 128, batch: quick ? 8 : 32, train: true },
    train160: { size: 160, batch: quick ? 8 : 32, train: true },
  };
}

/** MobileNet's files: MOBILENET_V1_0_75_DIR, ../shared/data/mobilenet-v1-0.75, else the upstream URL (as its preset). */
function mobilenetSource(): string {
  return tfjsSource(PRESETS['mobilenet-v1-0.75'] as TfjsPreset);
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
  if (model === 'mobilenet-v1-0.75') return quick ? ['inference224', 'inference128', 'train128', 'train224'] : ['inference224', 'inference128', 'train96', 'train128', 'train160', 'train224'];
  return ['inference224', 'inference128', 'train224', 'train32'];
}

/** Tasks PyTorch runs for a model: the same as the wasm backends'. */
function torchTasks(model: ModelName, quick: boolean): Partial<Record<TaskName, TaskSpec>> {
  const specs = taskSpecs(quick);
  return Object.fromEntries(tasksFor('wasm', model, quick).map((t) => [t, specs[t]]));
}

async function buildModel(name: ModelName, size: number): Promise<tf.LayersModel> {
  if (name === 'resnet50') {
    const { ResNet50 } = await import('../src/model/resnet');
    return ResNet50({ inputShape: [size, size, 3], classes: 1000 });
  }
  const { loadTfjsModel } = await import('../src/model/tfjs-backbone');
  // MobileNet through its model stage (which also gives its ReLU6 layers the single Relu6 kernel).
  if (name === 'mobilenet-v1-0.75') return loadTfjsModel(mobilenetSource(), { inputSize: size });
  if (!fs.existsSync(path.join(darknetDir, 'model.json'))) throw new Error(`${darknetDir}/model.json not found`);
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

/** Share of one profiled training step's kernel time per kernel name (the depthwise gradients' share goes into the report). */
export interface StepProfile { kernelMs: number; shares: Record<string, number> }

async function profileStep(fn: () => Promise<void>): Promise<StepProfile> {
  const info = await tf.profile(fn);
  const byKernel: Record<string, number> = {};
  // Ops built with customGrad (e.g. fusedConv2d__op) are listed besides the kernels they run: count kernels only.
  for (const k of info.kernels) if (!k.name.endsWith('__op')) byKernel[k.name] = (byKernel[k.name] ?? 0) + (typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0);
  const total = Object.values(byKernel).reduce((a, b) => a + b, 0);
  const shares: Record<string, number> = {};
  for (const [name, ms] of Object.entries(byKernel).sort((a, b) => b[1] - a[1]).slice(0, 12)) shares[name] = Math.round((ms / total) * 1000) / 1000;
  return { kernelMs: Math.round(total), shares };
}

async function measureTask(model: ModelName, spec: TaskSpec, quick: boolean, profile?: (p: StepProfile) => void): Promise<number> {
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
    const ips = await imagesPerSecond(fn, spec.batch, quick ? 0 : 3, 1);
    if (profile) profile(await profileStep(fn));
    return ips;
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
function runThreadedChild(argv: string[], threads: number): { results?: Record<string, Record<string, number | string>>; convGflops?: ConvRate[]; depthwiseGflops?: ConvRate[]; error?: string } {
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const keep = argv.filter((a, i) => !['--backends', '--threads'].includes(a) && !['--backends', '--threads'].includes(argv[i - 1] ?? '') && !a.startsWith('--backends=') && !a.startsWith('--threads='));
  const run = spawnSync(process.execPath, [cli, 'bench', ...keep, '--json', '--no-torch', '--backends', 'wasm', '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.status !== 0) return { error: `child exited ${run.status}` };
  const report = JSON.parse(run.stdout) as { results: Record<string, Record<string, Record<string, number | string>>>; convGflops?: Record<string, ConvRate[]>; depthwiseGflops?: Record<string, ConvRate[]> };
  return { results: report.results.wasm, convGflops: report.convGflops?.wasm, depthwiseGflops: report.depthwiseGflops?.wasm };
}

/** One configuration of the PyTorch side: threads, OpenMP's wait policy, and optionally the ISA ATen dispatches to (ATEN_CPU_CAPABILITY). */
export interface TorchConfig { threads: number; waitPolicy?: 'passive'; capability?: string }
interface TorchResult {
  version?: string;
  threads?: number;
  mkldnn?: { available: boolean; enabled: boolean; version: string | null };
  cpuCapability?: string | null;
  blas?: string | null;
  results?: Record<string, Record<string, number>>;
  configurations?: Record<string, Record<string, unknown>>;
  error?: string;
  tcmalloc?: string | null;
  config?: TorchConfig;
}

/**
 * The configurations PyTorch is timed in: all cores always (the peer must use the machine as we do),
 * with OpenMP's default (spinning) wait and with OMP_WAIT_POLICY=passive - on a shared machine spinning
 * threads wait for a descheduled one at every barrier (MobileNet's 128 px step: 1.7 against 14.0
 * images/s at load 15); outside --quick also one thread and, on AVX-512 CPUs, ATen's AVX-512 kernels
 * (Debian's build dispatches AVX2 by default).
 */
export function torchConfigs(quick: boolean, cores: number, flags: string[]): TorchConfig[] {
  const all: TorchConfig[] = [{ threads: cores }];
  if (cores > 1) all.push({ threads: cores, waitPolicy: 'passive' });
  if (quick) return all;
  if (cores > 1) all.push({ threads: 1 });
  if (flags.includes('avx512f')) all.push({ threads: cores, waitPolicy: cores > 1 ? 'passive' : undefined, capability: 'avx512' });
  return all;
}

function tcmallocPath(): string | null {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib']) {
    const file = path.join(dir, 'libtcmalloc_minimal.so.4');
    if (fs.existsSync(file)) return file;
  }
  return null;
}

function runTorch(models: ModelName[], quick: boolean, python: string, config: TorchConfig): TorchResult | undefined {
  const threads = config.threads;
  if (!fs.existsSync(python)) return undefined;
  const probe = spawnSync(python, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  if (probe.status !== 0) return undefined;
  const tasks: Record<string, Partial<Record<TaskName, TaskSpec>>> = {};
  for (const m of models) tasks[m] = torchTasks(m, quick);
  const tcmalloc = tcmallocPath();
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), ...(tcmalloc ? { LD_PRELOAD: tcmalloc } : {}), ...(config.capability ? { ATEN_CPU_CAPABILITY: config.capability } : {}), ...(config.waitPolicy ? { OMP_WAIT_POLICY: config.waitPolicy } : {}) };
  const args = [path.join(projectRoot, 'bench', 'torch_bench.py'), '--tasks', JSON.stringify(tasks), '--threads', String(threads), '--min-seconds', quick ? '0' : '3', '--min-reps', '1'];
  if (fs.existsSync(path.join(darknetDir, 'model.json'))) args.push('--darknet', path.join(darknetDir, 'model.json'));
  if (models.includes('mobilenet-v1-0.75')) {
    const source = mobilenetSource();
    if (fs.existsSync(source)) args.push('--mobilenet', fs.statSync(source).isDirectory() ? path.join(source, 'model.json') : source);
  }
  const run = spawnSync(python, args, { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (run.status !== 0) return { error: (run.stderr || `exit ${run.status}`).trim().split('\n').slice(-3).join(' | '), tcmalloc, config };
  return { ...(JSON.parse(run.stdout) as TorchResult), tcmalloc, config };
}

export const BENCH_COMMAND = defineCommand({
  name: 'bench',
  usage: [
    'npm run -s cli -- bench [--json] [--quick] [--kernels] [--backends wasm,wasm-mt,cpu,onnx] [--threads N]',
    '                        [--models resnet50,darknet-tiny,mobilenet-v1-0.75] [--no-torch] [--python /usr/bin/python3]',
    'npm run -s cli -- bench --profile-kernels [--cases quick-top,cpu-best] [--steps N] [--ab SWITCH] [--calls] [--plain]',
    'npm run -s cli -- bench decode [...]   (photos decoded and resized: bench/decode.ts)',
  ],
  about:
    'Images/s for inference at 224 and 128 and Adam training steps (224 and 32; MobileNet at 96, 128, 160, 224), per backend,\n' +
    "against PyTorch (onnx: ONNX Runtime inference); MobileNet also gets projected seconds per 45,000-image epoch and its depthwise gradients' share of a step.",
  options: {
    json: { type: 'boolean', default: false, help: 'print the results as JSON' },
    quick: { type: 'boolean', default: false, help: 'small batches, one timed repetition' },
    kernels: { type: 'boolean', default: false, help: 'also time the convolution (and depthwise) gradient kernels alone' },
    'no-torch': { type: 'boolean', default: false, help: 'skip the PyTorch comparison' },
    backends: { type: 'string', value: 'LIST', help: 'comma-separated: wasm, wasm-mt (threaded), cpu, onnx (ONNX Runtime; default: all that load)' },
    threads: { type: 'string', value: 'N', default: '1', help: 'PyTorch threads and wasm-mt threads' },
    models: { type: 'string', value: 'LIST', default: 'resnet50,darknet-tiny,mobilenet-v1-0.75', help: 'comma-separated: resnet50, darknet-tiny, mobilenet-v1-0.75' },
    python: { type: 'string', value: 'PATH', default: '/usr/bin/python3', help: 'the Python with torch' },
    'profile-kernels': { type: 'boolean', default: false, help: 'instead: per-kernel time of one training step of the CPU recipes (bench/profile-kernels.ts)' },
    cases: { type: 'string', value: 'LIST', default: 'quick-top,cpu-best', help: 'with --profile-kernels: the recipes to profile' },
    steps: { type: 'string', value: 'N', default: '5', help: 'with --profile-kernels: timed steps' },
    ab: { type: 'string', value: 'SWITCH', help: 'with --profile-kernels: baseline|key=a,b (alternate the pre-issue-21 kernels, or one wasmKernelOptions switch)' },
    calls: { type: 'boolean', default: false, help: 'with --profile-kernels: list the slowest calls' },
    plain: { type: 'boolean', default: false, help: 'with --profile-kernels: wall times only' },
  },
});

export async function benchCommand(argv: string[]): Promise<void> {
  // `bench decode`: users' photos decoded and resized (sharp, jpeg-js, PIL); see bench/decode.ts.
  if (argv[0] === 'decode') return (await import('./decode')).benchDecodeCommand(argv.slice(1));
  const parsed = parseCommand(BENCH_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  if (values['profile-kernels']) {
    const { profileKernelsCommand, PROFILE_CASES } = await import('./profile-kernels');
    const cases = values.cases!.split(',').filter(Boolean) as ProfileCase[];
    for (const c of cases) if (!PROFILE_CASES.includes(c)) throw new Error(`--cases: unknown case '${c}'; expected ${PROFILE_CASES.join(', ')}`);
    const steps = Number(values.steps);
    if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps: expected a positive integer, got '${values.steps}'`);
    await profileKernelsCommand({ cases, steps, ab: values.ab, json: values.json!, calls: values.calls!, plain: values.plain! });
    return;
  }
  const quick = values.quick!;
  const models = values.models!.split(',').filter(Boolean) as ModelName[];
  for (const m of models) if (!MODEL_NAMES.includes(m)) throw new Error(`--models: unknown model '${m}'; expected ${MODEL_NAMES.join(', ')}`);
  const log = (msg: string) => { if (!values.json) console.log(msg); else process.stderr.write(`${msg}\n`); };
  const started = new Date();
  const report: Record<string, unknown> = {
    date: started.toISOString(),
    command: `npm run -s cli -- bench ${argv.join(' ')}`.trim(),
    machine: { ...machineInfo(), node: process.version, loadAverageAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100) },
    tasks: taskSpecs(quick),
    quick,
  };
  const results: Record<string, Record<string, Record<string, number | string>>> = {};
  const kernels: Record<string, ConvRate[]> = {};
  const depthwise: Record<string, ConvRate[]> = {};
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads: expected a positive integer, got '${values.threads}'`);
  const mtThreads = Math.max(2, os.cpus().length);
  report.threads = { wasm: threads, 'wasm-mt': mtThreads };
  // wasm-mt (all cores, what training runs) even with --quick: the PyTorch peer uses every core too.
  const backends = (values.backends ?? 'wasm,wasm-mt,cpu,onnx').split(',').filter(Boolean);
  for (const backend of backends) {
    if (backend === 'onnx') {
      log('onnx: the same networks exported to ONNX, in onnxruntime-node (inference only) ...');
      results.onnx = await benchOnnx(models, taskSpecs(quick), { quick, sharedData: path.dirname(darknetDir), log });
      continue;
    }
    if (backend === 'wasm-mt') {
      log(`wasm-mt: threaded SIMD binary with ${mtThreads} threads, in a child process ...`);
      const child = runThreadedChild(argv, mtThreads);
      results[backend] = child.results ?? { error: { message: child.error ?? 'no results' } };
      if (child.convGflops) kernels[backend] = child.convGflops;
      if (child.depthwiseGflops) depthwise[backend] = child.depthwiseGflops;
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
      if (models.includes('mobilenet-v1-0.75')) {
        log(`${backend}: depthwise convolution GFLOP/s on MobileNet v1 0.75's shapes at 128 px (batch ${quick ? 8 : 32})`);
        depthwise[backend] = mobilenetDepthwiseShapes(quick ? 8 : 32, 128).map((shape) => measureDepthwise(shape, quick ? 0.2 : 1));
        for (const k of depthwise[backend]) log(`${backend} ${k.name}: forward ${k.forward} / input-grad ${k.inputGrad} / filter-grad ${k.filterGrad} GFLOP/s`);
      }
    }
    for (const model of models) {
      for (const task of tasksFor(backend, model, quick)) {
        const spec = { ...taskSpecs(quick)[task], batch: batchFor(backend, model, task, quick) };
        const entry = ((results[backend] ??= {})[model] ??= {});
        try {
          // One profiled MobileNet step at 128 px: how much of it the depthwise gradient kernels take.
          const profile = model === 'mobilenet-v1-0.75' && task === 'train128' && backend === 'wasm'
            ? (p: StepProfile) => {
                entry.train128DepthwiseGradShare = Math.round(((p.shares.DepthwiseConv2dNativeBackpropFilter ?? 0) + (p.shares.DepthwiseConv2dNativeBackpropInput ?? 0)) * 1000) / 1000;
                entry.train128KernelShares = JSON.stringify(p.shares);
              }
            : undefined;
          const ips = await measureTask(model, spec, quick, profile);
          entry[task] = Math.round(ips * 1000) / 1000;
          if (spec.train) entry[`${task}SecondsPerStep`] = Math.round((spec.batch / ips) * 1000) / 1000;
          if (/^train(96|128|160)$/.test(task)) entry[`${task}EpochMinutes`] = Math.round((EPOCH_IMAGES / ips / 60) * 10) / 10;
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
  if (Object.keys(depthwise).length) report.depthwiseGflops = depthwise;
  if (!values['no-torch']) {
    // PyTorch on every core (and, outside --quick, its other configurations); ratios use its best per task.
    const runs: TorchResult[] = [];
    for (const config of torchConfigs(quick, os.cpus().length, machineInfo().cpuFlags)) {
      log(`pytorch: bench/torch_bench.py with ${config.threads} thread${config.threads > 1 ? 's' : ''}${config.waitPolicy ? `, OMP_WAIT_POLICY=${config.waitPolicy}` : ''}${config.capability ? `, ATEN_CPU_CAPABILITY=${config.capability}` : ''} ...`);
      const run = runTorch(models, quick, values.python!, config);
      if (run) runs.push(run);
    }
    const torch: TorchResult | undefined = runs.length === 0 ? undefined : { ...runs[0], results: {} };
    /** Which configuration won each task: threads, ATen capability, memory format. */
    const bestConfig: Record<string, Record<string, string>> = {};
    if (torch) {
      for (const run of runs) {
        for (const [model, byTask] of Object.entries(run.results ?? {})) {
          for (const [task, ips] of Object.entries(byTask)) {
            const best = (torch.results![model] ??= {});
            if (!(best[task] >= ips)) {
              best[task] = ips;
              const format = (run.configurations?.[model]?.[task] as { best?: string } | undefined)?.best;
              (bestConfig[model] ??= {})[task] = `${run.threads} threads${run.config?.waitPolicy ? `, OMP_WAIT_POLICY=${run.config.waitPolicy}` : ''}, ${run.cpuCapability ?? '?'}${format ? `, ${format}` : ''}`;
            }
          }
        }
      }
    }
    if (!torch) report.torch = { available: false };
    else {
      // Depthwise convolutions are ~4% of MobileNet's multiply-adds (the MobileNet paper's Table 2, scaled
      // to width 0.75): a much larger share of PyTorch's step says its depthwise kernels are weak.
      const dwShares = runs.map((r) => r.configurations?.['mobilenet-v1-0.75']?.train128DepthwiseShare as Record<string, number> | undefined).filter(Boolean);
      const dwShare = dwShares.length ? Math.max(...dwShares.flatMap((d) => Object.values(d!))) : undefined;
      report.torch = {
        available: !torch.error,
        version: torch.version,
        threads: torch.threads,
        mkldnn: torch.mkldnn,
        cpuCapability: torch.cpuCapability,
        blas: torch.blas,
        tcmalloc: torch.tcmalloc,
        best: torch.results,
        bestConfiguration: bestConfig,
        runs: runs.map((r) => ({ config: r.config, threads: r.threads, cpuCapability: r.cpuCapability, results: r.results, configurations: r.configurations, error: r.error })),
        ...(dwShare !== undefined
          ? { mobilenetDepthwiseShare: dwShare, depthwiseNote: `PyTorch ${torch.version} spends up to ${Math.round(dwShare * 100)}% of its MobileNet 128 px training step in depthwise convolutions (~4% of the multiply-adds)${dwShare > 0.15 ? ': weak at depthwise, so MobileNet ratios flatter TF.js' : ''}` }
          : {}),
      };
      if (dwShare !== undefined) log(`pytorch: ${(report.torch as { depthwiseNote: string }).depthwiseNote}`);
      for (const byModel of Object.values(results)) {
        for (const [model, entry] of Object.entries(byModel)) {
          for (const task of Object.keys(taskSpecs(quick)) as TaskName[]) {
            const ours = entry[task];
            const theirs = torch.results?.[model]?.[task];
            if (typeof ours === 'number' && typeof theirs === 'number' && theirs > 0) entry[`${task}RatioVsTorch`] = Math.round((ours / theirs) * 10000) / 10000;
          }
        }
      }
      if (torch.results) for (const [model, r] of Object.entries(torch.results)) log(`pytorch ${model} (best of thread counts): ${JSON.stringify(r)}`);
      const epochs: Record<string, Record<string, number>> = {};
      for (const [model, r] of Object.entries(torch.results ?? {})) {
        for (const task of ['train96', 'train128', 'train160']) if (r[task] > 0) (epochs[model] ??= {})[`${task}EpochMinutes`] = Math.round((EPOCH_IMAGES / r[task] / 60) * 10) / 10;
      }
      (report.torch as Record<string, unknown>).epochMinutes = epochs;
    }
  }
  (report.machine as Record<string, unknown>).loadAverageAtEnd = os.loadavg().map((v) => Math.round(v * 100) / 100);
  report.seconds = Math.round((Date.now() - started.getTime()) / 100) / 10;
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else log(`done in ${report.seconds} s`);
}
