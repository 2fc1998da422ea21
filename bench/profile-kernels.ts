/**
 * `npm run -s cli -- bench --profile-kernels [--cases quick-top,cpu-best] [--steps N] [--ab baseline|key=a,b] [--plain] [--calls] [--json]`
 *
 * Where one training step's time goes, kernel by kernel, for the two CPU recipes:
 * - quick-top: the `quick` profile's cached phase - conv_dw_13 + conv_pw_13 (BatchNormalization
 *   frozen) and the head trained on MobileNet v1 0.75's conv_pw_12_relu maps (5x5x768 at 160 px),
 *   batch 64, Adam;
 * - cpu-best: the `cpu-best` profile's whole-network phase at 128 px, batch 32, Adam, frozen batch norm.
 * Each builds the profile's own model and phase (trainable set, optimizer, loss) and runs the loop's
 * trainStep on random inputs on the backend training uses (wasm, one thread per core), so the kernels
 * are the ones a real run calls. Every timed step runs under tf.profile (a timer around each kernel
 * call; kernels that run other kernels inside count once): per kernel, milliseconds and calls per step
 * (means), the median wall time of a step, and the time outside kernels (tape, gradient bookkeeping, JS).
 *
 * --ab baseline alternates the current kernels with the ones before issue 21 (BASELINE_OPTIONS) step by
 * step in the same process, so a before/after on a shared machine sees the same load on both sides;
 * --ab key=a,b does the same for one wasmKernelOptions switch. --plain times the steps without tf.profile
 * (its per-kernel bookkeeping slows a step) and prints no kernel table.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { machineInfo } from '../src/backend/machine';
import { wasmKernelOptions } from '../src/backend/wasm-kernels';
import { loadProfile } from '../src/config';
import { cacheSplit } from '../src/model/split';
import { setBaseTrainable } from '../src/model/freeze';
import { Random } from '../src/random';
import { buildTrainModel } from '../src/train/setup';
import { applyPhaseTrainable } from '../src/train/trainer';
import { createOptimizer } from '../src/train/optimizer';
import { trainStep, type Batch, type StepModel } from '../src/train/loop';
import { featureBatches, fromFloat16, toFloat16, type FeatureSet } from '../src/train/feature-cache';

export type ProfileCase = 'quick-top' | 'cpu-best';
export const PROFILE_CASES: readonly ProfileCase[] = ['quick-top', 'cpu-best'];

export interface KernelRow { kernel: string; msPerStep: number; calls: number; share: number }
export interface CaseProfile {
  case: ProfileCase;
  profile: string;
  phase: string;
  batch: number;
  inputShape: number[];
  /** Median wall time of a step (forward, backward, Adam, reading the step's scalars). */
  stepMs: number;
  stepMsAll: number[];
  /** Sum of kernel times per profiled step (their mean), and the rest of the median step's wall time. */
  kernelMs: number;
  outsideKernelsMs: number;
  kernels: KernelRow[];
  /** The slowest single kernel calls of the last profiled step, with their input shapes. */
  slowestCalls: { kernel: string; ms: number; inputShapes: string }[];
  /** quick-top: assembling one batch from the float16-decoded cache, and decoding one batch's float16. */
  inputPath?: { batchAssemblyMs: number; float16DecodeMsPerBatch: number };
  /** With --ab: each variant's step times and profiled kernels (the first variant's are also the fields above). */
  variants?: (Variant & { stepMs: number; stepMsAll: number[]; kernelMs: number; kernels: KernelRow[] })[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

interface Setup { step: StepModel; batch: () => Batch; profile: string; phase: string; batchSize: number; inputShape: number[]; dispose: () => void; featureShape?: number[] }

async function setupCase(name: ProfileCase): Promise<Setup> {
  const profileName = name === 'quick-top' ? 'quick' : 'cpu-best';
  const profile = loadProfile(profileName);
  const phaseIndex = profile.train.phases.findIndex((p) => p.trainable !== 'head');
  const phase = profile.train.phases[phaseIndex];
  const batchSize = phase.batchSize ?? profile.train.batchSize;
  const numClasses = 10;
  const built = await buildTrainModel(profile, numClasses);
  applyPhaseTrainable(built, phase, { setTrainable: setBaseTrainable, imageBatches: () => { throw new Error('unused'); } });
  const cutAt = typeof phase.trainable === 'object' && phase.featureCache ? phase.trainable.from : undefined;
  const split = cutAt ? cacheSplit(built, cutAt) : undefined;
  let inputShape: number[];
  let forward: StepModel['forward'];
  let featureShape: number[] | undefined;
  if (split) {
    const probe = tf.tidy(() => split.extract(tf.zeros([1, ...(built.model.inputs[0].shape.slice(1) as number[])])));
    featureShape = probe.shape.slice(1);
    probe.dispose();
    inputShape = [batchSize, ...featureShape];
    forward = (x, training) => split.headApply(x, training);
  } else {
    inputShape = [batchSize, ...(built.model.inputs[0].shape.slice(1) as number[])];
    const { withTraining } = await import('../src/model/training-mode');
    forward = (x, training) => withTraining(training, () => built.model.apply(x, { training }) as tf.Tensor);
  }
  const vars = built.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const step: StepModel = { forward, optimizer: createOptimizer(phase), vars, numClasses, labelSmoothing: profile.train.labelSmoothing ?? 0, clipNorm: phase.clipNorm };
  // Inputs in the range the real ones have: ReLU6 maps in [0, 6] for the cache, standardised images otherwise.
  const xs = tf.tidy(() => (split ? tf.randomUniform(inputShape, 0, 6, 'float32', 1) : tf.randomNormal(inputShape, 0, 1, 'float32', 1)));
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: batchSize }, (_, i) => i % numClasses), 'int32'), numClasses).toFloat());
  return {
    step,
    batch: () => ({ xs: tf.clone(xs), ys: tf.clone(ys) }),
    profile: profileName,
    phase: phase.name,
    batchSize,
    inputShape,
    featureShape,
    dispose: () => {
      tf.dispose([xs, ys]);
      step.optimizer.optimizer.dispose();
      built.model.dispose();
    },
  };
}

