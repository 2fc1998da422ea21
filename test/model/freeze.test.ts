/**
 * Freezing with Keras semantics: a frozen base gets no updates, its BatchNormalization runs in
 * inference mode during training (moving statistics untouched, training output == inference output),
 * and this survives saveModel/loadModel. Tiny models on the cpu backend.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { countParams, setBaseTrainable } from '../../src/model/freeze';
import { loadModel, saveModel } from '../../src/model/io';
import { ImageResize } from '../../src/model/layers';

let dir: string;

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-freeze-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** input(8x8) -> resize(12) -> base [conv -> bn -> relu -> conv2 -> bn2 -> relu -> gap] -> head [dense softmax]. */
function tinyBuilt() {
  const bIn = tf.input({ shape: [12, 12, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(bIn) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'relu2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as tf.SymbolicTensor;
  const base = tf.model({ inputs: bIn, outputs: x, name: 'base' });
  const hIn = tf.input({ shape: [4] });
  const head = tf.model({ inputs: hIn, outputs: tf.layers.dense({ units: 2, activation: 'softmax', name: 'dense' }).apply(hIn) as tf.SymbolicTensor, name: 'head' });
  const image = tf.input({ shape: [8, 8, 3], name: 'image' });
  const r = new ImageResize({ height: 12, width: 12, name: 'resize' }).apply(image) as tf.SymbolicTensor;
  const model = tf.model({ inputs: image, outputs: head.apply(base.apply(r)) as tf.SymbolicTensor });
  return { model, base, head };
}

const data = () => ({
  xs: tf.randomNormal([8, 8, 8, 3], 3, 2, 'float32', 1),
  ys: tf.oneHot(tf.tensor1d([0, 1, 0, 1, 1, 0, 0, 1], 'int32'), 2),
});

async function snapshot(m: tf.LayersModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const w of m.weights) out.set(w.originalName, (await w.read().data()) as Float32Array);
  return out;
}

async function oneStep(model: tf.LayersModel): Promise<void> {
  model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
  const { xs, ys } = data();
  await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0 });
  tf.dispose([xs, ys]);
}

function changed(a: Map<string, Float32Array>, b: Map<string, Float32Array>, name: string): boolean {
  const x = a.get(name)!;
  const y = b.get(name)!;
  return x.some((v, i) => v !== y[i]);
}

async function trainVsInference(base: tf.LayersModel): Promise<number> {
  const x = tf.randomNormal([4, 12, 12, 3], 3, 2, 'float32', 2);
  const train = base.apply(x, { training: true }) as tf.Tensor;
  const infer = base.predict(x) as tf.Tensor;
  const diff = tf.max(tf.abs(tf.sub(train, infer)));
  const d = (await diff.data())[0];
  tf.dispose([x, train, infer, diff]);
  return d;
}

test('control: an unfrozen TF.js BatchNormalization updates its moving statistics and differs in training', async () => {
  const built = tinyBuilt();
  setBaseTrainable(built, true);
  const before = await snapshot(built.model);
  await oneStep(built.model);
  const afterStep = await snapshot(built.model);
  assert.ok(changed(before, afterStep, 'bn/moving_mean'), 'moving mean moves when trainable');
  assert.ok(changed(before, afterStep, 'conv/kernel'));
  assert.ok((await trainVsInference(built.base)) > 1e-3, 'batch statistics differ from moving ones');
  built.model.dispose();
});

test('frozen base: after a training step every moving mean/variance and base weight is unchanged, the head trained', async () => {
  const built = tinyBuilt();
  setBaseTrainable(built, false);
  const c = countParams(built.model);
  assert.equal(c.trainableParams, 4 * 2 + 2, 'only the head trains');
  const before = await snapshot(built.model);
  await oneStep(built.model);
  const afterStep = await snapshot(built.model);
  for (const name of before.keys()) {
    if (name.startsWith('dense/')) assert.ok(changed(before, afterStep, name), `${name} trained`);
    else assert.ok(!changed(before, afterStep, name), `${name} unchanged`);
  }
  assert.equal(await trainVsInference(built.base), 0, "the frozen base's training output equals its inference output");
  built.model.dispose();
});

test("{from: 'conv2'} freezes the layers before it (Keras order) and trains the rest", async () => {
  const built = tinyBuilt();
  setBaseTrainable(built, { from: 'conv2' });
  const before = await snapshot(built.model);
  await oneStep(built.model);
  const afterStep = await snapshot(built.model);
  for (const n of ['conv/kernel', 'conv/bias', 'bn/gamma', 'bn/moving_mean', 'bn/moving_variance']) assert.ok(!changed(before, afterStep, n), `${n} frozen`);
  for (const n of ['conv2/kernel', 'bn2/gamma', 'bn2/moving_mean', 'dense/kernel']) assert.ok(changed(before, afterStep, n), `${n} trains`);
  assert.throws(() => setBaseTrainable(built, { from: 'nope' }), /no layer 'nope' in base 'base'/);
  built.model.dispose();
});

test('the frozen state and its BatchNormalization semantics survive saveModel/loadModel', async () => {
  const built = tinyBuilt();
  setBaseTrainable(built, false);
  const target = path.join(dir, 'frozen');
  await saveModel(built.model, target);
  const loaded = await loadModel(target);
  const base = loaded.layers.find((l) => l.name === 'base') as tf.LayersModel;
  assert.equal(base.getLayer('bn').trainable, false);
  assert.equal(await trainVsInference(base), 0);
  const before = await snapshot(loaded);
  await oneStep(loaded);
  const afterStep = await snapshot(loaded);
  assert.ok(!changed(before, afterStep, 'bn/moving_variance'));
  assert.ok(changed(before, afterStep, 'dense/kernel'));
  built.model.dispose();
  loaded.dispose();
});

test('setting base.trainable = false directly (without setBaseTrainable) also freezes its BatchNormalization', async () => {
  const built = tinyBuilt();
  setBaseTrainable(built, true);
  built.base.trainable = false;
  const before = await snapshot(built.model);
  await oneStep(built.model);
  const afterStep = await snapshot(built.model);
  assert.ok(!changed(before, afterStep, 'bn/moving_mean') && !changed(before, afterStep, 'bn2/moving_variance'));
  assert.ok(!changed(before, afterStep, 'conv/kernel'));
  assert.ok(changed(before, afterStep, 'dense/kernel'));
  assert.equal(await trainVsInference(built.base), 0);
  built.model.dispose();
});
