/**
 * buildModel: a profile's model section -> input (stored size) -> resize -> base -> head, where
 * base and head are nested tf.LayersModels (so a trainer can cache base features and fit the head
 * alone) and the base carries the preset's ImageNet weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { paths } from '../config';
import type { HeadKind, ModelConfig, PreprocessMode } from '../config';
import { download } from '../data/download';
import { applyKerasBatchNormSemantics } from './freeze';
import { buildHead } from './heads';
import { ImageResize } from './layers';
import { importOnnx } from './onnx/import';
import { KerasResNetPreset, OnnxPreset, Preset, presetForModel, TfjsPreset, tfjsSource } from './presets';
import { RESNETS } from './resnet';
import { cutModel, isUrl, loadTfjsModel } from './tfjs-backbone';
import { LoadH5Report, loadWeightsH5 } from './weights-h5';

export interface BuiltModel {
  /** [null, S, S, 3] at the stored size, preprocessed -> class probabilities. */
  model: tf.LayersModel;
  /** [inputSize, inputSize, 3] -> features; nested in `model`. */
  base: tf.LayersModel;
  /** features -> probabilities; nested in `model`. */
  head: tf.LayersModel;
  preprocess: PreprocessMode;
  inputSize: number;
  arch: string;
  headKind: HeadKind;
  /** Where the base's weights came from: a file/folder/URL, or 'random'. */
  weightsSource: string;
  /** For Keras .h5 weights: which layers loaded. */
  weightsReport?: LoadH5Report;
}

export interface BuildOptions {
  /** Side of the stored images the model takes (default 32, CIFAR-10). */
  storedSize?: number;
  /** A local copy of the weights (a .h5 for ResNets, a model.json folder for TF.js presets); overrides cfg.weights. */
  weightsFile?: string;
  /** No download messages. */
  quiet?: boolean;
  /**
   * Initial values of a Keras ResNet built without weights: 'keras' (default, random as in Keras) or
   * 'zeros' (no random draws: for structure and parameter counts only). Loaded weights always skip the draws.
   */
  init?: 'keras' | 'zeros';
  /** Head 'none' keeps the backbone's ImageNet classifier even where the preset's bare backbone drops it (the ImageNet check). */
  imagenetTop?: boolean;
}

/** The .h5 to load for a Keras ResNet: local file/env/cache, else the official download (md5-checked). */
export async function resolveKerasWeights(preset: KerasResNetPreset, includeTop: boolean, spec: string, opts: { quiet?: boolean } = {}): Promise<string> {
  if (spec !== 'imagenet') {
    if (isUrl(spec)) return download(spec, path.join(paths().downloads, path.basename(new URL(spec).pathname)), { quiet: opts.quiet });
    if (!fs.existsSync(spec)) throw new Error(`model.weights '${spec}': no such file (expected 'imagenet', 'none', a .h5 path or a URL)`);
    return spec;
  }
  // A with-top file also serves a no-top base (its extra 'predictions' layer is ignored).
  const envNames = includeTop ? [preset.weightsEnv] : [`${preset.weightsEnv}_NOTOP`, preset.weightsEnv];
  for (const name of envNames) {
    const value = process.env[name];
    if (!value) continue;
    if (!fs.existsSync(value)) throw new Error(`${name}=${value}: no such file`);
    return value;
  }
  const wanted = includeTop ? [preset.weights.top] : [preset.weights.notop, preset.weights.top];
  for (const w of wanted) {
    const cached = path.join(paths().downloads, path.basename(w.url));
    if (fs.existsSync(cached)) return download(w.url, cached, { md5: w.md5, quiet: opts.quiet });
  }
  const w = wanted[0];
  try {
    return await download(w.url, path.join(paths().downloads, path.basename(w.url)), { md5: w.md5, quiet: opts.quiet });
  } catch (e) {
    throw new Error(
      `${preset.arch} ImageNet weights: download failed (${(e as Error).message}). ` +
        `Put the file ${path.basename(w.url)} in ${paths().downloads}, or set ${envNames[0]} to a local copy, or use model.weights=none`,
      { cause: e },
    );
  }
}

async function buildKerasBase(preset: KerasResNetPreset, head: HeadKind, inputSize: number, weights: string, opts: BuildOptions) {
  const includeTop = head !== 'gap';
  const loading = !!opts.weightsFile || weights !== 'none';
  // Random draws for 25M values take seconds; skip them when the file overwrites every value anyway.
  const init = loading ? 'zeros' : (opts.init ?? 'keras');
  const base = RESNETS[preset.arch]({ includeTop, inputShape: [inputSize, inputSize, 3], pooling: includeTop ? null : 'avg', init });
  let weightsSource = init === 'zeros' ? 'zeros' : 'random';
  let weightsReport: LoadH5Report | undefined;
  if (loading) {
    const file = opts.weightsFile ?? (await resolveKerasWeights(preset, includeTop, weights, opts));
    weightsReport = await loadWeightsH5(base, file);
    weightsSource = file;
  }
  return { base, weightsSource, weightsReport, baseOutput: 'probabilities' as const };
}

