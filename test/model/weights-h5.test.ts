/**
 * Keras .h5 weights: files written here in Keras' layout (fixed-length string attributes as h5py
 * writes them, split layer_names0/1, nested-model groups, /model_weights) with known values; each
 * value must land in the right variable, and wrong files must fail naming the file and the layer.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { resnet, stack1 } from '../../src/model/resnet';
import { h5wasm } from '../../src/model/h5';
import { loadWeightsH5, saveWeightsH5 } from '../../src/model/weights-h5';

type Group = import('h5wasm').Group;

let dir: string;
const tmp = (name: string) => path.join(dir, name);

/** A small ResNet with the real block structure and names (conv1_*, conv2_block1_0_conv, ..., predictions). */
function tinyResNet(): tf.LayersModel {
  return resnet((x) => stack1(x, 2, 2, 'conv2', 1), false, true, 'resnet_tiny', { inputShape: [16, 16, 3], classes: 3 });
}

/** A distinct, position-dependent value for every element of every weight: layer index * 1000 + weight index * 100 + element. */
function knownValue(layerIndex: number, weightIndex: number, size: number): Float32Array {
  return Float32Array.from({ length: size }, (_, e) => layerIndex * 1000 + weightIndex * 100 + (e % 97));
}

interface KerasWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Writes a Keras save_weights-style file the way h5py does: fixed-length ASCII name attributes, datasets under /<layer>/<layer>/<w>:0. */
async function writeKerasFile(
  file: string,
  layers: { name: string; weights: KerasWeight[] }[],
  opts: { splitNames?: boolean; underModelWeights?: boolean } = {},
): Promise<void> {
  const h5 = await h5wasm();
  const f = new h5.File(file, 'w');
  const root: Group = opts.underModelWeights ? f.create_group('model_weights') : f;
  const names = layers.map((l) => l.name);
  const width = Math.max(...names.map((n) => n.length));
  if (opts.splitNames) {
    const half = Math.ceil(names.length / 2);
    root.create_attribute('layer_names0', names.slice(0, half), [half], `A${width}`);
    root.create_attribute('layer_names1', names.slice(half), [names.length - half], `A${width}`);
  } else {
    root.create_attribute('layer_names', names, [names.length], `A${width}`);
  }
  root.create_attribute('backend', 'tensorflow');
  for (const layer of layers) {
    const g = root.create_group(layer.name);
    const wn = layer.weights.map((w) => w.name);
    g.create_attribute('weight_names', wn, [wn.length], `A${Math.max(1, ...wn.map((n) => n.length))}`);
    for (const w of layer.weights) {
      const parts = w.name.split('/');
      let sub: Group = g;
      for (const p of parts.slice(0, -1)) sub = (sub.get(p) as Group | null) ?? sub.create_group(p);
      sub.create_dataset({ name: parts[parts.length - 1], data: w.data, shape: w.shape, dtype: '<f4' });
    }
  }
  f.close();
}

/** The Keras file content for `model`: every layer (weights or not), with known values. */
function kerasLayersFor(model: tf.LayersModel) {
  return model.layers.map((layer, li) => ({
    name: layer.name,
    weights: layer.weights.map((w, wi) => {
      const shape = w.shape as number[];
      const size = shape.reduce((p, d) => p * d, 1);
      return { name: `${w.originalName}:0`, shape, data: knownValue(li, wi, size) };
    }),
  }));
}

