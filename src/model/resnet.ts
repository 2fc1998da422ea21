/**
 * ResNet (v1) as keras.applications.resnet builds it, in the tf.layers functional API:
 * small pure block functions, one generic builder, deterministic Keras layer names, so that
 * Keras' ImageNet .h5 files load by layer name (see weights-h5.ts).
 */
import * as tf from '@tensorflow/tfjs';

type SymbolicTensor = tf.SymbolicTensor;

/** Keras' ResNet BatchNormalization epsilon (not the 1e-3 default). */
export const BN_EPSILON = 1.001e-5;

/** Official Keras ImageNet weights, as keras.applications downloads them (URL + md5 of the file). */
export const KERAS_WEIGHTS_BASE = 'https://storage.googleapis.com/tensorflow/keras-applications/resnet/';

export interface WeightsFile {
  url: string;
  md5: string;
}

export const RESNET_WEIGHTS: Record<'resnet50' | 'resnet101' | 'resnet152', { top: WeightsFile; notop: WeightsFile }> = {
  resnet50: {
    top: { url: `${KERAS_WEIGHTS_BASE}resnet50_weights_tf_dim_ordering_tf_kernels.h5`, md5: '2cb95161c43110f7111970584f804107' },
    notop: { url: `${KERAS_WEIGHTS_BASE}resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`, md5: '4d473c1dd8becc155b73f8504c6f6626' },
  },
  resnet101: {
    top: { url: `${KERAS_WEIGHTS_BASE}resnet101_weights_tf_dim_ordering_tf_kernels.h5`, md5: 'f1aeb4b969a6efcfb50fad2f0c20cfc5' },
    notop: { url: `${KERAS_WEIGHTS_BASE}resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5`, md5: '88cf7a10940856eca736dc7b7e228a21' },
  },
  resnet152: {
    top: { url: `${KERAS_WEIGHTS_BASE}resnet152_weights_tf_dim_ordering_tf_kernels.h5`, md5: '100835be76be38e30d865e96f2aaae62' },
    notop: { url: `${KERAS_WEIGHTS_BASE}resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5`, md5: 'ee4c566cf9a93f14d82f913c2dc6dd0c' },
  },
};

export interface ResNetOptions {
  /** Keep avg_pool + predictions (Dense `classes`, softmax). Default true. */
  includeTop?: boolean;
  /** [height, width, channels]; default [224, 224, 3]. */
  inputShape?: [number, number, number];
  /** Without top: 'avg' or 'max' global pooling, or none (a 4-D feature map). */
  pooling?: 'avg' | 'max' | null;
  classes?: number;
  classifierActivation?: 'softmax' | 'linear';
  /**
   * 'keras' (default): Keras' random initialisers. 'zeros': skip the random draws (seconds for 25M
   * values) when weights are loaded right after, or only the structure and counts are wanted.
   */
  init?: 'keras' | 'zeros';
}

/** The initialiser options of every conv/dense/BN layer built while `init` is in force. */
let zeroInit = false;
const initArgs = () => (zeroInit ? { kernelInitializer: 'zeros' as const, biasInitializer: 'zeros' as const } : {});

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, epsilon: BN_EPSILON, name });
}

/**
 * A residual block (Keras block1): 1x1 (carrying the stride, as in Keras/Caffe ResNet v1) -> 3x3 -> 1x1,
 * with a projection shortcut when `convShortcut`.
 */
export function block1(
  x: SymbolicTensor,
  filters: number,
  name: string,
  { kernelSize = 3, stride = 1, convShortcut = true }: { kernelSize?: number; stride?: number; convShortcut?: boolean } = {},
): SymbolicTensor {
  let shortcut = x;
  if (convShortcut) {
    shortcut = tf.layers.conv2d({ filters: 4 * filters, kernelSize: 1, strides: stride, name: `${name}_0_conv`, ...initArgs() }).apply(x) as SymbolicTensor;
    shortcut = batchNorm(`${name}_0_bn`).apply(shortcut) as SymbolicTensor;
  }
  let y = tf.layers.conv2d({ filters, kernelSize: 1, strides: stride, name: `${name}_1_conv`, ...initArgs() }).apply(x) as SymbolicTensor;
  y = batchNorm(`${name}_1_bn`).apply(y) as SymbolicTensor;
  y = tf.layers.activation({ activation: 'relu', name: `${name}_1_relu` }).apply(y) as SymbolicTensor;
  y = tf.layers.conv2d({ filters, kernelSize, padding: 'same', name: `${name}_2_conv`, ...initArgs() }).apply(y) as SymbolicTensor;
  y = batchNorm(`${name}_2_bn`).apply(y) as SymbolicTensor;
  y = tf.layers.activation({ activation: 'relu', name: `${name}_2_relu` }).apply(y) as SymbolicTensor;
  y = tf.layers.conv2d({ filters: 4 * filters, kernelSize: 1, name: `${name}_3_conv`, ...initArgs() }).apply(y) as SymbolicTensor;
  y = batchNorm(`${name}_3_bn`).apply(y) as SymbolicTensor;
  y = tf.layers.add({ name: `${name}_add` }).apply([shortcut, y]) as SymbolicTensor;
  return tf.layers.activation({ activation: 'relu', name: `${name}_out` }).apply(y) as SymbolicTensor;
}

