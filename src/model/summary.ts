/**
 * What a model is made of: one row per layer (name, type, output shape, params, trainable), as
 * Keras' summary shows it, for tables in notebooks and the command line.
 */
import * as tf from '@tensorflow/tfjs';
import type { DataFrame } from 'nodejs-polars';
import { countParams, isModel } from './freeze';
import type { Row } from '../display';
import { presetEnv, presetForModel, tfjsSource } from './presets';
import type { ModelConfig } from '../config';
import type { BuiltModel } from './build';
import { loadModel } from './io';

export interface LayerRow {
  name: string;
  type: string;
  outputShape: string;
  params: number;
  trainable: boolean;
  /** Nesting path, e.g. 'resnet50' for a layer inside the base. */
  parent: string;
}

function shapeText(shape: tf.Shape | tf.Shape[]): string {
  const one = (s: tf.Shape) => `(${s.map((d) => (d === null ? 'None' : d)).join(', ')})`;
  return Array.isArray(shape[0]) ? (shape as tf.Shape[]).map(one).join(', ') : one(shape as tf.Shape);
}

function paramCount(layer: tf.layers.Layer): number {
  return layer.weights.reduce((s, w) => s + w.shape.reduce((p: number, d) => p * (d as number), 1), 0);
}

/**
 * Rows for `model`'s layers. `expand` lists the layers inside nested models (base, head) instead of
 * one row per nested model. A layer counts as trainable when it and every model around it are.
 */
export function layerRows(model: tf.LayersModel, opts: { expand?: boolean } = {}): LayerRow[] {
  const rows: LayerRow[] = [];
  const visit = (m: tf.LayersModel, parent: string, parentTrainable: boolean) => {
    for (const layer of m.layers) {
      // TF.js marks InputLayers non-trainable; they have nothing to train, so they follow their model.
      const trainable = parentTrainable && (layer.trainable || layer.getClassName() === 'InputLayer');
      if (opts.expand && isModel(layer)) {
        visit(layer, parent ? `${parent}/${layer.name}` : layer.name, trainable);
        continue;
      }
      rows.push({
        name: layer.name,
        type: layer.getClassName(),
        outputShape: shapeText(layer.outputShape),
        params: paramCount(layer),
        trainable,
        parent,
      });
    }
  };
  visit(model, '', model.trainable);
  return rows;
}

/** layerRows as a nodejs-polars DataFrame (columns: parent, name, type, outputShape, params, trainable). */
export function layerTable(model: tf.LayersModel, opts: { expand?: boolean } = {}): DataFrame {
  const pl = require('nodejs-polars') as typeof import('nodejs-polars');
  const rows = layerRows(model, opts);
  return pl.DataFrame({
    parent: rows.map((r) => r.parent),
    name: rows.map((r) => r.name),
    type: rows.map((r) => r.type),
    outputShape: rows.map((r) => r.outputShape),
    params: rows.map((r) => r.params),
    trainable: rows.map((r) => r.trainable),
  });
}

/** Parameters and layer counts per layer type (nested models expanded), largest first. */
export function paramsByType(model: tf.LayersModel): DataFrame {
  const pl = require('nodejs-polars') as typeof import('nodejs-polars');
  const byType = new Map<string, { layers: number; params: number }>();
  for (const r of layerRows(model, { expand: true })) {
    const t = byType.get(r.type) ?? { layers: 0, params: 0 };
    t.layers++;
    t.params += r.params;
    byType.set(r.type, t);
  }
  const rows = [...byType.entries()].sort((a, b) => b[1].params - a[1].params || b[1].layers - a[1].layers);
  return pl.DataFrame({ type: rows.map((r) => r[0]), layers: rows.map((r) => r[1].layers), params: rows.map((r) => r[1].params) });
}

// ---------------------------------------------------------------------------------------------
// One table or one sentence per notebook cell (notebook 03)

/** Where a URL's file comes from, without the path: enough to say "a download" and from whom. */
function host(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** What a model section's backbone is: input, preprocessing, where its ImageNet weights are found, where 'gap' cuts it. */
export function presetTable(model: Pick<ModelConfig, 'arch' | 'onnx'>): Row[] {
  const preset = presetForModel(model);
  const env = presetEnv(preset).filter((k) => process.env[k]);
  let weights: string;
  if (preset.kind === 'keras-resnet') {
    weights = env.length ? `${env[0]}=${process.env[env[0]]}` : `Keras' .h5 (${preset.weightsEnv}, data/downloads, else a download from ${host(preset.weights.top.url)})`;
  } else if (preset.kind === 'onnx') {
    weights = preset.source.file ?? `a download from ${host(preset.source.url ?? '')}${preset.source.sha256 ? ' (sha256 checked)' : ''}`;
  } else {
    const source = tfjsSource(preset);
    weights = /^https?:/.test(source) ? `a download from ${host(source)}` : source;
  }
  const kinds = { 'keras-resnet': 'Keras ResNet (built here, .h5 weights)', tfjs: 'TF.js layers model', onnx: 'ONNX graph (imported as TF.js layers)' };
  const rows: Row[] = [
    { field: 'kind', value: kinds[preset.kind] },
    { field: 'input size', value: preset.inputSize },
    { field: 'preprocessing', value: preset.preprocess },
    { field: 'ImageNet weights', value: weights },
    { field: 'class order', value: preset.classOrder },
  ];
  if (preset.kind === 'tfjs' && preset.cutLayer) rows.push({ field: "'gap' head cuts at", value: preset.cutLayer });
  if (preset.kind === 'onnx') rows.push({ field: "'gap' head cuts at", value: preset.cut ?? "the importer's last spatial feature map" });
  return rows;
}

/** One sentence for a built model: what it is, at which size, from which weights. */
export function describeBuilt(built: BuiltModel): string {
  const { trainableParams, params } = countParams(built.model);
  return (
    `${built.arch} with head '${built.headKind}' at ${built.inputSize} px ('${built.preprocess}' preprocessing inside), ` +
    `weights from ${built.weightsSource}: ${params.toLocaleString('en-US')} parameters, ${trainableParams.toLocaleString('en-US')} trainable`
  );
}

/**
 * Saves nothing: loads the model saved in `dir` and compares it with `model` on two random images at
 * `imageSize`; one sentence with the largest difference (0 when the folder holds the same network).
 */
export async function reloadCheck(model: tf.LayersModel, dir: string, imageSize: number): Promise<string> {
  const reloaded = await loadModel(dir);
  try {
    const diff = tf.tidy(() => {
      const x = tf.randomUniform([2, imageSize, imageSize, 3]);
      return tf.max(tf.abs(tf.sub(model.predict(x) as tf.Tensor, reloaded.predict(x) as tf.Tensor)));
    });
    const max = (await diff.data())[0];
    diff.dispose();
    return `reloaded ${dir}: largest difference from the model in memory ${max} on 2 random images`;
  } finally {
    reloaded.dispose();
  }
}