async function buildTfjsBase(preset: TfjsPreset, cfg: ModelConfig, inputSize: number, weights: string, opts: BuildOptions) {
  const head = cfg.head;
  if (preset.minInputSize && inputSize < preset.minInputSize) {
    throw new Error(`model.inputSize ${inputSize}: ${preset.arch} needs at least ${preset.minInputSize} px (its total stride)`);
  }
  const explicit = opts.weightsFile ?? (weights !== 'imagenet' && weights !== 'none' ? weights : undefined);
  const source = tfjsSource(preset, explicit);
  const full = await loadTfjsModel(source, { inputSize, weights: weights !== 'none' || !!opts.weightsFile });
  const name = preset.arch.replace(/[^A-Za-z0-9_]/g, '_').replace(/^_+/, '') || 'backbone';
  let base: tf.LayersModel;
  const cut = cfg.cutLayer || preset.cutLayer || full.layers[full.layers.length - 2].name;
  let baseOutput = preset.output;
  if (head === 'gap') {
    const rank = cutModel(full, cut).outputs[0].shape.length; // cutModel names the layers when `cut` is unknown
    base = cutModel(full, cut, { pooling: rank === 4 ? 'avg' : null, name });
  } else if (head === 'none' && preset.bareBackbone === 'cut' && !opts.imagenetTop) {
    // Keras' include_top=False: the feature maps at the cut, passed through unchanged.
    base = cutModel(full, cut, { name });
    baseOutput = 'probabilities';
  } else {
    base = cutModel(full, full.layers[full.layers.length - 1].name, { name });
  }
  return { base, weightsSource: weights === 'none' && !opts.weightsFile ? 'random' : source, weightsReport: undefined, baseOutput };
}

/** The .onnx file of an ONNX preset: local (a weights file option wins), else downloaded (sha256-checked when known). */
export async function resolveOnnxFile(preset: OnnxPreset, opts: { weightsFile?: string; quiet?: boolean } = {}): Promise<string> {
  const local = opts.weightsFile ?? preset.source.file;
  if (local) {
    if (!fs.existsSync(local)) throw new Error(`model.onnx.file '${local}': no such file`);
    return local;
  }
  const url = preset.source.url!;
  const dest = path.join(paths().downloads, path.basename(new URL(url).pathname));
  try {
    return await download(url, dest, { sha256: preset.source.sha256, quiet: opts.quiet });
  } catch (e) {
    throw new Error(`${preset.arch}: ONNX download failed (${(e as Error).message}). Put the file at ${dest}, or set model.onnx.file to a local copy`, { cause: e });
  }
}

async function buildOnnxBase(preset: OnnxPreset, head: HeadKind, inputSize: number, opts: BuildOptions) {
  const file = await resolveOnnxFile(preset, opts);
  const name = preset.arch.replace(/^onnx:/, '').replace(/[^A-Za-z0-9_]/g, '_').replace(/^_+/, '') || 'onnx';
  const imported = importOnnx(fs.readFileSync(file), { origin: file, inputSize, name: `${name}_full` });
  const full = imported.model;
  let base: tf.LayersModel;
  if (head === 'gap') {
    const cut = preset.cut ?? imported.cutCandidates[0]?.node;
    if (!cut) throw new Error(`${file}: no spatial feature map to cut at; set model.onnx.cut to a node name`);
    const pooled = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(imported.featuresAt(cut)) as tf.SymbolicTensor;
    base = tf.model({ inputs: full.inputs, outputs: pooled, name });
    // The classifier after the cut is not part of the base: free its weights.
    const kept = new Set(base.layers);
    for (const layer of full.layers) if (!kept.has(layer)) layer.dispose();
  } else {
    base = tf.model({ inputs: full.inputs, outputs: full.outputs, name });
  }
  return { base, weightsSource: file, weightsReport: undefined, baseOutput: preset.output };
}

/** Builds the profile's model (see BuiltModel). `numClasses` sizes the head ('none' keeps the backbone's classes). */
export async function buildModel(cfg: ModelConfig, numClasses: number, opts: BuildOptions = {}): Promise<BuiltModel> {
  const preset: Preset = presetForModel(cfg);
  const inputSize = cfg.onnx?.inputSize ?? cfg.inputSize ?? preset.inputSize;
  const storedSize = opts.storedSize ?? 32;
  const weights = cfg.weights ?? 'imagenet';
  const made =
    preset.kind === 'keras-resnet'
      ? await buildKerasBase(preset, cfg.head, inputSize, weights, opts)
      : preset.kind === 'onnx'
        ? await buildOnnxBase(preset, cfg.head, inputSize, opts)
        : await buildTfjsBase(preset, cfg, inputSize, weights, opts);
  const { base } = made;
  const featureShape = (base.outputs[0].shape as (number | null)[]).slice(1) as number[];
  const head = buildHead(cfg.head, featureShape, numClasses, { dropout: cfg.dropout, baseOutput: made.baseOutput });

  const image = tf.input({ shape: [storedSize, storedSize, 3], name: 'image' });
  const resized = new ImageResize({ height: inputSize, width: inputSize, name: 'resize' }).apply(image) as tf.SymbolicTensor;
  const features = base.apply(resized) as tf.SymbolicTensor;
  const probs = head.apply(features) as tf.SymbolicTensor;
  const model = tf.model({ inputs: image, outputs: probs, name: `${base.name}_${cfg.head}` });
  applyKerasBatchNormSemantics(model);
  return {
    model,
    base,
    head,
    preprocess: preset.preprocess,
    inputSize,
    arch: preset.kind === 'onnx' ? preset.arch : cfg.arch,
    headKind: cfg.head,
    weightsSource: made.weightsSource,
    weightsReport: made.weightsReport,
  };
}

/** Finds base and head inside a model built by buildModel (e.g. after loadModel). */
export function splitBuilt(model: tf.LayersModel, info: { preprocess: PreprocessMode; arch: string; headKind: HeadKind }): BuiltModel {
  const nested = model.layers.filter((l) => Array.isArray((l as unknown as { layers?: unknown }).layers)) as tf.LayersModel[];
  if (nested.length !== 2) throw new Error(`model '${model.name}': expected a nested base and head, found ${nested.length} nested models`);
  const [base, head] = nested;
  const inputSize = (base.inputs[0].shape[1] as number) ?? 0;
  return { model, base, head, inputSize, weightsSource: 'loaded', ...info };
}