async function assertAllKnown(model: tf.LayersModel, layers: ReturnType<typeof kerasLayersFor>, origin = model) {
  for (const [li, layer] of origin.layers.entries()) {
    for (const [wi, w] of layer.weights.entries()) {
      const target = model === origin ? w : model.weights.find((m) => m.originalName === w.originalName)!;
      const got = await target.read().data();
      assert.deepEqual(Array.from(got), Array.from(layers[li].weights[wi].data), `${w.originalName}`);
    }
  }
}

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-h5-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('every value of a Keras-layout file lands in its own variable (kernel, bias, gamma, beta, moving mean/variance)', async () => {
  const model = tinyResNet();
  const layers = kerasLayersFor(model);
  await writeKerasFile(tmp('tiny.h5'), layers);
  const report = await loadWeightsH5(model, tmp('tiny.h5'));
  assert.ok(report.loaded.includes('conv2_block1_0_bn') && report.loaded.includes('predictions'));
  assert.deepEqual(report.unused, []);
  await assertAllKnown(model, layers);
  model.dispose();
});

test('layer_names split into layer_names0, layer_names1 and a full-model file (/model_weights) load too', async () => {
  for (const [name, opts] of [['split.h5', { splitNames: true }], ['full.h5', { underModelWeights: true }]] as const) {
    const model = tinyResNet();
    const layers = kerasLayersFor(model);
    await writeKerasFile(tmp(name), layers, opts);
    await loadWeightsH5(model, tmp(name));
    await assertAllKnown(model, layers);
    model.dispose();
  }
});

