/**
 * The inference engine: ONNX Runtime (onnxruntime-node, native CPU code, one thread per core) when it
 * loads, else TF.js. On a CPU without tfjs-node, ORT ran ResNet-50 about 6x faster than TF.js on wasm
 * (bench/). Training stays on TF.js; what only runs a model forward - frozen features, evaluation,
 * predict - goes through runModel(), which exports the model to ONNX in memory once (again after its
 * weights change) and runs the session. TLWB_INFERENCE=tfjs|onnx forces one.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import { exportOnnx, OnnxExport } from './onnx/export';
import { OnnxFileInfo, readOnnxInfo } from './onnx/read';

export type EngineName = 'onnx' | 'tfjs';

export interface EngineInfo {
  name: EngineName;
  /** Why this engine (and why not the other). */
  reason: string;
  /** Intra-op threads of ORT (1 for tfjs: TF.js has its own setting). */
  threads: number;
  /** onnxruntime-node's version when it loaded. */
  ortVersion?: string;
}

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

let ort: Ort | undefined;
let ortError: string | undefined;

/** onnxruntime-node, or undefined with the reason in ortLoadError(). */
export function loadOrt(): Ort | undefined {
  if (ort || ortError) return ort;
  try {
    ort = require('onnxruntime-node') as Ort;
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    ortError = /Cannot find module 'onnxruntime-node'/.test(msg) ? 'onnxruntime-node is not installed' : msg.split('\n')[0].slice(0, 160);
  }
  return ort;
}

export function ortLoadError(): string | undefined {
  loadOrt();
  return ortError;
}

/** TLWB_INFERENCE: 'onnx', 'tfjs', or auto (unset, '' or 'auto'). */
export function requestedEngine(value = process.env.TLWB_INFERENCE): EngineName | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if (value === 'onnx' || value === 'tfjs') return value;
  throw new Error(`TLWB_INFERENCE: unknown engine '${value}'; expected onnx, tfjs or auto`);
}

let chosen: EngineInfo | undefined;

/**
 * The engine for this process, chosen once: TLWB_INFERENCE (or `force`) when set - 'onnx' then fails
 * if ORT does not load - else ORT when it loads and TF.js does not run on a GPU, else TF.js.
 * The first call that is not `quiet` prints one line saying which and why.
 */
export function inferenceEngine(opts: { force?: EngineName; quiet?: boolean } = {}): EngineInfo {
  if (chosen && !opts.force) {
    if (!opts.quiet && !announced) announce(chosen);
    return chosen;
  }
  const forced = opts.force ?? requestedEngine();
  const threads = os.cpus().length;
  let info: EngineInfo;
  if (forced === 'tfjs') {
    info = { name: 'tfjs', reason: opts.force ? 'asked for' : 'TLWB_INFERENCE=tfjs', threads: 1 };
  } else if (forced === 'onnx') {
    const o = loadOrt();
    if (!o) throw new Error(`TLWB_INFERENCE=onnx: onnxruntime-node does not load (${ortError}); install it with npm ci, or use TLWB_INFERENCE=tfjs`);
    info = { name: 'onnx', reason: opts.force ? 'asked for' : 'TLWB_INFERENCE=onnx', threads, ortVersion: o.env.versions.node };
  } else {
    const o = loadOrt();
    const tfName = tfBackendName();
    if (!o) info = { name: 'tfjs', reason: `ONNX Runtime unavailable: ${ortError}`, threads: 1 };
    else if (tfName === 'tensorflow' && isTfGpu()) info = { name: 'tfjs', reason: 'TF.js runs on a CUDA GPU; ONNX Runtime here is CPU-only', threads: 1 };
    else {
      const versus = tfName ? ` than TF.js '${tfName}'` : '';
      info = { name: 'onnx', reason: `onnxruntime-node ${o.env.versions.node} loaded (native CPU code, faster${versus} for inference)`, threads, ortVersion: o.env.versions.node };
    }
  }
  if (!opts.force) chosen = info;
  if (!opts.quiet && !opts.force) announce(info);
  return info;
}

let announced = false;
/**
 * Where the engine's lines go: the cell's output by default (console.log, as in a notebook); a
 * command that keeps stdout for its result (`train --json`, `predict --json`) hands its own
 * reporter to announceEngine, and later notes (a model that falls back to TF.js) follow it.
 */
let engineLog: (line: string) => void = (line) => console.log(line);

/** The engine line, once per process (the first caller that is not quiet prints it). */
function announce(info: EngineInfo, print: (line: string) => void = engineLog): void {
  announced = true;
  print(describeEngine(info));
}

/** Says which engine runs (once per process) through `print`, e.g. a progress reporter; later engine notes go there too. */
export function announceEngine(print: (line: string) => void): EngineInfo {
  engineLog = print;
  const info = inferenceEngine({ quiet: true });
  if (!announced) announce(info, print);
  return info;
}

/** The TF.js backend in use, without initialising one (undefined before initBackend). */
function tfBackendName(): string | undefined {
  const engine = tf.engine() as unknown as { backendInstance?: unknown; backendName?: string };
  return engine.backendInstance ? tf.getBackend() : undefined;
}

function isTfGpu(): boolean {
  const binding = (tf.backend() as unknown as { binding?: { isUsingGpuDevice?: () => boolean } }).binding;
  return !!binding?.isUsingGpuDevice?.();
}

