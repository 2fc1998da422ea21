/**
 * Graph surgery on a built model (input -> base -> head): the stable weight order that indexes a
 * checkpoint, and the split of the model into a frozen part computed once (the feature cache) and
 * the part a phase trains.
 */
import * as tf from '@tensorflow/tfjs';
import type { Runnable } from './engine';
import { leafLayers } from './freeze';
import { withTraining } from './training-mode';

/** What the loop needs of a built model (the MODEL stage's BuiltModel satisfies it). */
export interface TrainableModel {
  model: tf.LayersModel;
  base: tf.LayersModel;
  head: tf.LayersModel;
  preprocess: string;
  inputSize: number;
  arch: string;
}

/**
 * Every weight of `model` in a fixed order (leaf layer by leaf layer, as created). model.weights is
 * trainable-first, so its order changes with the trainable set and cannot index a checkpoint.
 */
export function stableWeights(model: tf.LayersModel): tf.LayerVariable[] {
  const seen = new Set<tf.LayerVariable>();
  for (const l of leafLayers(model)) {
    const own = l as unknown as { _trainableWeights: tf.LayerVariable[]; _nonTrainableWeights: tf.LayerVariable[] };
    for (const w of [...own._trainableWeights, ...own._nonTrainableWeights]) seen.add(w);
  }
  return [...seen];
}

/** A copy of some weights' values, to write back later (a probe, a sweep, the best epoch so far). */
export interface WeightsSnapshot {
  /** The copies, in the order of the weights (owned by the snapshot until disposed). */
  readonly tensors: tf.Tensor[];
  /** Writes the copies back into the weights. */
  restore(): void;
  dispose(): void;
}

/** Copies the current values of `weights`; `tensors` adopts existing copies instead (a checkpoint's). */
export function snapshotWeights(weights: tf.LayerVariable[], tensors: tf.Tensor[] = weights.map((w) => tf.clone(w.read()))): WeightsSnapshot {
  return {
    tensors,
    restore: () => weights.forEach((w, i) => w.write(tensors[i])),
    dispose: () => tf.dispose(tensors),
  };
}

/** The frozen part and the trained part of the model for a cached phase. */
export interface CacheSplit {
  extract: (xs: tf.Tensor) => tf.Tensor;
  headApply: (features: tf.Tensor, training: boolean) => tf.Tensor;
  /** Names of the parameter-free head layers moved into the cached part. */
  moved: string[];
  /** The base layer the trained part starts at, when the cut is inside the base. */
  cut?: string;
  /** The weights the cached part computes with: they key the cache. */
  frozenWeights: tf.LayerVariable[];
  /** The cached part as a chain of layers, for the inference engine (ONNX Runtime or TF.js). */
  frozen: Runnable;
}

const PARAM_FREE_POOLS = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten']);

/**
 * model = input -> (resize) -> base -> head. The cached part runs every layer of `model` up to and
 * including the base, in inference mode. A leading global pooling of the head has no weights, so
 * it moves into the cached part too: a 4x4x1024 map shrinks to 1024 numbers per image.
 */
export function cacheSplit(built: TrainableModel, cutAt?: string): CacheSplit {
  const layers = built.model.layers;
  const baseIndex = layers.findIndex((l) => l === (built.base as unknown) || l.name === built.base.name);
  if (baseIndex < 0) throw new Error(`feature cache: the base '${built.base.name}' is not a layer of model '${built.model.name}'`);
  const beforeBase = layers.slice(0, baseIndex).filter((l) => l.getClassName() !== 'InputLayer');
  if (cutAt !== undefined) return cutInsideBase(built, beforeBase, cutAt);
  const front = [...beforeBase, layers[baseIndex]];
  const headLayers = built.head.layers.filter((l) => l.getClassName() !== 'InputLayer');
  const isChain = headLayers.every((l) => l.inboundNodes.length === 1 && l.inboundNodes[0].inboundLayers.length <= 1);
  const moved: tf.layers.Layer[] = [];
  if (isChain) while (moved.length < headLayers.length - 1 && PARAM_FREE_POOLS.has(headLayers[moved.length].getClassName())) moved.push(headLayers[moved.length]);
  const rest = headLayers.slice(moved.length);
  return {
    extract: (xs) => withTraining(false, () => [...front, ...moved].reduce((x, l) => l.apply(x, { training: false }) as tf.Tensor, xs)),
    headApply: moved.length
      ? (f, training) => withTraining(training, () => rest.reduce((x, l) => l.apply(x, { training }) as tf.Tensor, f))
      : (f, training) => withTraining(training, () => built.head.apply(f, { training }) as tf.Tensor),
    moved: moved.map((l) => l.name),
    frozenWeights: stableWeights(built.base),
    frozen: [...front, ...moved],
  };
}

