/**
 * GFLOP/s of the forward convolution and its two gradients on the current backend, on
 * ResNet-50's convolution shapes. Run through `npm run -s cli -- bench --kernels`.
 */
import * as tf from '@tensorflow/tfjs';

export interface ConvShape {
  name: string;
  x: [number, number, number, number];
  k: number;
  cout: number;
  stride: number;
  pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
}

export interface ConvRate { name: string; gflop: number; forward: number; inputGrad: number; filterGrad: number }

/** The issue's reference shape and ResNet-50's distinct convolution kinds (batch scaled by `batch`). */
export function resnetConvShapes(batch: number): ConvShape[] {
  return [
    { name: '3x3/1 56x56x64->64 (issue reference)', x: [batch, 56, 56, 64], k: 3, cout: 64, stride: 1, pad: 'same' },
    { name: '1x1/1 56x56x64->256', x: [batch, 56, 56, 64], k: 1, cout: 256, stride: 1, pad: 'valid' },
    { name: '1x1/2 56x56x256->512', x: [batch, 56, 56, 256], k: 1, cout: 512, stride: 2, pad: 'valid' },
    { name: '3x3/1 14x14x256->256', x: [batch, 14, 14, 256], k: 3, cout: 256, stride: 1, pad: 'same' },
    { name: '7x7/2 stem 230x230x3->64 (ZeroPadding+valid)', x: [batch, 230, 230, 3], k: 7, cout: 64, stride: 2, pad: 'valid' },
  ];
}

function timeIt(fn: () => tf.Tensor, minSeconds: number): number {
  fn().dispose(); // warm-up: operator creation and packing
  let runs = 0;
  const start = performance.now();
  do {
    fn().dispose();
    runs++;
  } while ((performance.now() - start) / 1000 < minSeconds);
  return (performance.now() - start) / 1000 / runs;
}

/** Seconds per call -> GFLOP/s for each of forward, input gradient and filter gradient. */
export function measureConv(shape: ConvShape, minSeconds = 0.5): ConvRate {
  const filterShape: [number, number, number, number] = [shape.k, shape.k, shape.x[3], shape.cout];
  const x = tf.randomNormal(shape.x) as tf.Tensor4D;
  const w = tf.randomNormal(filterShape) as tf.Tensor4D;
  const y = tf.conv2d(x, w, shape.stride, shape.pad);
  const dy = tf.randomNormal(y.shape);
  const gflop = (2 * y.size * shape.k * shape.k * shape.x[3]) / 1e9;
  const attrs = { strides: [shape.stride, shape.stride], pad: shape.pad, dataFormat: 'NHWC', dilations: [1, 1] };
  const forward = timeIt(() => tf.conv2d(x, w, shape.stride, shape.pad), minSeconds);
  const inputGrad = timeIt(() => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: shape.x } as never) as tf.Tensor, minSeconds);
  const filterGrad = timeIt(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape } as never) as tf.Tensor, minSeconds);
  tf.dispose([x, w, y, dy]);
  const rate = (s: number) => Math.round((gflop / s) * 100) / 100;
  return { name: shape.name, gflop: Math.round(gflop * 1000) / 1000, forward: rate(forward), inputGrad: rate(inputGrad), filterGrad: rate(filterGrad) };
}

/** MobileNet v1 0.75's depthwise 3x3 shapes at `size` px (batch `batch`): each block's input side, channels and stride. */
export function mobilenetDepthwiseShapes(batch: number, size: number): ConvShape[] {
  const blocks: [number, number, number][] = [[2, 24, 1], [2, 48, 2], [4, 96, 1], [4, 96, 2], [8, 192, 1], [8, 192, 2], [16, 384, 1], [16, 384, 2], [32, 768, 1]];
  return blocks.map(([div, c, stride]) => {
    const side = Math.ceil(size / div);
    return { name: `dw 3x3/${stride} ${side}x${side}x${c}`, x: [batch, side, side, c], k: 3, cout: c, stride, pad: 'same' };
  });
}

/** Seconds per call -> GFLOP/s of the depthwise forward convolution and its two gradients (multiplier 1). */
export function measureDepthwise(shape: ConvShape, minSeconds = 0.5): ConvRate {
  const filterShape: [number, number, number, number] = [shape.k, shape.k, shape.x[3], 1];
  const x = tf.randomNormal(shape.x) as tf.Tensor4D;
  const w = tf.randomNormal(filterShape) as tf.Tensor4D;
  const y = tf.depthwiseConv2d(x, w, shape.stride, shape.pad);
  const dy = tf.randomNormal(y.shape);
  const gflop = (2 * y.size * shape.k * shape.k) / 1e9;
  const attrs = { strides: [shape.stride, shape.stride], pad: shape.pad, dilations: [1, 1] };
  const forward = timeIt(() => tf.depthwiseConv2d(x, w, shape.stride, shape.pad), minSeconds);
  const inputGrad = timeIt(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...attrs, inputShape: shape.x } as never) as tf.Tensor, minSeconds);
  const filterGrad = timeIt(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape } as never) as tf.Tensor, minSeconds);
  tf.dispose([x, w, y, dy]);
  const rate = (s: number) => Math.round((gflop / s) * 100) / 100;
  return { name: shape.name, gflop: Math.round(gflop * 1000) / 1000, forward: rate(forward), inputGrad: rate(inputGrad), filterGrad: rate(filterGrad) };
}