/** One line naming the inference engine and why. */
export function describeEngine(info: EngineInfo): string {
  const threads = info.name === 'onnx' ? `, ${info.threads} threads` : '';
  return `inference: ${info.name === 'onnx' ? 'onnxruntime' : 'tfjs'}${threads} - ${info.reason}`;
}

/** A model, or a chain of layers applied in order (the frozen front of a model). */
export type Runnable = tf.LayersModel | tf.layers.Layer[];

interface Compiled {
  session: Session;
  exported: Omit<OnnxExport, 'bytes'>;
  /** The weights' storage when exported: a training step replaces it, which re-exports. */
  weightIds: unknown[];
}

const compiled = new WeakMap<object, Compiled>();
/** Models the exporter cannot write (an unsupported layer): they run on TF.js, said once. */
const notExportable = new WeakMap<object, string>();

function weightsOf(model: Runnable): tf.LayerVariable[] {
  return Array.isArray(model) ? model.flatMap((l) => l.weights) : model.weights;
}

function weightIds(model: Runnable): unknown[] {
  return weightsOf(model).map((w) => (w.read() as unknown as { dataId: unknown }).dataId);
}

/** An ORT session over an ONNX file's bytes, one intra-op thread per core. */
export async function createSession(bytes: Uint8Array, threads = os.cpus().length): Promise<Session> {
  const o = loadOrt();
  if (!o) throw new Error(`onnxruntime-node does not load: ${ortError}`);
  return o.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
}

async function compile(model: Runnable, threads: number): Promise<Compiled> {
  const ids = weightIds(model);
  const known = compiled.get(model);
  if (known && known.weightIds.length === ids.length && known.weightIds.every((id, i) => id === ids[i])) return known;
  if (known) await known.session.release();
  const { bytes, ...exported } = exportOnnx(model);
  const c: Compiled = { session: await createSession(bytes, threads), exported, weightIds: ids };
  compiled.set(model, c);
  return c;
}

/** Runs an ORT session on one float32 input; the output as a tf.Tensor (the caller disposes it). */
export async function runSession(session: Session, input: tf.Tensor, names?: { input: string; output: string }): Promise<tf.Tensor> {
  const o = loadOrt()!;
  const inputName = names?.input ?? session.inputNames[0];
  const outputName = names?.output ?? session.outputNames[0];
  const data = input.dtype === 'float32' ? ((await input.data()) as Float32Array) : Float32Array.from(await input.data());
  const feeds = { [inputName]: new o.Tensor('float32', data, input.shape) };
  const result = await session.run(feeds);
  const out = result[outputName];
  try {
    return tf.tensor(out.data as Float32Array, out.dims as number[], 'float32');
  } finally {
    out.dispose?.();
  }
}

/**
 * The engine as a function (model, inputs) => outputs: the model (or chain of layers) in inference
 * mode on `input`. On 'onnx' the model is exported to ONNX once (per set of weights) and run by ORT;
 * on 'tfjs' `tfjs(input)` runs when given (the caller's own TF.js path), else model.predict / the
 * chain's layers. The input is not disposed; the returned tensor belongs to the caller.
 */
export async function runModel(model: Runnable, input: tf.Tensor, opts: { engine?: EngineInfo; tfjs?: (x: tf.Tensor) => tf.Tensor } = {}): Promise<tf.Tensor> {
  const engine = opts.engine ?? inferenceEngine();
  if (engine.name === 'onnx' && !notExportable.has(model)) {
    let c: Compiled;
    try {
      c = await compile(model, engine.threads);
    } catch (e) {
      const msg = (e as Error).message;
      // Forced ORT fails loudly; the automatic choice falls back to TF.js for this model, saying why.
      if (requestedEngine() === 'onnx' || !msg.startsWith('ONNX export:')) throw e;
      notExportable.set(model, msg);
      engineLog(`inference: tfjs for this model - ${msg}`);
      return runModel(model, input, { ...opts, engine: { name: 'tfjs', reason: msg, threads: 1 } });
    }
    return runSession(c.session, input, { input: c.exported.input.name, output: c.exported.output.name });
  }
  if (opts.tfjs) return tf.tidy(() => opts.tfjs!(input));
  if (Array.isArray(model)) return tf.tidy(() => model.reduce((x, l) => l.apply(x, { training: false }) as tf.Tensor, input));
  return tf.tidy(() => model.predict(input) as tf.Tensor);
}

/** Drops the ORT session kept for `model` (e.g. before it is disposed). */
export async function releaseModel(model: Runnable): Promise<void> {
  const c = compiled.get(model);
  if (c) {
    compiled.delete(model);
    await c.session.release();
  }
}

export interface OnnxFile {
  file: string;
  session: Session;
  info: OnnxFileInfo;
  /** True when the file takes raw RGB 0..255 (its preprocessing baked in). */
  rawInput: boolean;
}

/** An exported ONNX file opened in ORT, with its metadata (see exportRun). */
export async function openOnnxFile(file: string, threads = os.cpus().length): Promise<OnnxFile> {
  const bytes = fs.readFileSync(file);
  const info = readOnnxInfo(bytes, file);
  return { file, session: await createSession(bytes, threads), info, rawInput: info.metadata.preprocess_baked === 'true' };
}
