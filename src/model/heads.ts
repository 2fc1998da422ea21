/**
 * Heads: what sits on the base's features.
 *   seed - the article's: Dense(numClasses, softmax) on the backbone's 1000-way softmax output.
 *   gap  - the standard transfer head: (global average pooling is the base's last layer) optional
 *          dropout, Dense(numClasses, softmax).
 *   none - the bare backbone: its ImageNet probabilities pass through (a softmax for logit outputs).
 */
import * as tf from '@tensorflow/tfjs';
import type { HeadKind } from '../config';

export interface HeadOptions {
  /** Dropout rate before the classifier ('gap' head); 0 or absent: none. */
  dropout?: number;
  /** What the base outputs: probabilities already, or logits still needing a softmax. */
  baseOutput: 'probabilities' | 'logits';
}

export function buildHead(kind: HeadKind, featureShape: number[], numClasses: number, opts: HeadOptions): tf.LayersModel {
  const input = tf.input({ shape: featureShape, name: 'features' });
  let x: tf.SymbolicTensor = input;
  const softmaxIfLogits = () => {
    if (opts.baseOutput === 'logits') x = tf.layers.activation({ activation: 'softmax', name: 'imagenet_softmax' }).apply(x) as tf.SymbolicTensor;
  };
  switch (kind) {
    case 'seed':
      if (featureShape.length !== 1) throw new Error(`head 'seed' needs the backbone's class vector, got features of shape [${featureShape}]`);
      softmaxIfLogits();
      x = tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'dense' }).apply(x) as tf.SymbolicTensor;
      break;
    case 'gap':
      if (featureShape.length !== 1) throw new Error(`head 'gap' expects pooled features, got shape [${featureShape}]`);
      if (opts.dropout && opts.dropout > 0) x = tf.layers.dropout({ rate: opts.dropout, name: 'dropout' }).apply(x) as tf.SymbolicTensor;
      x = tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'dense' }).apply(x) as tf.SymbolicTensor;
      break;
    case 'none':
      if (opts.baseOutput === 'logits') softmaxIfLogits();
      else x = tf.layers.activation({ activation: 'linear', name: 'identity' }).apply(x) as tf.SymbolicTensor;
      break;
    default:
      throw new Error(`model.head '${kind as string}': expected 'seed', 'gap' or 'none'`);
  }
  return tf.model({ inputs: input, outputs: x, name: 'head' });
}
