/**
 * The wasm training kernels against the cpu backend (tfjs' reference implementation).
 * Tolerance: |wasm - cpu| <= 1e-4 · (1 + |cpu|) elementwise after scaling by the largest |cpu| value,
 * i.e. a relative error of 1e-4 of the result's magnitude; float32 sums of a few thousand terms in a
 * different order differ by ~1e-6 relative, so 1e-4 only fails on a real indexing or padding bug.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels, simplifyPermutation, wasmKernelOptions } from '../../src/backend/wasm-kernels';
import { Random } from '../../src/random';
import { simdKernelsFor } from '../../src/backend/wasm/simd-kernels';

const TOLERANCE = 1e-4;

before(async () => {
  registerWasmTrainingKernels();
  registerWasmTrainingKernels(); // idempotent: a second call must not throw or re-register
  assert.ok(await tf.setBackend('wasm'));
  assert.ok(await tf.setBackend('cpu'));
});

function randomArray(rng: Random, size: number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

async function onBackend(name: string, fn: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(name);
  const t = fn();
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (scale + 1e-12));
  assert.ok(worst <= TOLERANCE, `${what}: max relative difference ${worst.toExponential(2)} > ${TOLERANCE}`);
}

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface Case { n: number; h: number; w: number; cin: number; cout: number; k: number; stride: number; pad: Pad }

const cases: Case[] = [];
for (const k of [1, 3, 7]) {
  for (const stride of [1, 2]) {
    for (const pad of ['same', 'valid'] as Pad[]) {
      for (const n of [1, 8]) {
        // Odd and even sizes: 'same' with stride 2 pads asymmetrically on one of them.
        const h = k === 7 ? 15 + n % 2 : 9 + (stride + n) % 2;
        cases.push({ n, h, w: h + 1, cin: 3 + k % 2, cout: 5, k, stride, pad });
      }
    }
  }
}
// ResNet's stem: ZeroPadding2D(3) then a valid 7x7/2 conv - here as an explicit padding.
cases.push({ n: 2, h: 16, w: 16, cin: 3, cout: 4, k: 7, stride: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] });
cases.push({ n: 2, h: 9, w: 8, cin: 4, cout: 6, k: 3, stride: 2, pad: [[0, 0], [1, 0], [0, 2], [0, 0]] });
// Few output pixels and many channels: the 1x1 kernels then pack X or dYᵀ instead of W or dY.
cases.push({ n: 2, h: 2, w: 2, cin: 40, cout: 24, k: 1, stride: 1, pad: 'valid' });
cases.push({ n: 2, h: 4, w: 4, cin: 24, cout: 40, k: 1, stride: 2, pad: 'valid' });
cases.push({ n: 2, h: 2, w: 2, cin: 24, cout: 40, k: 3, stride: 1, pad: 'same' });

for (const c of cases) {
  const label = `${c.k}x${c.k}/${c.stride} ${JSON.stringify(c.pad)} n=${c.n} ${c.h}x${c.w}x${c.cin}->${c.cout}`;
  test(`Conv2D gradients on wasm match cpu: ${label}`, async () => {
    const rng = new Random(c.k * 1000 + c.stride * 100 + c.n + c.h);
    const xShape: [number, number, number, number] = [c.n, c.h, c.w, c.cin];
    const filterShape: [number, number, number, number] = [c.k, c.k, c.cin, c.cout];
    const probe = tf.tidy(() => tf.conv2d(tf.zeros(xShape) as tf.Tensor4D, tf.zeros(filterShape) as tf.Tensor4D, c.stride, c.pad));
    const dyShape = probe.shape;
    probe.dispose();
    const xData = randomArray(rng, tf.util.sizeFromShape(xShape));
    const wData = randomArray(rng, tf.util.sizeFromShape(filterShape));
    const dyData = randomArray(rng, tf.util.sizeFromShape(dyShape));
    const attrs = { strides: [c.stride, c.stride], pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
    const filterGrad = () => tf.tidy(() =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor(xData, xShape), dy: tf.tensor(dyData, dyShape) }, { ...attrs, filterShape } as never) as tf.Tensor);
    const inputGrad = () => tf.tidy(() =>
      tf.engine().runKernel('Conv2DBackpropInput', { dy: tf.tensor(dyData, dyShape), filter: tf.tensor(wData, filterShape) }, { ...attrs, inputShape: xShape } as never) as tf.Tensor);
    const before = tf.memory().numTensors;
    assertClose(await onBackend('wasm', filterGrad), await onBackend('cpu', filterGrad), `filter gradient ${label}`);
    const expected = await onBackend('cpu', inputGrad);
    // Both input-gradient formulations (the cost model picks one per shape in real use).
    for (const formulation of ['conv', 'col2im'] as const) {
      wasmKernelOptions.inputGrad = formulation;
      try {
        assertClose(await onBackend('wasm', inputGrad), expected, `input gradient (${formulation}) ${label}`);
      } finally {
        wasmKernelOptions.inputGrad = 'auto';
      }
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });
}

test('Tile on wasm matches cpu (block copies on every axis)', async () => {
  const rng = new Random(7);
  const shapes: [number[], number[]][] = [[[1, 1, 1, 5], [2, 3, 4, 1]], [[2, 3], [3, 2]], [[3, 1, 2], [1, 4, 1]], [[4], [3]], [[2, 2, 2, 2], [1, 2, 1, 3]]];
  for (const [shape, reps] of shapes) {
    const data = randomArray(rng, tf.util.sizeFromShape(shape));
    const run = () => tf.tidy(() => tf.tile(tf.tensor(data, shape), reps));
    assertClose(await onBackend('wasm', run), await onBackend('cpu', run), `tile ${shape} x ${reps}`);
  }
  await tf.setBackend('wasm');
  const ints = tf.tile(tf.tensor1d([1, 2], 'int32'), [3]);
  assert.deepEqual(Array.from(await ints.data()), [1, 2, 1, 2, 1, 2]);
  ints.dispose();
  await tf.setBackend('cpu');
});

test('Transpose on wasm (SIMD kernel) gives exactly the cpu backend\'s values, for every permutation kind the kernels use', async () => {
  const rng = new Random(11);
  const cases: [number[], number[]][] = [
    [[70, 45], [1, 0]], // 2-D, sizes not multiples of the 32 tile
    [[3, 33, 65], [0, 2, 1]], // batched 2-D
    [[5, 7, 3, 4], [1, 3, 0, 2]], // the depthwise filter gradient's phases, stride 2
    [[6, 1, 5, 4], [1, 3, 0, 2]], // ... and stride 1 (a size-1 axis: a 2-D transpose after merging)
    [[4, 3, 5, 2], [1, 0, 2, 3]], // innermost axes unchanged: row copies
    [[2, 3, 4, 5], [3, 2, 1, 0]],
    [[2, 3, 4, 5, 3], [0, 4, 2, 1, 3]],
    [[1, 1, 7], [2, 0, 1]],
    [[9], [0]],
    [[2, 1, 3], [1, 0, 2]],
  ];
  for (const [shape, perm] of cases) {
    const data = randomArray(rng, tf.util.sizeFromShape(shape));
    const run = () => tf.tidy(() => tf.transpose(tf.tensor(data, shape), perm));
    assert.deepEqual(await onBackend('wasm', run), await onBackend('cpu', run), `transpose ${JSON.stringify(shape)} by ${JSON.stringify(perm)}`);
  }
  await tf.setBackend('wasm');
  assert.ok(simdKernelsFor(tf.backend()), 'the SIMD kernels load on this wasm heap (else Transpose falls back to the shipped kernel)');
  const ints = tf.transpose(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32'));
  assert.deepEqual(Array.from(await ints.data()), [1, 4, 2, 5, 3, 6]);
  assert.equal(ints.dtype, 'int32');
  ints.dispose();
  await tf.setBackend('cpu');
});

test('simplifyPermutation drops size-1 axes and merges axes that stay neighbours', () => {
  assert.deepEqual(simplifyPermutation([6, 1, 5, 4], [1, 3, 0, 2]), { shape: [30, 4], perm: [1, 0] });
  assert.deepEqual(simplifyPermutation([4, 3, 5, 2], [1, 0, 2, 3]), { shape: [4, 3, 10], perm: [1, 0, 2] });
  assert.deepEqual(simplifyPermutation([2, 3, 4], [0, 1, 2]), { shape: [24], perm: [0] });
  assert.deepEqual(simplifyPermutation([5, 7, 3, 4], [1, 3, 0, 2]), { shape: [5, 7, 3, 4], perm: [1, 3, 0, 2] });
});

test('Identity on wasm shares data safely: a clone outlives its source', async () => {
  await tf.setBackend('wasm');
  const a = tf.tensor1d([1, 2, 3]);
  const b = a.clone();
  a.dispose();
  assert.deepEqual(Array.from(await b.data()), [1, 2, 3]);
  b.dispose();
  await tf.setBackend('cpu');
});

test('Sum and Mean on wasm match cpu (leading axes by the JS pass, others by the original kernels)', async () => {
  const rng = new Random(11);
  const shape = [3, 5, 4, 6];
  const data = randomArray(rng, tf.util.sizeFromShape(shape));
  const cases: [number[] | number, boolean][] = [[[0, 1, 2], false], [[0, 1, 2], true], [[2, 0, 1], false], [0, true], [[1, 2], false], [[0, 1, 2, 3], false], [3, true]];
  for (const [axis, keepDims] of cases) {
    for (const op of ['sum', 'mean'] as const) {
      const run = () => tf.tidy(() => tf[op](tf.tensor(data, shape), axis, keepDims));
      const wasm = await onBackend('wasm', () => { const t = run(); assert.deepEqual(t.shape, tf.tidy(() => tf[op](tf.zeros(shape), axis, keepDims)).shape); return t; });
      assertClose(wasm, await onBackend('cpu', run), `${op} axis ${JSON.stringify(axis)} keepDims ${keepDims}`);
    }
  }
  await tf.setBackend('cpu');
});

// Depthwise convolutions (MobileNet): strides 1 and 2, same/valid/explicit padding, channel
// multipliers 1 and 2, odd and even sizes (where 'same' with stride 2 pads asymmetrically).
interface DepthwiseCase { n: number; h: number; w: number; c: number; m: number; k: number; stride: number; pad: Pad }
const depthwiseCases: DepthwiseCase[] = [];
for (const k of [3, 5]) {
  for (const stride of [1, 2]) {
    for (const pad of ['same', 'valid'] as Pad[]) {
      for (const [n, h] of [[1, 9], [3, 8]]) depthwiseCases.push({ n, h, w: h + 3, c: 5 + k, m: 1, k, stride, pad });
    }
  }
}
depthwiseCases.push({ n: 2, h: 7, w: 6, c: 4, m: 2, k: 3, stride: 2, pad: 'same' });
depthwiseCases.push({ n: 2, h: 6, w: 7, c: 3, m: 3, k: 3, stride: 1, pad: 'valid' });
depthwiseCases.push({ n: 2, h: 9, w: 8, c: 6, m: 1, k: 3, stride: 2, pad: [[0, 0], [1, 0], [0, 2], [0, 0]] });
depthwiseCases.push({ n: 2, h: 8, w: 8, c: 6, m: 1, k: 3, stride: 1, pad: [[0, 0], [2, 1], [1, 1], [0, 0]] });
// MobileNet's shapes: a 7x7 map of many channels, and a 1x1 map (32 px input) where 'same' pads on every side.
depthwiseCases.push({ n: 4, h: 7, w: 7, c: 96, m: 1, k: 3, stride: 1, pad: 'same' });
depthwiseCases.push({ n: 2, h: 2, w: 2, c: 16, m: 1, k: 3, stride: 2, pad: 'same' });
depthwiseCases.push({ n: 2, h: 1, w: 1, c: 16, m: 1, k: 3, stride: 1, pad: 'same' });

for (const c of depthwiseCases) {
  const label = `${c.k}x${c.k}/${c.stride} ${JSON.stringify(c.pad)} n=${c.n} ${c.h}x${c.w}x${c.c} multiplier ${c.m}`;
  test(`DepthwiseConv2dNative gradients on wasm match cpu: ${label}`, async () => {
    const rng = new Random(c.k * 1000 + c.stride * 100 + c.n * 10 + c.h + c.m);
    const xShape: [number, number, number, number] = [c.n, c.h, c.w, c.c];
    const filterShape: [number, number, number, number] = [c.k, c.k, c.c, c.m];
    const probe = tf.tidy(() => tf.depthwiseConv2d(tf.zeros(xShape) as tf.Tensor4D, tf.zeros(filterShape) as tf.Tensor4D, c.stride, c.pad));
    const dyShape = probe.shape;
    probe.dispose();
    const xData = randomArray(rng, tf.util.sizeFromShape(xShape));
    const wData = randomArray(rng, tf.util.sizeFromShape(filterShape));
    const dyData = randomArray(rng, tf.util.sizeFromShape(dyShape));
    const attrs = { strides: [c.stride, c.stride], pad: c.pad, dilations: [1, 1], dimRoundingMode: undefined };
    const filterGrad = () => tf.tidy(() =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: tf.tensor(xData, xShape), dy: tf.tensor(dyData, dyShape) }, { ...attrs, filterShape } as never) as tf.Tensor);
    const inputGrad = () => tf.tidy(() =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: tf.tensor(dyData, dyShape), filter: tf.tensor(wData, filterShape) }, { ...attrs, inputShape: xShape } as never) as tf.Tensor);
    const before = tf.memory().numTensors;
    const expectedFilterGrad = await onBackend('cpu', filterGrad);
    // Every formulation: 3x3 taps in one pass (SIMD dot products, and the JS loop), phased dot products tap by tap (multiplier 1), the direct pass (any multiplier).
    for (const [formulation, simd] of [['auto', true], ['auto', false], ['phased', true], ['direct', true]] as const) {
      wasmKernelOptions.depthwiseFilterGrad = formulation;
      wasmKernelOptions.simd = simd;
      try {
        assertClose(await onBackend('wasm', filterGrad), expectedFilterGrad, `depthwise filter gradient (${formulation}${simd ? '' : ', JS'}) ${label}`);
      } finally {
        wasmKernelOptions.depthwiseFilterGrad = 'auto';
        wasmKernelOptions.simd = true;
      }
    }
    assertClose(await onBackend('wasm', inputGrad), await onBackend('cpu', inputGrad), `depthwise input gradient ${label}`);
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });
}

test('depthwise gradients on wasm refuse dilation > 1 with a clear error', async () => {
  await tf.setBackend('wasm');
  const x = tf.zeros([1, 6, 6, 2]);
  const dy = tf.zeros([1, 2, 2, 2]);
  assert.throws(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides: [1, 1], pad: 'valid', dilations: [2, 2], filterShape: [3, 3, 2, 1] } as never), /depthwise gradients need dilation 1/);
  tf.dispose([x, dy]);
  await tf.setBackend('cpu');
});

/** Runs fn on wasm with the SIMD kernels on and off: both results, to be compared bit for bit. */
async function simdOnOff(fn: () => tf.Tensor): Promise<[Float32Array, Float32Array]> {
  const on = await onBackend('wasm', fn);
  wasmKernelOptions.simd = false;
  try {
    return [on, await onBackend('wasm', fn)];
  } finally {
    wasmKernelOptions.simd = true;
  }
}

