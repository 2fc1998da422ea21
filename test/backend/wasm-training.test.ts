/**
 * A small convolutional network trains on wasm: its gradients (conv with bias, batch norm in training
 * mode, relu, max pool, bilinear upsampling, ZeroPadding + strided valid conv, LeakyReLU, 1x1 conv,
 * global pooling, dense, softmax cross-entropy) match the cpu backend's, and an SGD step on wasm
 * lowers the loss. Tolerance: 1e-3 of each gradient's largest magnitude (a dozen float32 layers).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels, wasmKernelOptions } from '../../src/backend/wasm-kernels';

const TOLERANCE = 1e-3;

before(async () => {
  registerWasmTrainingKernels();
  assert.ok(await tf.setBackend('cpu'));
});

function smallNet(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const input = tf.input({ shape: [12, 12, 3] });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ axis: 3 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.upSampling2d({ size: [2, 2], interpolation: 'bilinear' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]] }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 12, kernelSize: 3, strides: 2, useBias: false, kernelInitializer: init(2) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ axis: 3 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.leakyReLU({ alpha: 0.1 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 16, kernelSize: 1, kernelInitializer: init(3) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(4) }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

function lossOf(model: tf.LayersModel, xs: tf.Tensor, ys: tf.Tensor): tf.Scalar {
  const probs = model.apply(xs, { training: true }) as tf.Tensor;
  return tf.losses.softmaxCrossEntropy(ys, tf.log(tf.clipByValue(probs, 1e-7, 1)));
}

async function gradients(backend: string, model: tf.LayersModel, xData: Float32Array, labels: number[]): Promise<{ loss: number; grads: Record<string, Float32Array> }> {
  await tf.setBackend(backend);
  const xs = tf.tensor4d(xData, [labels.length, 12, 12, 3]);
  const ys = tf.oneHot(labels, 4);
  const { value, grads } = tf.variableGrads(() => lossOf(model, xs, ys));
  const out: Record<string, Float32Array> = {};
  for (const [name, g] of Object.entries(grads)) out[name] = (await g.data()) as Float32Array;
  const loss = (await value.data())[0];
  tf.dispose([xs, ys, value, grads as never]);
  return { loss, grads: out };
}

test('a small conv net: wasm gradients match cpu, and SGD on wasm lowers the loss', async () => {
  const model = smallNet();
  const xData = new Float32Array(6 * 12 * 12 * 3).map((_, i) => Math.sin(i * 0.37) + Math.cos(i * 0.011));
  const labels = [0, 1, 2, 3, 1, 2];
  const cpu = await gradients('cpu', model, xData, labels);
  const wasm = await gradients('wasm', model, xData, labels);
  assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-4 * (1 + Math.abs(cpu.loss)), `loss cpu ${cpu.loss} wasm ${wasm.loss}`);
  assert.deepEqual(Object.keys(wasm.grads).sort(), Object.keys(cpu.grads).sort());
  assert.ok(Object.keys(cpu.grads).length >= 10, 'all trainable weights have gradients');
  for (const name of Object.keys(cpu.grads)) {
    const a = wasm.grads[name];
    const b = cpu.grads[name];
    let scale = 0;
    let worst = 0;
    for (const v of b) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(scale > 0, `${name}: gradient is not all zeros`);
    assert.ok(worst <= TOLERANCE * scale, `${name}: max |wasm - cpu| ${worst.toExponential(2)} > ${TOLERANCE} x ${scale.toExponential(2)}`);
  }
  // Training on wasm: a few SGD steps lower the loss on this batch.
  const xs = tf.tensor4d(xData, [labels.length, 12, 12, 3]);
  const ys = tf.oneHot(labels, 4);
  const optimizer = tf.train.sgd(0.1);
  const first = (await (tf.tidy(() => lossOf(model, xs, ys))).data())[0];
  for (let step = 0; step < 5; step++) tf.dispose(optimizer.minimize(() => lossOf(model, xs, ys), true) ?? []);
  const last = (await (tf.tidy(() => lossOf(model, xs, ys))).data())[0];
  assert.ok(last < first * 0.9, `loss ${first} -> ${last} after 5 SGD steps on wasm`);
  tf.dispose([xs, ys]);
  optimizer.dispose();
  model.dispose();
});

function smallMobileNet(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const input = tf.input({ shape: [12, 12, 3] });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(1) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ axis: 3 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu6' }).apply(x) as tf.SymbolicTensor;
  for (const [stride, filters, seed] of [[1, 12, 2], [2, 16, 4]]) {
    x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false, depthwiseInitializer: init(seed) }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ axis: 3 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu6' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ filters, kernelSize: 1, useBias: false, kernelInitializer: init(seed + 1) }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ axis: 3 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu6' }).apply(x) as tf.SymbolicTensor;
  }
  // A depthwise layer with bias and a channel multiplier, as other networks have.
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'valid', depthwiseInitializer: init(7) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(8) }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

test('a small MobileNet (depthwise convs strides 1 and 2, batch norm, ReLU6): wasm gradients match cpu, and SGD on wasm lowers the loss', async () => {
  const model = smallMobileNet();
  // Inputs spread wide enough that activations land on both sides of 0 and 6.
  const xData = new Float32Array(6 * 12 * 12 * 3).map((_, i) => 4 * Math.sin(i * 0.37) + 3 * Math.cos(i * 0.011));
  const labels = [0, 1, 2, 3, 1, 2];
  const cpu = await gradients('cpu', model, xData, labels);
  const wasm = await gradients('wasm', model, xData, labels);
  assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-4 * (1 + Math.abs(cpu.loss)), `loss cpu ${cpu.loss} wasm ${wasm.loss}`);
  assert.deepEqual(Object.keys(wasm.grads).sort(), Object.keys(cpu.grads).sort());
  assert.ok(Object.keys(cpu.grads).filter((k) => /depthwise/.test(k)).length >= 3, 'depthwise kernels have gradients');
  for (const name of Object.keys(cpu.grads)) {
    const a = wasm.grads[name];
    const b = cpu.grads[name];
    let scale = 0;
    let worst = 0;
    for (const v of b) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(scale > 0, `${name}: gradient is not all zeros`);
    assert.ok(worst <= TOLERANCE * scale, `${name}: max |wasm - cpu| ${worst.toExponential(2)} > ${TOLERANCE} x ${scale.toExponential(2)}`);
  }
  await tf.setBackend('wasm');
  const xs = tf.tensor4d(xData, [labels.length, 12, 12, 3]);
  const ys = tf.oneHot(labels, 4);
  const optimizer = tf.train.sgd(0.05);
  const first = (await (tf.tidy(() => lossOf(model, xs, ys))).data())[0];
  for (let step = 0; step < 5; step++) tf.dispose(optimizer.minimize(() => lossOf(model, xs, ys), true) ?? []);
  const last = (await (tf.tidy(() => lossOf(model, xs, ys))).data())[0];
  assert.ok(last < first * 0.9, `loss ${first} -> ${last} after 5 SGD steps on wasm`);
  tf.dispose([xs, ys]);
  optimizer.dispose();
  model.dispose();
  await tf.setBackend('cpu');
});

test('ReLU6 and fused depthwise convolution (bias + relu6) gradients on wasm match cpu', async () => {
  const x = new Float32Array(2 * 7 * 7 * 5).map((_, i) => 5 * Math.sin(i * 0.7) + 3);
  const w = new Float32Array(3 * 3 * 5).map((_, i) => Math.cos(i * 1.3));
  const bias = new Float32Array(5).map((_, i) => i * 0.3 - 0.5);
  const grads = async (backend: string) => {
    await tf.setBackend(backend);
    const xs = tf.tensor4d(x, [2, 7, 7, 5]);
    const ws = tf.tensor4d(w, [3, 3, 5, 1]);
    const bs = tf.tensor1d(bias);
    const f = (a: tf.Tensor4D, b: tf.Tensor4D, c: tf.Tensor1D) =>
      tf.sum(tf.mul(tf.relu6(tf.fused.depthwiseConv2d({ x: a, filter: b, bias: c, strides: 2, pad: 'same', activation: 'relu6' })), tf.linspace(-1, 1, 4 * 4 * 5).reshape([4, 4, 5])));
    const g = tf.grads(f as never)([xs, ws, bs]);
    const out = await Promise.all(g.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose([xs, ws, bs, ...g]);
    return out;
  };
  const cpu = await grads('cpu');
  const wasm = await grads('wasm');
  for (let k = 0; k < cpu.length; k++) {
    let scale = 0;
    let worst = 0;
    for (const v of cpu[k]) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < cpu[k].length; i++) worst = Math.max(worst, Math.abs(wasm[k][i] - cpu[k][i]));
    assert.ok(scale > 0 && worst <= 1e-4 * scale, `gradient ${['x', 'filter', 'bias'][k]}: max |wasm - cpu| ${worst} of ${scale}`);
  }
  await tf.setBackend('cpu');
});

test('FusedBatchNorm gradients on wasm (per-channel terms reduced first) match cpu for x, mean, variance, scale and offset', async () => {
  const shape: [number, number, number, number] = [3, 5, 4, 6];
  const x = new Float32Array(3 * 5 * 4 * 6).map((_, i) => 2 * Math.sin(i * 0.31) + 0.5);
  const mean = new Float32Array(6).map((_, i) => 0.1 * i - 0.2);
  const variance = new Float32Array(6).map((_, i) => 0.5 + 0.2 * i);
  const scale = new Float32Array(6).map((_, i) => 1 - 0.15 * i);
  const offset = new Float32Array(6).map((_, i) => 0.05 * i);
  const weights = new Float32Array(3 * 5 * 4 * 6).map((_, i) => Math.cos(i * 0.17));
  const grads = async (backend: string) => {
    await tf.setBackend(backend);
    const inputs = [tf.tensor4d(x, shape), tf.tensor1d(mean), tf.tensor1d(variance), tf.tensor1d(offset), tf.tensor1d(scale)];
    const w = tf.tensor4d(weights, shape);
    const f = (a: tf.Tensor4D, m: tf.Tensor1D, v: tf.Tensor1D, o: tf.Tensor1D, s: tf.Tensor1D) => tf.sum(tf.mul(tf.batchNorm(a, m, v, o, s, 1e-3), w));
    const g = tf.grads(f as never)(inputs);
    const out = await Promise.all(g.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose([...inputs, w, ...g]);
    return out;
  };
  const cpu = await grads('cpu');
  const wasm = await grads('wasm');
  ['x', 'mean', 'variance', 'offset', 'scale'].forEach((name, k) => {
    let scaleOf = 0;
    let worst = 0;
    for (const v of cpu[k]) scaleOf = Math.max(scaleOf, Math.abs(v));
    for (let i = 0; i < cpu[k].length; i++) worst = Math.max(worst, Math.abs(wasm[k][i] - cpu[k][i]));
    assert.ok(scaleOf > 0 && worst <= 1e-4 * scaleOf, `${name}: max |wasm - cpu| ${worst} of ${scaleOf}`);
  });
  await tf.setBackend('cpu');
});

test('FusedBatchNorm gradients with moving statistics (frozen batch norm): each derivative alone, all five, match cpu; the lazy and eager forms give the same bits', async () => {
  const shape: [number, number, number, number] = [2, 4, 3, 5];
  const x = new Float32Array(2 * 4 * 3 * 5).map((_, i) => 1.5 * Math.sin(i * 0.43) + 0.3);
  const stats = { mean: new Float32Array(5).map((_, i) => 0.2 - 0.1 * i), variance: new Float32Array(5).map((_, i) => 0.4 + 0.3 * i), scale: new Float32Array(5).map((_, i) => 0.9 - 0.1 * i), offset: new Float32Array(5).map((_, i) => 0.02 * i) };
  const weights = new Float32Array(x.length).map((_, i) => Math.cos(i * 0.29));
  const names = ['x', 'mean', 'variance', 'scale', 'offset'] as const;
  // Moving statistics are variables (as tfjs-layers passes them in inference mode); `wanted` picks which ones are differentiated.
  const grads = async (backend: string, wanted: readonly (typeof names)[number][]) => {
    await tf.setBackend(backend);
    const v = {
      x: tf.variable(tf.tensor4d(x, shape), true, `bn-x-${backend}-${wanted.join('')}`),
      mean: tf.variable(tf.tensor1d(stats.mean), true, `bn-mean-${backend}-${wanted.join('')}`),
      variance: tf.variable(tf.tensor1d(stats.variance), true, `bn-var-${backend}-${wanted.join('')}`),
      scale: tf.variable(tf.tensor1d(stats.scale), true, `bn-scale-${backend}-${wanted.join('')}`),
      offset: tf.variable(tf.tensor1d(stats.offset), true, `bn-offset-${backend}-${wanted.join('')}`),
    };
    const w = tf.tensor4d(weights, shape);
    const { value, grads: g } = tf.variableGrads(() => tf.sum(tf.mul(tf.batchNorm(v.x, v.mean, v.variance, v.offset, v.scale, 1e-3), w)) as tf.Scalar, wanted.map((n) => v[n]));
    const out: Record<string, Float32Array> = {};
    for (const n of wanted) out[n] = (await g[v[n].name].data()) as Float32Array;
    tf.dispose([value, w, ...Object.values(g), ...Object.values(v)]);
    return out;
  };
  for (const wanted of [['x'], ['scale'], ['offset'], names] as const) {
    const cpu = await grads('cpu', wanted);
    const lazy = await grads('wasm', wanted);
    wasmKernelOptions.batchNormGrad = 'eager';
    const eager = await grads('wasm', wanted).finally(() => { wasmKernelOptions.batchNormGrad = 'lazy'; });
    for (const n of wanted) {
      let scaleOf = 0;
      let worst = 0;
      for (const c of cpu[n]) scaleOf = Math.max(scaleOf, Math.abs(c));
      for (let i = 0; i < cpu[n].length; i++) worst = Math.max(worst, Math.abs(lazy[n][i] - cpu[n][i]));
      assert.ok(scaleOf > 0 && worst <= 1e-4 * scaleOf, `${n} (asked: ${wanted.join(', ')}): max |wasm - cpu| ${worst} of ${scaleOf}`);
      assert.deepEqual(lazy[n], eager[n], `${n}: lazy and eager per-channel sums give the same values`);
    }
  }
  await tf.setBackend('cpu');
});
