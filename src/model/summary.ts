/**
 * What a model is made of: one row per layer (name, type, output shape, params, trainable), as
 * Keras' summary shows it, for tables in notebooks and the command line.
 */
import * as tf from '@tensorflow/tfjs';
import type { DataFrame } from 'nodejs-polars';
import { isModel } from './freeze';

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