/** A stage of `blocks` residual blocks (Keras stack1); the first one projects and carries `stride1`. */
export function stack1(x: SymbolicTensor, filters: number, blocks: number, name: string, stride1 = 2): SymbolicTensor {
  let y = block1(x, filters, `${name}_block1`, { stride: stride1 });
  for (let i = 2; i <= blocks; i++) y = block1(y, filters, `${name}_block${i}`, { convShortcut: false });
  return y;
}

export type StackFn = (x: SymbolicTensor) => SymbolicTensor;

/**
 * The generic builder (Keras `ResNet`): stem, `stackFn`, then the top or the pooling.
 * `preact` adds post_bn/post_relu after the stacks (ResNet v2 style) and drops conv1_bn/conv1_relu.
 */
export function resnet(stackFn: StackFn, preact: boolean, useBias: boolean, name: string, opts: ResNetOptions = {}): tf.LayersModel {
  const { includeTop = true, inputShape = [224, 224, 3], pooling = null, classes = 1000, classifierActivation = 'softmax' } = opts;
  zeroInit = opts.init === 'zeros';
  try {
    return build(stackFn, preact, useBias, name, includeTop, inputShape, pooling, classes, classifierActivation);
  } finally {
    zeroInit = false;
  }
}

function build(
  stackFn: StackFn,
  preact: boolean,
  useBias: boolean,
  name: string,
  includeTop: boolean,
  inputShape: [number, number, number],
  pooling: 'avg' | 'max' | null,
  classes: number,
  classifierActivation: 'softmax' | 'linear',
): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'input_1' });
  let x = tf.layers.zeroPadding2d({ padding: [[3, 3], [3, 3]], name: 'conv1_pad' }).apply(input) as SymbolicTensor;
  x = tf.layers.conv2d({ filters: 64, kernelSize: 7, strides: 2, useBias, name: 'conv1_conv', ...initArgs() }).apply(x) as SymbolicTensor;
  if (!preact) {
    x = batchNorm('conv1_bn').apply(x) as SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu', name: 'conv1_relu' }).apply(x) as SymbolicTensor;
  }
  x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'pool1_pad' }).apply(x) as SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }).apply(x) as SymbolicTensor;
  x = stackFn(x);
  if (preact) {
    x = batchNorm('post_bn').apply(x) as SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu', name: 'post_relu' }).apply(x) as SymbolicTensor;
  }
  if (includeTop) {
    x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as SymbolicTensor;
    x = tf.layers.dense({ units: classes, activation: classifierActivation, name: 'predictions', ...initArgs() }).apply(x) as SymbolicTensor;
  } else if (pooling === 'avg') {
    x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as SymbolicTensor;
  } else if (pooling === 'max') {
    x = tf.layers.globalMaxPooling2d({ name: 'max_pool' }).apply(x) as SymbolicTensor;
  }
  return tf.model({ inputs: input, outputs: x, name });
}

export const ResNet50 = (o?: ResNetOptions) =>
  resnet((x) => stack1(stack1(stack1(stack1(x, 64, 3, 'conv2', 1), 128, 4, 'conv3'), 256, 6, 'conv4'), 512, 3, 'conv5'), false, true, 'resnet50', o);
export const ResNet101 = (o?: ResNetOptions) =>
  resnet((x) => stack1(stack1(stack1(stack1(x, 64, 3, 'conv2', 1), 128, 4, 'conv3'), 256, 23, 'conv4'), 512, 3, 'conv5'), false, true, 'resnet101', o);
export const ResNet152 = (o?: ResNetOptions) =>
  resnet((x) => stack1(stack1(stack1(stack1(x, 64, 3, 'conv2', 1), 128, 8, 'conv3'), 256, 36, 'conv4'), 512, 3, 'conv5'), false, true, 'resnet152', o);

export const RESNETS = { resnet50: ResNet50, resnet101: ResNet101, resnet152: ResNet152 } as const;
