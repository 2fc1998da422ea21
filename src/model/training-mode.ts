/**
 * tfjs-layers drops `training` at every nested model: Container.call() runs its graph with each
 * node's stored call arguments, so model.apply(x, {training: true}) leaves BatchNormalization and
 * Dropout inside the nested base and head in inference mode. Keras passes training down. This
 * installs, once per layer, a call() that takes the training flag from a switch we set around a
 * step; the MODEL stage's frozen-BatchNormalization wrapper sits inside it and still forces
 * inference for frozen layers (Keras semantics).
 */
import * as tf from '@tensorflow/tfjs';
import { leafLayers } from './freeze';

const SWITCHED = Symbol.for('tlwb.trainingSwitch');
let current: boolean | undefined;

type CallFn = (inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];

/** Makes every leaf layer of `model` follow withTraining(). Idempotent. */
export function installTrainingSwitch(model: tf.LayersModel): void {
  for (const layer of leafLayers(model)) {
    const tagged = layer as unknown as { [SWITCHED]?: boolean; call: CallFn };
    if (tagged[SWITCHED]) continue;
    const inner = tagged.call.bind(layer) as CallFn;
    tagged.call = (inputs, kwargs) => inner(inputs, current === undefined ? kwargs : { ...(kwargs ?? {}), training: current });
    tagged[SWITCHED] = true;
  }
}

/** Runs `fn` (synchronously) with every switched layer in training (true) or inference (false) mode. */
export function withTraining<T>(training: boolean, fn: () => T): T {
  const before = current;
  current = training;
  try {
    return fn();
  } finally {
    current = before;
  }
}
