import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { CAFFE_MEAN_BGR, channelNames, oneHot, preprocess, preprocessPixels } from '../../src/preprocess/preprocess';

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

const close = (a: ArrayLike<number>, b: number[], tol = 1e-4) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `at ${i}: ${a[i]} vs ${b[i]}`);
};

// Two pixels, RGB: (10, 20, 30) and (255, 0, 128).
const pixels = () => tf.tensor4d([10, 20, 30, 255, 0, 128], [1, 1, 2, 3]);

test('caffe is Keras preprocess_input(mode="caffe"): RGB -> BGR, minus the BGR ImageNet means, no scaling', () => {
  const x = pixels();
  const y = preprocess(x, 'caffe');
  assert.deepEqual(y.shape, [1, 1, 2, 3]);
  close(y.dataSync(), [30 - 103.939, 20 - 116.779, 10 - 123.68, 128 - 103.939, 0 - 116.779, 255 - 123.68]);
  assert.deepEqual([...CAFFE_MEAN_BGR], [103.939, 116.779, 123.68]);
  assert.deepEqual(channelNames('caffe'), ['B', 'G', 'R']);
  tf.dispose([x, y]);
});

test('unit is x/255, torch is ImageNet mean/std on x/255, tf is x/127.5 - 1, none copies', () => {
  const x = pixels();
  const unit = preprocess(x, 'unit');
  close(unit.dataSync(), [10, 20, 30, 255, 0, 128].map((v) => v / 255));
  const torch = preprocess(x, 'torch');
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  close(torch.dataSync(), [10, 20, 30, 255, 0, 128].map((v, i) => (v / 255 - mean[i % 3]) / std[i % 3]));
  const tfMode = preprocess(x, 'tf');
  close(tfMode.dataSync(), [10, 20, 30, 255, 0, 128].map((v) => v / 127.5 - 1));
  const none = preprocess(x, 'none');
  assert.notEqual(none, x);
  close(none.dataSync(), [10, 20, 30, 255, 0, 128]);
  assert.throws(() => preprocess(x, 'bgr' as never), /unknown mode 'bgr'/);
  tf.dispose([x, unit, torch, tfMode, none]);
});

test('preprocess leaves no intermediate tensors behind', () => {
  const x = pixels();
  const before = tf.memory().numTensors;
  for (const mode of ['caffe', 'unit', 'torch', 'tf', 'none'] as const) preprocess(x, mode).dispose();
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
});

test('oneHot: rows of 0/1, label smoothing as Keras does it, bad labels rejected', () => {
  const y = oneHot(new Uint8Array([2, 0, 1]), 3);
  assert.deepEqual(y.shape, [3, 3]);
  assert.equal(y.dtype, 'float32');
  assert.deepEqual(Array.from(y.dataSync()), [0, 0, 1, 1, 0, 0, 0, 1, 0]);
  const s = oneHot([1], 4, 0.2);
  close(s.dataSync(), [0.05, 0.85, 0.05, 0.05]);
  assert.throws(() => oneHot([3], 3), /label 3 at 0 is outside 0\.\.2/);
  assert.throws(() => oneHot([0], 3, 1), /labelSmoothing/);
  tf.dispose([y, s]);
});

test('preprocessPixels (the batch pipeline path) matches preprocess on tensors for every mode', () => {
  const bytes = new Uint8Array(4 * 5 * 3);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) % 256;
  bytes[0] = 0;
  bytes[1] = 255;
  for (const mode of ['caffe', 'unit', 'torch', 'tf', 'none'] as const) {
    const x = tf.tensor4d(new Float32Array(bytes), [1, 4, 5, 3]);
    const y = preprocess(x, mode);
    const js = preprocessPixels(bytes, mode);
    const ref = y.dataSync();
    if (mode === 'caffe' || mode === 'none') assert.deepEqual(js, ref, mode);
    else close(js, Array.from(ref), 1e-6);
    tf.dispose([x, y]);
  }
  assert.throws(() => preprocessPixels(bytes, 'rgb' as never), /unknown mode 'rgb'/);
});
