/**
 * The inference engine: TLWB_INFERENCE parsing, ORT and TF.js giving the same outputs through
 * runModel, a new export after the weights change, and the automatic fallback to TF.js for a model
 * the exporter cannot write.
 */
import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { describeEngine, inferenceEngine, requestedEngine, runModel } from '../../src/model/engine';

before(async () => {
  await initBackend({ force: 'wasm', quiet: true });
});

const onnx = () => inferenceEngine({ force: 'onnx', quiet: true });
const tfjs = () => inferenceEngine({ force: 'tfjs', quiet: true });

function smallModel(): tf.LayersModel {
  const input = tf.input({ shape: [6, 6, 3] });
  const x = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
  const y = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const z = tf.layers.dense({ units: 3, activation: 'softmax' }).apply(y) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: z });
}

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await d.data())[0];
  d.dispose();
  return v;
}

test('TLWB_INFERENCE: onnx, tfjs, auto; anything else is an error naming the variable', () => {
  assert.equal(requestedEngine('onnx'), 'onnx');
  assert.equal(requestedEngine('tfjs'), 'tfjs');
  assert.equal(requestedEngine(''), undefined);
  assert.equal(requestedEngine('auto'), undefined);
  assert.throws(() => requestedEngine('torch'), /TLWB_INFERENCE: unknown engine 'torch'/);
  assert.match(describeEngine(onnx()), /^inference: onnxruntime, \d+ threads - /);
  assert.match(describeEngine(tfjs()), /^inference: tfjs - /);
});

test('runModel: ORT and TF.js agree, the input is kept, no tensor leaks', async () => {
  const model = smallModel();
  const x = tf.randomNormal([5, 6, 6, 3], 0, 1, 'float32', 3);
  const a = await runModel(model, x, { engine: onnx() });
  const b = await runModel(model, x, { engine: tfjs() });
  assert.deepEqual(a.shape, [5, 3]);
  assert.ok((await maxDiff(a, b)) < 1e-6);
  assert.ok(!x.isDisposed);
  tf.dispose([a, b]);
  const before = tf.memory().numTensors;
  const c = await runModel(model, x, { engine: onnx() });
  c.dispose();
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
  model.dispose();
});

test('runModel: new weights (a training step) make a new export', async () => {
  const model = smallModel();
  const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 4);
  const first = await runModel(model, x, { engine: onnx() });
  model.setWeights(model.getWeights().map((w) => tf.mul(w, 2)));
  const second = await runModel(model, x, { engine: onnx() });
  const want = model.predict(x) as tf.Tensor;
  assert.ok((await maxDiff(first, second)) > 1e-3, 'the output changed with the weights');
  assert.ok((await maxDiff(second, want)) < 1e-6, 'and equals TF.js with the new weights');
  tf.dispose([x, first, second, want]);
  model.dispose();
});

test('runModel: a chain of layers runs as one graph', async () => {
  const model = smallModel();
  const chain = model.layers.slice(1, 3); // conv, pooling
  const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 5);
  const a = await runModel(chain, x, { engine: onnx() });
  const b = await runModel(chain, x, { engine: tfjs() });
  assert.deepEqual(a.shape, [2, 4]);
  assert.ok((await maxDiff(a, b)) < 1e-6);
  tf.dispose([x, a, b]);
  model.dispose();
});

test('runModel: a model with a layer the exporter lacks runs on TF.js (automatic choice), fails when ORT is forced', async () => {
  const input = tf.input({ shape: [2, 2, 1] });
  const up = tf.layers.upSampling2d({ size: [2, 2], name: 'up' }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: up });
  const x = tf.ones([1, 2, 2, 1]);
  const saved = process.env.TLWB_INFERENCE;
  try {
    process.env.TLWB_INFERENCE = 'onnx';
    await assert.rejects(runModel(model, x, { engine: onnx() }), /layer 'up' \(class UpSampling2D\)/);
    delete process.env.TLWB_INFERENCE;
    const y = await runModel(model, x, { engine: onnx() });
    assert.deepEqual(y.shape, [1, 4, 4, 1]);
    y.dispose();
  } finally {
    if (saved === undefined) delete process.env.TLWB_INFERENCE;
    else process.env.TLWB_INFERENCE = saved;
    x.dispose();
    model.dispose();
  }
});
