/**
 * Float16 storage of TF.js weights: tf.io decodes what quantizeWeightsFloat16 writes back to the
 * original values within float16's rounding; small tensors, integer tensors and values beyond
 * float16's range stay as they were; a manifest that does not match the data fails naming the weight.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { Float16Array as LibraryFloat16Array } from '@petamoriken/float16';
import { float16Bits, FLOAT16_MIN_VALUES, fromFloat16Bits, quantizeWeightsFloat16, toFloat16, WeightSpec } from '../../src/model/float16';
import { loadModel, saveModel } from '../../src/model/io';
import { Random } from '../../src/random';

function bytes(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

test('toFloat16 rounds to nearest and refuses values beyond 65504', () => {
  assert.deepEqual(Array.from(toFloat16(Float32Array.of(1, -2.5, 0.1, 65504))!), [0x3c00, 0xc100, 0x2e66, 0x7bff]);
  assert.equal(toFloat16(Float32Array.of(1, 70000)), undefined);
  assert.equal(toFloat16(Float32Array.of(Number.NaN)), undefined);
});

test('fromFloat16Bits decodes every bit pattern as the float16 library reads it back', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const ours = fromFloat16Bits(all);
  const theirs = new LibraryFloat16Array(all.buffer);
  for (let i = 0; i < 65536; i++) {
    if (Number.isNaN(theirs[i])) assert.ok(Number.isNaN(ours[i]), `pattern ${i}: NaN`);
    else assert.ok(Object.is(ours[i], theirs[i]), `pattern ${i}: ${ours[i]} vs ${theirs[i]}`);
  }
});

test('float16Bits gives the float16 library\'s bits (the engine\'s own Float16Array where Node has one)', () => {
  const rng = new Random(9);
  const values = Float32Array.from({ length: 100000 }, (_, i) => (i % 7 === 0 ? (rng.next() - 0.5) * 2e5 : (rng.next() - 0.5) * 2 ** ((i % 40) - 28)));
  values.set([0, -0, 65504, 65520, 2 ** -24, 2 ** -25, 2 ** -25 * 1.5, Infinity, -Infinity], 0);
  const library = new LibraryFloat16Array(values);
  assert.deepEqual(float16Bits(values), new Uint16Array(library.buffer));
});

test('quantized weights decode (tf.io) to the originals within float16 rounding; the rest is untouched', () => {
  const rng = new Random(5);
  const big = Float32Array.from({ length: FLOAT16_MIN_VALUES * 2 }, () => (rng.next() * 2 - 1) * 3);
  const small = Float32Array.from({ length: 10 }, () => rng.next() * 1e-4); // batch-norm-like: kept exact
  const huge = Float32Array.from({ length: FLOAT16_MIN_VALUES }, (_, i) => (i === 7 ? 1e6 : 1)); // out of range: kept
  const ints = Int32Array.from({ length: FLOAT16_MIN_VALUES }, (_, i) => i);
  const specs: WeightSpec[] = [
    { name: 'big', shape: [big.length], dtype: 'float32' },
    { name: 'small', shape: [10], dtype: 'float32' },
    { name: 'huge', shape: [huge.length], dtype: 'float32' },
    { name: 'ints', shape: [ints.length], dtype: 'int32' },
  ];
  const data = new Uint8Array([...bytes(big), ...bytes(small), ...bytes(huge), ...bytes(ints)]);
  const q = quantizeWeightsFloat16(specs, data);
  assert.deepEqual(q.specs.map((s) => s.quantization?.dtype ?? null), ['float16', null, null, null]);
  assert.equal(q.data.byteLength, data.byteLength - big.length * 2);
  const decoded = tf.io.decodeWeights(q.data.buffer.slice(q.data.byteOffset, q.data.byteOffset + q.data.byteLength) as ArrayBuffer, q.specs as tf.io.WeightsManifestEntry[]);
  const got = decoded.big.dataSync();
  let worst = 0;
  for (let i = 0; i < big.length; i++) worst = Math.max(worst, Math.abs(got[i] - big[i]) / Math.max(Math.abs(big[i]), 2 ** -14));
  assert.ok(worst > 0 && worst <= 2 ** -11, `relative rounding ${worst}`);
  assert.deepEqual(Array.from(decoded.small.dataSync()), Array.from(small));
  assert.deepEqual(Array.from(decoded.huge.dataSync()), Array.from(huge));
  assert.deepEqual(Array.from(decoded.ints.dataSync()), Array.from(ints));
  tf.dispose(Object.values(decoded));
});

test('a manifest that does not match its data fails naming the weight', () => {
  const specs: WeightSpec[] = [{ name: 'conv/kernel', shape: [FLOAT16_MIN_VALUES], dtype: 'float32' }];
  assert.throws(() => quantizeWeightsFloat16(specs, new Uint8Array(100)), /weight conv\/kernel: the weight data ends before it/);
  assert.throws(() => quantizeWeightsFloat16([{ name: 'b', shape: [2], dtype: 'float32' }], new Uint8Array(12)), /4 bytes beyond the last weight/);
  assert.throws(() => quantizeWeightsFloat16([{ name: 'q', shape: [2], dtype: 'float32', quantization: { dtype: 'uint8' } }], new Uint8Array(8)), /weight q: already quantized/);
});

test('saveModel(float16) halves weights.bin and loads back to the same predictions within float16 rounding', async () => {
  await initBackend({ force: 'wasm', quiet: true });
  const input = tf.input({ shape: [8, 8, 3] });
  const c = tf.layers.conv2d({ filters: 48, kernelSize: 3, activation: 'relu' }).apply(input) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({}).apply(c) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 40, activation: 'softmax' }).apply(g) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-f16-'));
  try {
    await saveModel(model, path.join(dir, 'full'));
    await saveModel(model, path.join(dir, 'half'), { note: 'kept' }, { float16: true });
    const size = (d: string) => fs.statSync(path.join(dir, d, 'weights.bin')).size;
    assert.equal(size('full') - size('half'), (27 * 48 + 48 * 40) * 2, 'both kernels (1,296 and 1,920 values) stored as float16, the biases not');
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'half', 'model.json'), 'utf8'));
    assert.equal(json.userDefinedMetadata.note, 'kept');
    const back = await loadModel(path.join(dir, 'half'));
    const x = tf.randomUniform([4, 8, 8, 3]);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(model.predict(x) as tf.Tensor, back.predict(x) as tf.Tensor))).dataSync()[0]);
    assert.ok(diff > 0 && diff < 1e-3, `probabilities moved by ${diff}`);
    tf.dispose([x]);
    back.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});
