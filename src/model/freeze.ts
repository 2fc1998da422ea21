/**
 * Freezing with Keras semantics.
 *
 * Keras: a layer with trainable=False gets no gradient updates, and a frozen BatchNormalization runs
 * in inference mode (moving statistics, no updates) even inside fit(). TF.js' BatchNormalization
 * ignores `trainable` for this: in training it normalises with batch statistics and keeps updating
 * its moving mean/variance (tfjs-layers normalization.ts, call(): only kwargs.training decides).
 * So every BatchNormalization gets an instance-level call() that forces training=false while the
 * layer, or a model around it, is not trainable. `trainable` is part of the saved layer config, and buildModel / loadModel /
 * loadTfjsModel apply this again, so the behaviour survives save and load.
 */
import * as tf from '@tensorflow/tfjs';
import type { BuiltModel } from './build';

type Kwargs = Record<string, unknown>;
type CallFn = (inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs) => tf.Tensor | tf.Tensor[];

/** Leaf layers of a model, nested models expanded, in order. */
export function leafLayers(model: tf.LayersModel): tf.layers.Layer[] {
  const out: tf.layers.Layer[] = [];
  for (const layer of model.layers) {
    if (isModel(layer)) out.push(...leafLayers(layer));
    else out.push(layer);
  }
  return out;
}

export function isModel(layer: tf.layers.Layer): layer is tf.LayersModel {
  return Array.isArray((layer as unknown as { layers?: unknown }).layers);
}

/** The models each patched BatchNormalization sits in (a layer can be shared, e.g. a cut backbone). */
const containersOf = new WeakMap<tf.layers.Layer, Set<tf.layers.Layer>>();

/**
 * Makes every BatchNormalization in `model` run in inference mode while it is frozen: when the layer
 * or any model around it has trainable=false (so `base.trainable = false` set directly works too,
 * as Keras' recursive setter would). Returns how many layers it newly patched.
 */
export function applyKerasBatchNormSemantics(model: tf.LayersModel): number {
  let patched = 0;
  const visit = (m: tf.LayersModel, ancestors: tf.layers.Layer[]) => {
    for (const layer of m.layers) {
      if (isModel(layer)) {
        visit(layer, [...ancestors, layer]);
        continue;
      }
      if (layer.getClassName() !== 'BatchNormalization') continue;
      let containers = containersOf.get(layer);
      if (!containers) {
        const set = new Set<tf.layers.Layer>();
        containers = set;
        containersOf.set(layer, set);
        const tagged = layer as unknown as { call: CallFn };
        const original = tagged.call.bind(layer) as CallFn;
        const frozen = () => !layer.trainable || [...set].some((c) => !c.trainable);
        tagged.call = (inputs, kwargs) => original(inputs, frozen() ? { ...kwargs, training: false } : kwargs);
        patched++;
      }
      ancestors.forEach((a) => containers!.add(a));
    }
  };
  visit(model, [model]);
  return patched;
}

/** Sets a layer and, for a nested model, the model first and then each of its layers (so none is clobbered). */
function setTrainableDeep(layer: tf.layers.Layer, trainable: boolean): void {
  layer.trainable = trainable;
  if (isModel(layer)) layer.layers.forEach((l) => setTrainableDeep(l, trainable));
}

export type TrainableSpec = boolean | { from: string };

/**
 * Keras semantics for the base: `true` trains all of it, `false` freezes all of it (its
 * BatchNormalization layers then run in inference mode), `{from: name}` freezes the layers before
 * `name` and trains `name` and everything after it. The head stays trainable. Compile the model
 * after calling this (TF.js collects the trainable weights at compile time).
 */
export function setBaseTrainable(built: Pick<BuiltModel, 'model' | 'base' | 'head'>, spec: TrainableSpec): void {
  applyKerasBatchNormSemantics(built.model);
  // A model's trainable setter rewrites its direct layers' weight flags, so parents go first.
  built.model.trainable = true;
  if (typeof spec === 'boolean') {
    setTrainableDeep(built.base, spec);
  } else {
    const layers = built.base.layers;
    const index = layers.findIndex((l) => l.name === spec.from);
    if (index < 0) {
      const names = layers.filter((l) => l.weights.length > 0).map((l) => l.name);
      throw new Error(
        `setBaseTrainable: no layer '${spec.from}' in base '${built.base.name}'; layers with weights include ${names.slice(0, 6).join(', ')}${names.length > 6 ? ', ...' : ''}`,
      );
    }
    built.base.trainable = true;
    layers.forEach((l, i) => setTrainableDeep(l, i >= index));
  }
  setTrainableDeep(built.head, true);
}

/** Trainable / non-trainable parameter counts, as Keras' summary reports them. */
export function countParams(model: tf.LayersModel): { params: number; trainableParams: number; nonTrainableParams: number } {
  const size = (w: tf.LayerVariable) => w.shape.reduce((p: number, d) => p * (d as number), 1);
  const trainableParams = model.trainableWeights.reduce((s, w) => s + size(w), 0);
  const nonTrainableParams = model.nonTrainableWeights.reduce((s, w) => s + size(w), 0);
  return { params: trainableParams + nonTrainableParams, trainableParams, nonTrainableParams };
}