async function oneStep(s: Setup, rng: Random): Promise<number> {
  const b = s.batch();
  const t0 = performance.now();
  const out = trainStep(s.step, b, 1e-5, rng);
  await Promise.all([out.loss.data(), out.correct.data(), out.outputSum.data()]);
  const ms = performance.now() - t0;
  tf.dispose([out.loss, out.correct, out.outputSum, b.xs, b.ys]);
  return ms;
}

/** The quick phase's input path for one batch: float16 decode and assembly of a shuffled batch. */
function inputPathCost(featureShape: number[], batchSize: number): CaseProfile['inputPath'] {
  const dims = featureShape.reduce((a, d) => a * d, 1);
  const count = batchSize * 8;
  const raw = new Float32Array(count * dims).map((_, i) => (i % 97) / 16);
  const half = toFloat16(raw);
  const t0 = performance.now();
  const decoded = fromFloat16(half);
  const decodeMs = (performance.now() - t0) / 8;
  const set: FeatureSet = { features: decoded, labels: new Uint8Array(count), count, dims, shape: featureShape };
  const order = new Random(3).permutation(count);
  const t1 = performance.now();
  let n = 0;
  for (const b of featureBatches(set, batchSize, order, 10)) {
    tf.dispose([b.xs, b.ys]);
    n++;
  }
  return { batchAssemblyMs: round((performance.now() - t1) / n, 2), float16DecodeMsPerBatch: round(decodeMs, 2) };
}

/** A setting of wasmKernelOptions a step is timed under. */
export interface Variant { name: string; options: Partial<typeof wasmKernelOptions> }

/** The kernels as they were before issue 21: the shipped Transpose and FusedBatchNorm, JS depthwise dot products, composed ReLU6 and Mean gradients, batch norm's per-channel sums eagerly. */
export const BASELINE_OPTIONS: Partial<typeof wasmKernelOptions> = { simd: false, batchNormGrad: 'eager', meanGrad: 'core' };

/** --ab: `baseline` (the current kernels against BASELINE_OPTIONS) or key=a,b (one switch). */
export function parseVariants(spec: string | undefined): Variant[] {
  if (!spec) return [{ name: 'current', options: {} }];
  if (spec === 'baseline') return [{ name: 'after', options: {} }, { name: 'before', options: BASELINE_OPTIONS }];
  const eq = spec.indexOf('=');
  const key = spec.slice(0, eq) as keyof typeof wasmKernelOptions;
  const values = spec.slice(eq + 1).split(',').filter(Boolean);
  if (eq <= 0 || !(key in wasmKernelOptions) || values.length < 2) {
    throw new Error(`--ab: expected 'baseline' or key=a,b with key one of ${Object.keys(wasmKernelOptions).join(', ')}, got '${spec}'`);
  }
  return values.map((v) => ({ name: `${key}=${v}`, options: { [key]: v === 'true' ? true : v === 'false' ? false : v } }));
}