type GraphNode = { inputTensors: tf.SymbolicTensor[]; outputTensors: tf.SymbolicTensor[] };

/**
 * Cut inside the base, before layer `cutAt`: the cached part is everything below it (in inference
 * mode), the trained part re-runs the base's layers from `cutAt` on (the same layer objects, so the
 * full model gets their new weights) and then the head. Every layer from `cutAt` on may read only
 * tensors made at or after the cut: one tensor is cached per image.
 */
function cutInsideBase(built: TrainableModel, front: tf.layers.Layer[], cutAt: string): CacheSplit {
  const base = built.base;
  const index = base.layers.findIndex((l) => l.name === cutAt);
  if (index <= 0) throw new Error(`feature cache: no layer '${cutAt}' above the input of base '${base.name}' to cut at`);
  const node = (l: tf.layers.Layer) => l.inboundNodes[0] as unknown as GraphNode;
  const cutInputs = node(base.layers[index]).inputTensors;
  if (cutInputs.length !== 1) throw new Error(`feature cache: layer '${cutAt}' has ${cutInputs.length} inputs; cut at a layer with one`);
  const cutTensor = cutInputs[0];
  const suffix = base.layers.slice(index);
  const known = new Set<number>([cutTensor.id]);
  for (const l of suffix) {
    const missing = node(l).inputTensors.find((t) => !known.has(t.id));
    if (missing) throw new Error(`feature cache: layer '${l.name}' reads '${missing.name}' from below the cut at '${cutAt}'; cut at a layer whose input carries everything above it`);
    node(l).outputTensors.forEach((t) => known.add(t.id));
  }
  const baseOutput = base.outputs[0];
  if (!known.has(baseOutput.id)) throw new Error(`feature cache: the base's output is not computed from the cut at '${cutAt}'`);
  const below = tf.model({ inputs: base.inputs, outputs: cutTensor, name: `${base.name}_below_${cutAt}` });
  return {
    extract: (xs) => withTraining(false, () => below.apply(front.reduce((x, l) => l.apply(x, { training: false }) as tf.Tensor, xs), { training: false }) as tf.Tensor),
    headApply: (f, training) =>
      withTraining(training, () => {
        const values = new Map<number, tf.Tensor>([[cutTensor.id, f]]);
        for (const l of suffix) {
          const n = node(l);
          const inputs = n.inputTensors.map((t) => values.get(t.id)!);
          const out = l.apply(inputs.length === 1 ? inputs[0] : inputs, { training });
          (Array.isArray(out) ? out : [out]).forEach((o, i) => values.set(n.outputTensors[i].id, o as tf.Tensor));
        }
        return built.head.apply(values.get(baseOutput.id)!, { training }) as tf.Tensor;
      }),
    moved: [],
    cut: cutAt,
    // Only the layers below the cut: the cache stays valid while the layers above it train (resume).
    frozenWeights: stableWeights(below),
    frozen: [...front, below],
  };
}


/**
 * The layers that take the cached maps of a cut inside the base (`lower`) to the cached features of
 * the base's output (`upper`, a split without a cut): the base's layers from the cut on, then
 * `upper`'s moved pools - when they form a chain, each reading the one before (MobileNet's last
 * block; not a residual stage). One pass over the images then fills both caches: the cut's maps,
 * and from them the pooled features, instead of running the base twice. Undefined otherwise.
 */
export function chainFromCut(built: TrainableModel, lower: CacheSplit, upper: CacheSplit): tf.layers.Layer[] | undefined {
  if (lower.cut === undefined || upper.cut !== undefined) return undefined;
  const base = built.base;
  const index = base.layers.findIndex((l) => l.name === lower.cut);
  if (index <= 0) return undefined;
  const suffix = base.layers.slice(index);
  const node = (l: tf.layers.Layer) => l.inboundNodes[0] as unknown as GraphNode;
  const linked = suffix.every((l, i) => {
    const inputs = node(l).inputTensors;
    const outputs = node(l).outputTensors;
    if (inputs.length !== 1 || outputs.length !== 1) return false;
    return i === 0 || inputs[0].id === node(suffix[i - 1]).outputTensors[0].id;
  });
  if (!linked || node(suffix[suffix.length - 1]).outputTensors[0].id !== base.outputs[0].id) return undefined;
  const moved = upper.moved.map((name) => built.head.getLayer(name));
  return [...suffix, ...moved];
}
