/**
 * Any TF.js layers model (model.json + weight shards) as a backbone: from a folder on disk or an
 * http(s) URL, optionally at another input size, cut at a named layer.
 *
 * Pure @tensorflow/tfjs has no file:// loader in Node, so a small IOHandler reads model.json and its
 * shards from disk; URLs go through Node's global fetch.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { applyKerasBatchNormSemantics } from './freeze';
import './layers';
import './onnx/import-layers';

interface ModelJson {
  modelTopology: Record<string, unknown>;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  trainingConfig?: tf.io.TrainingConfig;
  userDefinedMetadata?: Record<string, unknown>;
}

export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** model.json location for a folder, a model.json path, or a URL. */
function modelJsonLocation(source: string): string {
  if (isUrl(source)) return source;
  const p = path.resolve(source);
  return fs.existsSync(p) && fs.statSync(p).isDirectory() ? path.join(p, 'model.json') : p;
}

async function readBytes(location: string, what: string): Promise<Uint8Array> {
  if (isUrl(location)) {
    let res: Response;
    try {
      res = await fetch(location);
    } catch (e) {
      throw new Error(`${location}: cannot fetch ${what} (${(e as Error).message}${(e as { cause?: Error }).cause ? `: ${(e as { cause: Error }).cause.message}` : ''})`, { cause: e });
    }
    if (!res.ok) throw new Error(`${location}: HTTP ${res.status} fetching ${what}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  if (!fs.existsSync(location)) throw new Error(`${location}: ${what} not found`);
  return fs.readFileSync(location);
}

function resolveRelative(base: string, rel: string): string {
  return isUrl(base) ? new URL(rel, base).href : path.join(path.dirname(base), rel);
}

/** Reads model.json + shards into ModelArtifacts (the shards concatenated in manifest order). */
export async function readModelArtifacts(source: string, opts: { weights?: boolean } = {}): Promise<tf.io.ModelArtifacts> {
  const location = modelJsonLocation(source);
  const text = Buffer.from(await readBytes(location, 'model.json')).toString('utf8');
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch (e) {
    throw new Error(`${location}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!json.modelTopology || typeof json.modelTopology !== 'object') {
    throw new Error(`${location}: no 'modelTopology': not a TF.js layers model.json`);
  }
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    trainingConfig: json.trainingConfig,
    userDefinedMetadata: json.userDefinedMetadata as tf.io.ModelArtifacts['userDefinedMetadata'],
  };
  if (opts.weights !== false && json.weightsManifest) {
    const specs: tf.io.WeightsManifestEntry[] = [];
    const buffers: Uint8Array[] = [];
    for (const group of json.weightsManifest) {
      specs.push(...group.weights);
      for (const p of group.paths) buffers.push(await readBytes(resolveRelative(location, p), `weight shard '${p}' of ${location}`));
    }
    const total = buffers.reduce((s, b) => s + b.byteLength, 0);
    const data = new Uint8Array(total);
    let offset = 0;
    for (const b of buffers) {
      data.set(b, offset);
      offset += b.byteLength;
    }
    artifacts.weightSpecs = specs;
    artifacts.weightData = data.buffer;
  }
  return artifacts;
}

/** An IOHandler that loads a model.json (+ shards) from a folder, file path or URL. */
export function modelSource(source: string, opts: { weights?: boolean; inputSize?: number } = {}): tf.io.IOHandler {
  return {
    load: async () => {
      const artifacts = await readModelArtifacts(source, opts);
      if (opts.inputSize) artifacts.modelTopology = withInputSize(artifacts.modelTopology as Record<string, unknown>, opts.inputSize, source);
      return artifacts;
    },
  };
}

/**
 * The same topology with a square input of `size` (fully convolutional models then run at any
 * resolution; a Flatten/Dense after the convolutions would not fit, and fails while loading).
 */
export function withInputSize(topology: Record<string, unknown>, size: number, origin = 'model.json'): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(topology)) as Record<string, unknown>;
  const config = ((copy.model_config as Record<string, unknown> | undefined)?.config ?? copy.config) as { layers?: { class_name: string; config: Record<string, unknown> }[] } | undefined;
  const inputs = config?.layers?.filter((l) => l.class_name === 'InputLayer') ?? [];
  if (inputs.length !== 1) throw new Error(`${origin}: expected one InputLayer to resize, found ${inputs.length}`);
  const cfg = inputs[0].config;
  const shape = (cfg.batch_input_shape ?? cfg.batchInputShape) as (number | null)[] | undefined;
  if (!shape || shape.length !== 4) throw new Error(`${origin}: InputLayer has no 4-D batch_input_shape`);
  const resized = [shape[0], size, size, shape[3]];
  if ('batch_input_shape' in cfg) cfg.batch_input_shape = resized;
  else cfg.batchInputShape = resized;
  return copy;
}

/** Loads a TF.js layers model from a folder, model.json path or URL (Keras BatchNormalization semantics applied). */
export async function loadTfjsModel(source: string, opts: { weights?: boolean; inputSize?: number } = {}): Promise<tf.LayersModel> {
  const model = await tf.loadLayersModel(modelSource(source, opts));
  applyKerasBatchNormSemantics(model);
  return model;
}

/**
 * The part of `model` from its input to the output of `layerName` (sharing the layers and weights),
 * optionally followed by global average pooling. Throws naming the layers when the name is unknown.
 */
export function cutModel(model: tf.LayersModel, layerName: string, opts: { pooling?: 'avg' | 'max' | null; name?: string } = {}): tf.LayersModel {
  let layer: tf.layers.Layer;
  try {
    layer = model.getLayer(layerName);
  } catch {
    const names = model.layers.map((l) => l.name);
    throw new Error(`cut layer '${layerName}' not in model '${model.name}' (layers: ${names.slice(-8).join(', ')} ...)`);
  }
  let out = layer.output as tf.SymbolicTensor;
  if (opts.pooling === 'avg') out = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(out) as tf.SymbolicTensor;
  if (opts.pooling === 'max') out = tf.layers.globalMaxPooling2d({ name: 'max_pool' }).apply(out) as tf.SymbolicTensor;
  return tf.model({ inputs: model.inputs, outputs: out, name: opts.name ?? model.name });
}
