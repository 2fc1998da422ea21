/**
 * Using a trained run on new pictures: load <runDir>/model (TF.js layers format), decode image files
 * of any size straight to the size the model was trained at (data/decode.ts: the same pixels as the
 * training images), preprocess them the way the backbone expects, and return the most probable classes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf } from '../backend';
import { PreprocessMode, Profile } from '../config';
import { readRunProfile } from '../session';
import { readJsonFile, readJsonIfExists, readJsonObjectIfExists, verifyChecksums } from '../fsutil';
import { CIFAR10_CLASSES, readCifarClasses } from '../data/cifar10';
import { decodeImageAtSize } from '../data/decode';
import { presetForModel } from '../model/presets';
import { loadModel, tfjsWeightsSha256 } from '../model/io';
import { inferenceEngine, OnnxFile, openOnnxFile, runModel, runSession } from '../model/engine';
import { preprocess } from '../preprocess';
import { readOnnxFileInfo } from '../model/onnx';
import { topK } from './metrics';
import { describeDivergence, readDivergence } from './divergence';

export interface Predictor {
  runDir: string;
  model: tf.LayersModel;
  classes: string[];
  mode: PreprocessMode;
  /** Side of the square the model takes (the stored image size). */
  size: number;
  /** The run's exported model.onnx, when inference runs on ONNX Runtime and the file is up to date. */
  onnx?: OnnxFile;
  /** Images above this many pixels are refused (the run's data.maxImagePixels; absent: the default). */
  maxImagePixels?: number;
  /** Why the run's model.onnx is not used although ONNX Runtime is the engine (stale, damaged, not a file). */
  onnxSkipped?: string;
}

export interface Prediction {
  file: string;
  width: number;
  height: number;
  top: { class: string; probability: number }[];
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string');
}

/**
 * Class names of a run, from what it recorded (evaluation.json, train-summary.json, model metadata),
 * else from its data: CIFAR-10's meta file or standard names, or an image folder's subfolders.
 */
export function runClasses(runDir: string, profile: Profile): string[] {
  for (const f of ['evaluation.json', 'train-summary.json', 'classes.json']) {
    const j = readJsonIfExists<unknown>(path.join(runDir, f));
    const c = Array.isArray(j) ? j : (j as { classes?: unknown } | null)?.classes;
    if (isStringArray(c)) return c;
  }
  const meta = (readJsonObjectIfExists(path.join(runDir, 'model', 'model.json'))?.userDefinedMetadata ?? {}) as Record<string, unknown>;
  if (isStringArray(meta.classes)) return meta.classes;
  if (profile.data.source === 'cifar10') {
    const dir = profile.data.dir || process.env.CIFAR10_DIR;
    return dir && fs.existsSync(dir) ? readCifarClasses(dir) : [...CIFAR10_CLASSES];
  }
  const dir = profile.data.dir;
  if (dir && fs.existsSync(dir)) {
    const root = fs.existsSync(path.join(dir, 'train')) ? path.join(dir, 'train') : dir;
    const names = fs.readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
    if (names.length) return names;
  }
  throw new Error(`${runDir}: cannot tell the class names (no evaluation.json/train-summary.json with classes, and the data folder ${dir ?? '(none)'} is not there)`);
}

/** The backbone's preprocessing: recorded in the model's metadata, else the preset of the profile's arch. */
export function runPreprocessMode(runDir: string, profile: Profile): PreprocessMode {
  const meta = (readJsonObjectIfExists(path.join(runDir, 'model', 'model.json'))?.userDefinedMetadata ?? {}) as Record<string, unknown>;
  const m = meta.preprocess;
  if (m === 'caffe' || m === 'unit' || m === 'torch' || m === 'tf' || m === 'none') return m;
  return presetForModel(profile.model).preprocess;
}

export async function loadPredictor(runDir: string): Promise<Predictor> {
  const dir = path.resolve(runDir);
  const diverged = readDivergence(dir);
  if (diverged) throw new Error(`${dir}: ${describeDivergence(diverged)}; its model cannot predict. Train it again (a lower learning rate, or gradient clipping)`);
  const profile = readRunProfile(dir);
  const modelDir = path.join(dir, 'model');
  if (!fs.existsSync(path.join(modelDir, 'model.json'))) {
    throw new Error(`${modelDir}: no trained model (model.json) in this run; train it first (npm start or the train command)`);
  }
  verifyPublished(dir);
  const model = await loadModel(modelDir);
  const classes = runClasses(dir, profile);
  const n = model.outputs[0].shape[model.outputs[0].shape.length - 1];
  if (n !== classes.length) throw new Error(`${modelDir}: the model predicts ${n} classes but the run names ${classes.length} (${classes.join(', ')})`);
  const inShape = model.inputs[0].shape;
  const size = typeof inShape[1] === 'number' ? inShape[1] : profile.data.imageSize;
  const exported = await exportedFile(dir);
  return { runDir: dir, model, classes, mode: runPreprocessMode(dir, profile), size, maxImagePixels: profile.data.maxImagePixels, ...exported };
}