test('FusedBatchNorm on wasm (SIMD) is within a rounding of the shipped kernel, and matches cpu', async () => {
  const rng = new Random(21);
  for (const shape of [[2, 3, 4, 5], [3, 4, 4, 8], [1, 7, 3, 48], [6, 13]] as number[][]) {
    const c = shape[shape.length - 1];
    const x = randomArray(rng, tf.util.sizeFromShape(shape)).map((v) => 3 * v);
    const [mean, offset] = [randomArray(rng, c), randomArray(rng, c)];
    const variance = randomArray(rng, c).map((v) => v * v + 0.01);
    const scale = randomArray(rng, c).map((v) => v + 1.5);
    const run = () => tf.tidy(() => tf.batchNorm(tf.tensor(x, shape), tf.tensor1d(mean), tf.tensor1d(variance), tf.tensor1d(offset), tf.tensor1d(scale), 1e-3));
    const [simd, shipped] = await simdOnOff(run);
    // The shipped binary's rounding is not quite its C source's (offset + (x - mean)·scale / sqrt(variance + eps),
    // which the SIMD kernel follows lane by lane): some results differ in the last bit.
    for (let i = 0; i < simd.length; i++) {
      assert.ok(Math.abs(simd[i] - shipped[i]) <= 2.5e-7 * Math.max(1, Math.abs(shipped[i])), `batch norm ${shape} [${i}]: SIMD ${simd[i]} vs shipped ${shipped[i]}`);
    }
    assertClose(simd, await onBackend('cpu', run), `batch norm ${shape} against cpu`);
  }
  await tf.setBackend('cpu');
});

