/**
 * The ResNet-50 builder against Keras' definition (layer names, classes, weight shapes, parameter
 * counts), the article's seed model, and a full-size .h5 round trip. One ResNet-50 is built and
 * shared (building 25.6M parameters costs seconds).
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { BN_EPSILON, resnet, stack1 } from '../../src/model/resnet';
import { buildModel, BuiltModel, resolveKerasWeights } from '../../src/model/build';
import { countParams, setBaseTrainable } from '../../src/model/freeze';
import { PRESETS, KerasResNetPreset } from '../../src/model/presets';
import { h5wasm } from '../../src/model/h5';
import { loadWeightsH5, saveWeightsH5 } from '../../src/model/weights-h5';

interface KerasLayer {
  name: string;
  class: string;
  weights: number[][];
}
const keras = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../test/model/fixtures/keras-resnet50.json'), 'utf8')) as {
  layerCount: number;
  params: number;
  trainableParams: number;
  layers: KerasLayer[];
};

let seed: BuiltModel;
let dir: string;

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
  seed = await buildModel({ arch: 'resnet50', head: 'seed', inputSize: 224, weights: 'none' }, 10);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-r50-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the seed model has exactly the article parameter count (ResNet50 with top + Dense(10))', () => {
  const c = countParams(seed.model);
  assert.equal(c.params, 25_646_722);
  assert.deepEqual(seed.model.inputs[0].shape, [null, 32, 32, 3]);
  assert.deepEqual(seed.model.outputs[0].shape, [null, 10]);
  assert.equal(seed.preprocess, 'caffe');
  assert.equal(seed.inputSize, 224);
  // input -> resize -> base -> head, base and head nested models
  assert.deepEqual(seed.model.layers.map((l) => l.getClassName()), ['InputLayer', 'ImageResize', 'Model', 'Model']);
});

test('ResNet50 matches Keras: 177 layers, names, classes, weight shapes, 25,636,712 / 25,583,592 params', () => {
  const base = seed.base;
  assert.equal(base.name, 'resnet50');
  assert.equal(base.layers.length, keras.layerCount);
  const c = countParams(base);
  assert.equal(c.params, keras.params);
  assert.equal(c.trainableParams, keras.trainableParams);
  assert.equal(c.params, 25_636_712);
  assert.equal(c.trainableParams, 25_583_592);
  const ours = new Map(base.layers.map((l) => [l.name, l]));
  const missing = keras.layers.filter((k) => k.name !== 'input_1' && !ours.has(k.name)).map((k) => k.name);
  assert.deepEqual(missing, []);
  for (const k of keras.layers) {
    if (k.name === 'input_1') continue;
    const layer = ours.get(k.name)!;
    const cls = layer.getClassName();
    assert.equal(cls === 'Model' ? 'Functional' : cls, k.class, `class of ${k.name}`);
    assert.deepEqual(layer.weights.map((w) => w.shape), k.weights, `weight shapes of ${k.name}`);
  }
});

test('Keras details: BN epsilon 1.001e-5, stride on the first 1x1 conv of a stage, same-padded 3x3', () => {
  const base = seed.base;
  for (const l of base.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    assert.equal((l.getConfig() as { epsilon: number }).epsilon, BN_EPSILON, l.name);
  }
  const strides = (name: string) => (base.getLayer(name).getConfig() as { strides: number[] }).strides;
  assert.deepEqual(strides('conv2_block1_1_conv'), [1, 1]);
  assert.deepEqual(strides('conv3_block1_1_conv'), [2, 2]);
  assert.deepEqual(strides('conv3_block1_0_conv'), [2, 2]);
  assert.deepEqual(strides('conv3_block1_2_conv'), [1, 1]);
  assert.equal((base.getLayer('conv3_block1_2_conv').getConfig() as { padding: string }).padding, 'same');
  assert.deepEqual(base.getLayer('conv5_block3_out').outputShape, [null, 7, 7, 2048]);
  assert.deepEqual(base.getLayer('pool1_pool').outputShape, [null, 56, 56, 64]);
});

test('the generic builder makes other depths from a stack function (tiny, fast)', () => {
  const tiny = resnet((x) => stack1(stack1(x, 4, 2, 'conv2', 1), 8, 1, 'conv3'), false, true, 'tiny', {
    includeTop: false,
    pooling: 'max',
    inputShape: [32, 32, 3],
  });
  const names = tiny.layers.map((l) => l.name);
  assert.ok(names.includes('conv2_block2_out') && names.includes('conv3_block1_0_conv') && names.includes('max_pool'));
  assert.ok(!names.includes('conv2_block2_0_conv'), 'only the first block of a stage projects');
  assert.deepEqual(tiny.outputs[0].shape, [null, 32]);
  tiny.dispose();
});

test('a full-size ResNet-50 .h5 (random values) round-trips in Keras layout', async () => {
  const file = path.join(dir, 'resnet50.h5');
  {
    const base = seed.base;
    const probe = ['conv1_conv/kernel', 'conv4_block6_3_bn/moving_variance', 'conv5_block3_2_conv/bias', 'predictions/kernel'];
    const pick = () => probe.map((n) => base.weights.find((w) => w.originalName === n)!);
    // Give the BN statistics non-default values, so a mix-up between them would show.
    const mv = pick()[1];
    mv.write(tf.randomUniform(mv.shape as number[], 0.5, 2));
    const before = await Promise.all(pick().map((w) => w.read().data()));
    await saveWeightsH5(base, file);
    assert.ok(fs.statSync(file).size > 25_636_712 * 4, 'all weights written');
    const h5 = await h5wasm();
    const f = new h5.File(file, 'r');
    const layerNames = f.attrs['layer_names'].value as string[];
    const bnNames = (f.get('conv1_bn') as import('h5wasm').Group).attrs['weight_names'].value as string[];
    f.close();
    assert.equal(layerNames.length, 177);
    assert.deepEqual(bnNames, ['conv1_bn/gamma:0', 'conv1_bn/beta:0', 'conv1_bn/moving_mean:0', 'conv1_bn/moving_variance:0']);
    for (const w of pick()) w.write(tf.zerosLike(w.read()));
    const report = await loadWeightsH5(base, file);
    assert.equal(report.values, 25_636_712);
    const after = await Promise.all(pick().map((w) => w.read().data()));
    probe.forEach((n, i) => assert.deepEqual(after[i], before[i], n));
  }
});

test("freezing the seed model's base leaves Dense(10) trainable: 10,010 parameters, as in the article's second phase", () => {
  setBaseTrainable(seed, false);
  assert.equal(countParams(seed.model).trainableParams, 10_010);
  setBaseTrainable(seed, { from: 'conv5_block1_1_conv' });
  const c = countParams(seed.model);
  assert.ok(c.trainableParams > 10_010 && c.trainableParams < 25_593_602);
  setBaseTrainable(seed, true);
  assert.equal(countParams(seed.model).trainableParams, 25_593_602);
});

test("a local .h5 serves buildModel (a with-top file also fills a no-top 'gap' base); RESNET50_WEIGHTS is honoured", async () => {
  const file = path.join(dir, 'resnet50.h5');
  assert.ok(fs.existsSync(file), 'written by the round-trip test');
  const gap = await buildModel({ arch: 'resnet50', head: 'gap', inputSize: 64, weights: file, dropout: 0.5 }, 10);
  assert.equal(gap.weightsSource, file);
  assert.deepEqual(gap.weightsReport!.unused, ['predictions']);
  assert.deepEqual(gap.base.outputs[0].shape, [null, 2048]);
  const ours = await gap.base.getLayer('conv4_block6_3_bn').weights[3].read().data();
  const src = await seed.base.getLayer('conv4_block6_3_bn').weights[3].read().data();
  assert.deepEqual(ours, src);
  gap.model.dispose();
  const preset = PRESETS.resnet50 as KerasResNetPreset;
  const saved = { ...process.env };
  try {
    process.env.RESNET50_WEIGHTS = file;
    assert.equal(await resolveKerasWeights(preset, true, 'imagenet'), file);
    assert.equal(await resolveKerasWeights(preset, false, 'imagenet'), file, 'no-top base from the with-top file');
    process.env.RESNET50_WEIGHTS = path.join(dir, 'absent.h5');
    await assert.rejects(resolveKerasWeights(preset, true, 'imagenet'), /RESNET50_WEIGHTS=.*absent\.h5: no such file/);
    await assert.rejects(resolveKerasWeights(preset, true, path.join(dir, 'nope.h5')), /model\.weights '.*nope\.h5': no such file/);
  } finally {
    process.env = saved;
  }
});