/** A published folder's files match the checksums published.json recorded (folders published before they were recorded: nothing to check). */
function verifyPublished(dir: string): void {
  const file = path.join(dir, 'published.json');
  if (!fs.existsSync(file)) return;
  const checksums = readJsonFile<{ checksums?: Record<string, { bytes: number; sha256: string }> }>(file, 'the publication record').checksums;
  if (checksums) verifyChecksums(dir, checksums, file, 'it was published');
}

/**
 * <run>/model.onnx when the engine is ORT and the file was made from the TF.js model's weights as
 * they are now (the sha256 in its metadata; files exported before that was recorded: not older than
 * model.json). A published folder's files keep working after a git clone, which sets every mtime anew.
 */
async function exportedFile(dir: string): Promise<{ onnx?: OnnxFile; onnxSkipped?: string }> {
  const file = path.join(dir, 'model.onnx');
  if (inferenceEngine({ quiet: true }).name !== 'onnx' || !fs.existsSync(file)) return {};
  if (!fs.statSync(file).isFile()) return { onnxSkipped: `${file} is not a file (expected the ONNX file export writes)` };
  let madeFrom: string | undefined;
  try {
    madeFrom = readOnnxFileInfo(file).metadata.tfjs_weights_sha256;
  } catch (e) {
    return { onnxSkipped: `${file} cannot be read as an ONNX model (${(e as Error).message})` };
  }
  if (madeFrom !== undefined && madeFrom !== tfjsWeightsSha256(path.join(dir, 'model'))) {
    return { onnxSkipped: `${file} was exported from other weights than model/weights.bin holds now (export again to use it)` };
  }
  if (madeFrom === undefined && fs.statSync(file).mtimeMs < fs.statSync(path.join(dir, 'model', 'model.json')).mtimeMs) {
    return { onnxSkipped: `${file} is older than model/model.json (export again to use it)` };
  }
  try {
    return { onnx: await openOnnxFile(file) };
  } catch (e) {
    return { onnxSkipped: `ONNX Runtime cannot open ${file} (${(e as Error).message})` };
  }
}

/**
 * The model's input for one file before preprocessing: [1, size, size, 3] pixels 0..255, decoded by
 * the same rule as the training images (data/decode.ts). The caller disposes it.
 */
export async function predictorInput(p: Pick<Predictor, 'size' | 'maxImagePixels'>, file: string): Promise<{ raw: tf.Tensor4D; width: number; height: number }> {
  const img = await decodeImageAtSize(file, p.size, { maxPixels: p.maxImagePixels, limitName: "the run's data.maxImagePixels" });
  return { raw: tf.tensor4d(Float32Array.from(img.data), [1, p.size, p.size, 3]), width: img.width, height: img.height };
}

/** Top-k classes of one image file. A file that cannot be decoded fails with its name in the message. */
export async function predictFile(p: Predictor, file: string, k = 3): Promise<Prediction> {
  const { raw, ...img } = await predictorInput(p, file);
  const x = p.onnx?.rawInput ? raw : tf.tidy(() => preprocess(raw, p.mode));
  const probs = await (p.onnx ? runSession(p.onnx.session, x) : runModel(p.model, x)).finally(() => tf.dispose([raw, x]));
  let values: Float32Array;
  try {
    values = (await probs.data()) as Float32Array;
  } finally {
    probs.dispose();
  }
  // A diverged model gives NaN; "airplane NaN%" is no answer.
  const bad = Array.from(values).findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    // The run records no divergence (loadPredictor refuses those), so this is not called one: its weights hold non-finite values.
    throw new Error(
      `${file}: the model of ${p.runDir} gives a non-finite probability (${values[bad]} for ${p.classes[bad] ?? `class ${bad}`}): ` +
        `its weights hold NaN or infinite values (${path.join(p.runDir, 'model', 'weights.bin')}), so it cannot predict`,
    );
  }
  const top = topK(values, 0, p.classes.length, Math.min(k, p.classes.length)).map((t) => ({ class: p.classes[t.index], probability: t.probability }));
  return { file, width: img.width, height: img.height, top };
}