test('ReLU6\'s gradient on wasm (one SIMD pass) gives the bits of tfjs\' dy·(step(x) - step(x - 6)), NaN and infinities included', async () => {
  const rng = new Random(22);
  const special = [0, -0, 6, 6.0000005, 5.9999995, 1e-30, -1e-30, Infinity, -Infinity, NaN, 3, -3, 7];
  const x = new Float32Array(203).map((_, i) => (i < special.length ? special[i] : 8 * rng.next() - 1));
  const dy = randomArray(rng, x.length).map((v, i) => (i === 20 ? NaN : i === 21 ? Infinity : v));
  const grad = () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.relu6(t))(tf.tensor(x, [7, 29]), tf.tensor(dy, [7, 29])));
  const [simd, composed] = await simdOnOff(grad);
  assert.deepEqual(simd, composed, 'SIMD and composed ReLU6 gradients differ');
  await tf.setBackend('cpu');
});

test('Mean\'s gradient on wasm (dy / size tiled) gives the bits of tfjs-core\'s broadcasting multiply, for global pooling and other axes', async () => {
  const rng = new Random(23);
  for (const [shape, axes] of [[[4, 5, 5, 12], [1, 2]], [[3, 7, 2], [0]], [[6, 9], [1]], [[2, 3, 4], [0, 1, 2]]] as [number[], number[]][]) {
    const x = randomArray(rng, tf.util.sizeFromShape(shape));
    const outShape = shape.filter((_, i) => !axes.includes(i));
    const dy = randomArray(rng, tf.util.sizeFromShape(outShape)).map((v) => v * 3);
    const grad = () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.mean(t, axes))(tf.tensor(x, shape), tf.tensor(dy, outShape)));
    const tiled = await onBackend('wasm', grad);
    wasmKernelOptions.meanGrad = 'core';
    const composed = await onBackend('wasm', grad).finally(() => { wasmKernelOptions.meanGrad = 'tile'; });
    assert.deepEqual(tiled, composed, `mean gradient ${shape} over ${axes}`);
    assertClose(tiled, await onBackend('cpu', grad), `mean gradient ${shape} over ${axes} against cpu`);
  }
  await tf.setBackend('cpu');
});