function withOptions<T>(options: Partial<typeof wasmKernelOptions>, fn: () => Promise<T>): Promise<T> {
  const saved = { ...wasmKernelOptions };
  Object.assign(wasmKernelOptions, options);
  return fn().finally(() => Object.assign(wasmKernelOptions, saved));
}

/** Kernel times per step, averaged over the profiled steps `infos`; calls per step. */
type ProfiledStep = Pick<Awaited<ReturnType<typeof tf.profile>>, 'kernels'>;

function breakdown(infos: ProfiledStep[]): { kernelMs: number; kernels: KernelRow[]; slowestCalls: CaseProfile['slowestCalls'] } {
  const byKernel = new Map<string, { ms: number; calls: number }>();
  // Ops built with customGrad (e.g. fusedConv2d__op) are listed besides the kernels they run: count kernels only.
  const kernelsOnly = infos.flatMap((info) => info.kernels.filter((k) => !k.name.endsWith('__op')));
  const steps = infos.length;
  for (const k of kernelsOnly) {
    const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    e.calls++;
    byKernel.set(k.name, e);
  }
  const kernelMs = [...byKernel.values()].reduce((a, e) => a + e.ms, 0) / steps;
  const kernels = [...byKernel.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([kernel, e]) => ({ kernel, msPerStep: round(e.ms / steps), calls: e.calls / steps, share: round(e.ms / steps / kernelMs, 3) }));
  const slowestCalls = infos[infos.length - 1].kernels.filter((k) => !k.name.endsWith('__op'))
    .map((k) => ({ kernel: k.name, ms: round(typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0), inputShapes: JSON.stringify(k.inputShapes) }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 25);
  return { kernelMs: round(kernelMs), kernels, slowestCalls };
}

export async function profileCase(name: ProfileCase, opts: { steps: number; ab?: string; plain?: boolean; log: (m: string) => void }): Promise<CaseProfile> {
  const s = await setupCase(name);
  const rng = new Random(7);
  const variants = parseVariants(opts.ab);
  try {
    for (const v of variants) await withOptions(v.options, () => oneStep(s, rng)); // warm-up: XNNPACK operators, optimizer slots
    // Timed and profiled steps, the variants alternating (ABBA...) so that both see the same load; each
    // step's wall time includes tf.profile's bookkeeping (a timer per kernel call), the same for all.
    const times: number[][] = variants.map(() => []);
    const infos: ProfiledStep[][] = variants.map(() => []);
    for (let i = 0; i < opts.steps; i++) {
      const order = variants.map((_, k) => k);
      if (i % 2) order.reverse();
      for (const k of order) {
        let ms = 0;
        // tf.profile returns the engine's one profile object, refilled by every call: keep this step's kernel list.
        if (opts.plain) {
          ms = await withOptions(variants[k].options, () => oneStep(s, rng));
        } else {
          const info = await withOptions(variants[k].options, () => tf.profile(async () => void (ms = await oneStep(s, rng))));
          infos[k].push({ kernels: info.kernels });
        }
        times[k].push(round(ms));
      }
    }
    // --plain: wall times only (no tf.profile bookkeeping), no kernel table.
    const profiled = infos.map((list) => (list.length ? breakdown(list) : { kernelMs: 0, kernels: [], slowestCalls: [] }));
    const first = profiled[0];
    const stepMs = median(times[0]);
    const result: CaseProfile = {
      case: name,
      profile: s.profile,
      phase: s.phase,
      batch: s.batchSize,
      inputShape: s.inputShape,
      stepMs: round(stepMs),
      stepMsAll: times[0],
      kernelMs: first.kernelMs,
      outsideKernelsMs: round(Math.max(0, stepMs - first.kernelMs)),
      kernels: first.kernels,
      slowestCalls: first.slowestCalls,
    };
    if (variants.length > 1) {
      result.variants = variants.map((v, k) => ({ ...v, stepMs: round(median(times[k])), stepMsAll: times[k], kernelMs: profiled[k].kernelMs, kernels: profiled[k].kernels }));
    }
    if (s.featureShape) result.inputPath = inputPathCost(s.featureShape, s.batchSize);
    opts.log(`${name}: ${variants.map((v, k) => `${v.name} step ${round(median(times[k]))} ms (median of ${opts.steps}), kernels ${profiled[k].kernelMs} ms`).join('; ')}`);
    return result;
  } finally {
    s.dispose();
  }
}

/** The breakdown as a markdown table (kernels above 0.5% of kernel time; the rest summed); with variants, one ms column each. */
export function kernelTable(p: CaseProfile): string {
  const cols = p.variants ?? [{ name: 'ms / step', stepMs: p.stepMs, kernelMs: p.kernelMs, kernels: p.kernels }];
  const msOf = (k: number, kernel: string) => cols[k].kernels.find((r) => r.kernel === kernel);
  const head = p.variants ? cols.map((c) => `${c.name} ms (calls)`) : ['ms / step', 'calls'];
  const lines = [`| kernel | ${head.join(' | ')} | share${p.variants ? ` (${cols[0].name})` : ''} |`, `|---|${head.map(() => '---|').join('')}---|`];
  const names = [...new Set(cols.flatMap((c) => c.kernels.map((r) => r.kernel)))];
  const big = names.filter((n) => cols.some((_, k) => (msOf(k, n)?.share ?? 0) >= 0.005)).sort((a, b) => (msOf(0, b)?.msPerStep ?? 0) - (msOf(0, a)?.msPerStep ?? 0));
  const cell = (k: number, n: string) => { const r = msOf(k, n); return p.variants ? (r ? `${r.msPerStep} (${r.calls})` : '-') : r ? `${r.msPerStep} | ${r.calls}` : '- | -'; };
  for (const n of big) lines.push(`| ${n} | ${cols.map((_, k) => cell(k, n)).join(' | ')} | ${((msOf(0, n)?.share ?? 0) * 100).toFixed(1)}% |`);
  const rest = cols.map((c) => c.kernels.filter((r) => !big.includes(r.kernel)));
  const restMs = rest.map((r) => round(r.reduce((a, x) => a + x.msPerStep, 0)));
  const restCalls = rest.map((r) => r.reduce((a, x) => a + x.calls, 0));
  lines.push(`| (others) | ${cols.map((_, k) => (p.variants ? `${restMs[k]} (${restCalls[k]})` : `${restMs[k]} | ${restCalls[k]}`)).join(' | ')} | ${((restMs[0] / cols[0].kernelMs) * 100).toFixed(1)}% |`);
  lines.push(`| **all kernels** (mean per step) | ${cols.map((c) => (p.variants ? `**${c.kernelMs}**` : `**${c.kernelMs}** |`)).join(' | ')} | |`);
  lines.push(`| **step, median wall time** | ${cols.map((c) => (p.variants ? `**${c.stepMs}**` : `**${c.stepMs}** |`)).join(' | ')} | |`);
  return lines.join('\n');
}

export async function profileKernelsCommand(opts: { cases: ProfileCase[]; steps: number; ab?: string; json: boolean; calls?: boolean; plain?: boolean }): Promise<void> {
  const log = (m: string) => (opts.json ? process.stderr.write(`${m}\n`) : console.log(m));
  const backend = await initBackend({ quiet: true });
  const report = {
    date: new Date().toISOString(),
    backend: { choice: backend.choice, threads: backend.threads },
    machine: { ...machineInfo(), node: process.version, loadAverageAtStart: os.loadavg().map((v) => round(v, 2)) },
    cases: [] as CaseProfile[],
  };
  for (const c of opts.cases) report.cases.push(await profileCase(c, { steps: opts.steps, ab: opts.ab, plain: opts.plain, log }));
  (report.machine as Record<string, unknown>).loadAverageAtEnd = os.loadavg().map((v) => round(v, 2));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  for (const p of report.cases) {
    console.log(`\n${p.case} (${p.profile}, phase ${p.phase}, input ${p.inputShape.join('x')}): step ${p.stepMs} ms median of [${p.stepMsAll.join(', ')}]`);
    if (p.inputPath) console.log(`input path per batch: assembly ${p.inputPath.batchAssemblyMs} ms, float16 decode ${p.inputPath.float16DecodeMsPerBatch} ms`);
    for (const v of p.variants ?? []) console.log(`${v.name} (${JSON.stringify(v.options)}): step ${v.stepMs} ms median of [${v.stepMsAll.join(', ')}]`);
    if (p.kernels.length) console.log(kernelTable(p));
    if (opts.calls) for (const c of p.slowestCalls) console.log(`  ${c.ms} ms ${c.kernel} ${c.inputShapes}`);
  }
  console.log(`\nbackend ${backend.choice}, ${backend.threads} threads; load ${report.machine.loadAverageAtStart.join(' ')} -> ${(report.machine as Record<string, unknown>).loadAverageAtEnd}`);
}