test('a nested model (the seed model saved by Keras) loads from its one group, by weight name', async () => {
  const base = tinyResNet();
  const input = tf.input({ shape: [16, 16, 3], name: 'input_2' });
  const out = tf.layers.dense({ units: 2, activation: 'softmax', name: 'dense' }).apply(base.apply(input) as tf.SymbolicTensor) as tf.SymbolicTensor;
  const outer = tf.model({ inputs: input, outputs: out });
  const baseLayers = kerasLayersFor(base);
  // Keras lists a nested model's trainable weights first, then the non-trainable ones: another order than the layers'.
  const all = baseLayers.flatMap((l) => l.weights);
  const ordered = [...all.filter((w) => !/moving_/.test(w.name)), ...all.filter((w) => /moving_/.test(w.name))];
  const dense: KerasWeight[] = [
    { name: 'dense/kernel:0', shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
    { name: 'dense/bias:0', shape: [2], data: Float32Array.from([7, 8]) },
  ];
  await writeKerasFile(tmp('nested.h5'), [
    { name: 'input_2', weights: [] },
    { name: 'resnet_tiny', weights: ordered },
    { name: 'dense', weights: dense },
  ]);
  await loadWeightsH5(outer, tmp('nested.h5'));
  await assertAllKnown(outer, baseLayers, base);
  assert.deepEqual(Array.from(await outer.getLayer('dense').weights[1].read().data()), [7, 8]);
  outer.dispose();
});

test('saveWeightsH5 writes what loadWeightsH5 (and Keras) reads: values survive a round trip', async () => {
  const model = tinyResNet();
  const layers = kerasLayersFor(model);
  await writeKerasFile(tmp('src.h5'), layers);
  await loadWeightsH5(model, tmp('src.h5'));
  await saveWeightsH5(model, tmp('saved.h5'));
  const again = tinyResNet();
  await loadWeightsH5(again, tmp('saved.h5'));
  await assertAllKnown(again, layers);
  const h5 = await h5wasm();
  const f = new h5.File(tmp('saved.h5'), 'r');
  assert.deepEqual(f.attrs['layer_names'].value, model.layers.map((l) => l.name));
  assert.deepEqual((f.get('conv1_conv') as Group).attrs['weight_names'].value, ['conv1_conv/kernel:0', 'conv1_conv/bias:0']);
  f.close();
  assert.equal(fs.readdirSync(dir).filter((n) => n.includes('.tmp-')).length, 0, 'no temp file left');
  model.dispose();
  again.dispose();
});

test('a missing layer fails naming the file and the layer; allowMissing keeps it', async () => {
  const model = tinyResNet();
  const layers = kerasLayersFor(model).filter((l) => l.name !== 'conv2_block2_2_bn');
  await writeKerasFile(tmp('missing.h5'), layers);
  await assert.rejects(loadWeightsH5(model, tmp('missing.h5')), (e: Error) => {
    assert.match(e.message, /missing\.h5/);
    assert.match(e.message, /layer 'conv2_block2_2_bn'.*missing from the file/);
    return true;
  });
  await loadWeightsH5(model, tmp('missing.h5'), { allowMissing: ['conv2_block2_2_bn'] });
  model.dispose();
});

test('a wrong shape fails naming the layer and both shapes, before any variable changes', async () => {
  const model = tinyResNet();
  const layers = kerasLayersFor(model);
  const pred = layers.find((l) => l.name === 'predictions')!;
  pred.weights[0] = { name: 'predictions/kernel:0', shape: [8, 1000], data: new Float32Array(8000) };
  await writeKerasFile(tmp('shape.h5'), layers);
  const kernelBefore = await model.getLayer('conv1_conv').weights[0].read().data();
  await assert.rejects(loadWeightsH5(model, tmp('shape.h5')), (e: Error) => {
    assert.match(e.message, /shape\.h5: layer 'predictions' weight 'predictions\/kernel:0' has shape \[8, 1000\] in the file, the model expects \[8, 3\]/);
    return true;
  });
  assert.deepEqual(await model.getLayer('conv1_conv').weights[0].read().data(), kernelBefore, 'nothing written');
  model.dispose();
});

test('not HDF5 at all, truncated, absent: errors name the file', async () => {
  const model = tinyResNet();
  fs.writeFileSync(tmp('text.h5'), '<html>404 Not Found</html>\n'.repeat(40));
  await assert.rejects(loadWeightsH5(model, tmp('text.h5')), /text\.h5: not an HDF5 file/);
  await writeKerasFile(tmp('whole.h5'), kerasLayersFor(model));
  const bytes = fs.readFileSync(tmp('whole.h5'));
  fs.writeFileSync(tmp('cut.h5'), bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  await assert.rejects(loadWeightsH5(model, tmp('cut.h5')), /cut\.h5: truncated HDF5 file/);
  await assert.rejects(loadWeightsH5(model, tmp('absent.h5')), /absent\.h5: no such file/);
  model.dispose();
});

test('a nested model is written in Keras order (trainable weights first, then moving statistics) and reads back', async () => {
  const base = tinyResNet();
  const input = tf.input({ shape: [16, 16, 3], name: 'input_2' });
  const out = tf.layers.dense({ units: 2, name: 'dense' }).apply(base.apply(input) as tf.SymbolicTensor) as tf.SymbolicTensor;
  const outer = tf.model({ inputs: input, outputs: out });
  base.trainable = false; // the order must not depend on what is frozen
  await saveWeightsH5(outer, tmp('outer.h5'));
  const h5 = await h5wasm();
  const f = new h5.File(tmp('outer.h5'), 'r');
  const names = (f.get('resnet_tiny') as Group).attrs['weight_names'].value as string[];
  f.close();
  const firstMoving = names.findIndex((n) => /moving_/.test(n));
  assert.ok(firstMoving > 0 && names.slice(firstMoving).every((n) => /moving_/.test(n)), 'moving statistics last');
  assert.equal(names.length, base.weights.length);
  assert.deepEqual(names.slice(0, 2), ['conv1_conv/kernel:0', 'conv1_conv/bias:0']);
  const copy = tinyResNet();
  const input2 = tf.input({ shape: [16, 16, 3], name: 'input_2' });
  const outer2 = tf.model({ inputs: input2, outputs: tf.layers.dense({ units: 2, name: 'dense' }).apply(copy.apply(input2) as tf.SymbolicTensor) as tf.SymbolicTensor });
  await loadWeightsH5(outer2, tmp('outer.h5'));
  const a = await base.getLayer('conv2_block2_3_bn').weights[2].read().data();
  const b = await copy.getLayer('conv2_block2_3_bn').weights[2].read().data();
  assert.deepEqual(b, a);
  outer.dispose();
  outer2.dispose();
});
