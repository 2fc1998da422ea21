/**
 * The threaded SIMD wasm binary under Node (src/backend/wasm/threads.ts): two XNNPACK threads, results
 * equal to the cpu backend's, training kernels working on the shared heap, and the process still exits
 * (node --test runs this file in its own process and would time out if the pool kept it alive).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initWasmThreaded } from '../../src/backend/wasm/threads';
import { registerWasmTrainingKernels } from '../../src/backend/wasm-kernels';

test('threaded wasm: 2 threads, same convolution and gradients as cpu', async () => {
  require('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
  const threads = await initWasmThreaded(2);
  assert.equal(threads, 2, 'XNNPACK reports 2 threads');
  assert.equal(tf.getBackend(), 'wasm');
  const x = tf.tensor4d(Array.from({ length: 4 * 9 * 9 * 8 }, (_, i) => Math.sin(i)), [4, 9, 9, 8]);
  const w = tf.tensor4d(Array.from({ length: 3 * 3 * 8 * 16 }, (_, i) => Math.cos(i)), [3, 3, 8, 16]);
  const f = (...[a, b]: tf.Tensor[]) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same").square().sum();
  const run = () => tf.tidy(() => {
    const [gx, gw] = tf.grads(f)([x, w]);
    return [tf.conv2d(x, w, 1, 'same'), gx, gw].map((t) => t.dataSync().slice());
  });
  const wasm = run();
  await tf.setBackend('cpu');
  const cpu = run();
  for (let k = 0; k < cpu.length; k++) {
    let scale = 0;
    let worst = 0;
    cpu[k].forEach((v, i) => { scale = Math.max(scale, Math.abs(v)); worst = Math.max(worst, Math.abs(v - wasm[k][i])); });
    assert.ok(worst <= 1e-4 * scale, `output ${k}: max difference ${worst} vs scale ${scale}`);
  }
  tf.dispose([x, w]);
});
