/**
 * buildModel with its heads on Darknet-Tiny (the backbone these machines have), model files,
 * the layer table, and the `model` command. ResNet-50 counts are in resnet.test.ts.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { projectRoot } from '../../src/config';
import { buildModel, splitBuilt } from '../../src/model/build';
import { countParams, setBaseTrainable } from '../../src/model/freeze';
import { loadModel, readModelMetadata, saveModel } from '../../src/model/io';
import { presetFor, PRESETS } from '../../src/model/presets';
import { layerRows, layerTable } from '../../src/model/summary';
import { imagenetLabels, parseLabels, topK } from '../../src/model/imagenet';
import { imagenetCheck, paramRows } from '../../src/model/inspect';

const darknetDir = process.env.DARKNET_TINY_DIR || path.resolve(projectRoot, '../shared/data/darknet-tiny');
const skip = fs.existsSync(path.join(darknetDir, 'model.json')) ? false : `no Darknet-Tiny at ${darknetDir}`;
let dir: string;

before(async () => {
  await initBackend({ force: 'wasm', quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-build-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('presets are data: arch, input size, preprocessing, weights URL + md5, cut layer', () => {
  assert.equal(PRESETS.resnet50.preprocess, 'caffe');
  assert.equal(PRESETS.resnet50.inputSize, 224);
  const r50 = PRESETS.resnet50;
  assert.ok(r50.kind === 'keras-resnet' && r50.weights.notop.md5 === '4d473c1dd8becc155b73f8504c6f6626');
  const dk = PRESETS['darknet-tiny'];
  assert.ok(dk.kind === 'tfjs' && dk.preprocess === 'unit' && dk.cutLayer === 'leaky_re_lu_15');
  assert.throws(() => presetFor('vgg99'), /model\.arch 'vgg99': not a preset/);
});

test("'gap' head on Darknet-Tiny: stored 32x32 input -> resize -> base (cut + avg pool) -> dropout + Dense", { skip }, async () => {
  const built = await buildModel({ arch: 'darknet-tiny', head: 'gap', inputSize: 64, weights: 'imagenet', dropout: 0.2 }, 10);
  assert.deepEqual(built.model.inputs[0].shape, [null, 32, 32, 3]);
  assert.deepEqual(built.base.inputs[0].shape, [null, 64, 64, 3]);
  assert.deepEqual(built.base.outputs[0].shape, [null, 128]);
  assert.deepEqual(built.head.layers.map((l) => l.getClassName()), ['InputLayer', 'Dropout', 'Dense']);
  assert.equal(countParams(built.head).params, 128 * 10 + 10);
  assert.equal(built.preprocess, 'unit');
  assert.equal(built.weightsSource, darknetDir);
  const x = tf.randomUniform([3, 32, 32, 3]);
  const viaParts = built.head.predict(built.base.predict(tf.image.resizeBilinear(x as tf.Tensor4D, [64, 64], false, true))) as tf.Tensor;
  const whole = built.model.predict(x) as tf.Tensor;
  assert.deepEqual(whole.shape, [3, 10]);
  const diff = (await tf.max(tf.abs(tf.sub(whole, viaParts))).data())[0];
  assert.ok(diff < 1e-5, 'model == head(base(resize(x))): base features can be cached');
  const sums = await tf.sum(whole, 1).data();
  sums.forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
  tf.dispose([x, viaParts, whole]);
  built.model.dispose();
});

test("'seed' and 'none' heads on Darknet-Tiny: softmax over the 1000 classes, then Dense(10) for 'seed'", { skip }, async () => {
  const seed = await buildModel({ arch: 'darknet-tiny', head: 'seed', inputSize: 64, weights: 'imagenet' }, 10);
  const none = await buildModel({ arch: 'darknet-tiny', head: 'none', inputSize: 64, weights: 'imagenet' }, 10);
  assert.equal(countParams(seed.model).params - countParams(none.model).params, 1000 * 10 + 10);
  assert.deepEqual(seed.head.layers.map((l) => l.name), ['features', 'imagenet_softmax', 'dense']);
  assert.deepEqual(none.model.outputs[0].shape, [null, 1000]);
  const x = tf.randomUniform([2, 32, 32, 3]);
  const p = none.model.predict(x) as tf.Tensor2D;
  const top = await topK(p, 5);
  assert.equal(top[0].length, 5);
  assert.ok(top[0][0].probability >= top[0][4].probability && top[0][0].label.startsWith('#'));
  tf.dispose([x, p]);
  seed.model.dispose();
  none.model.dispose();
});

test('saveModel/loadModel: atomic folder, same predictions, custom resize layer, metadata, base/head found again', { skip }, async () => {
  const built = await buildModel({ arch: 'darknet-tiny', head: 'gap', inputSize: 48, weights: 'imagenet' }, 10);
  setBaseTrainable(built, false);
  const target = path.join(dir, 'run', 'model-initial');
  await saveModel(built.model, target, { arch: 'darknet-tiny', preprocess: built.preprocess });
  await saveModel(built.model, target); // replacing an existing folder
  assert.deepEqual(fs.readdirSync(target).sort(), ['checksums.json', 'model.json', 'weights.bin']);
  assert.deepEqual(fs.readdirSync(path.dirname(target)), ['model-initial'], 'no temp folders left');
  await saveModel(built.model, target, { arch: 'darknet-tiny' });
  assert.equal(readModelMetadata(target).arch, 'darknet-tiny');
  const loaded = await loadModel(target);
  const x = tf.randomUniform([2, 32, 32, 3]);
  const a = built.model.predict(x) as tf.Tensor;
  const b = loaded.predict(x) as tf.Tensor;
  assert.ok((await tf.max(tf.abs(tf.sub(a, b))).data())[0] < 1e-6);
  const again = splitBuilt(loaded, { arch: 'darknet-tiny', preprocess: 'unit', headKind: 'gap' });
  assert.equal(again.inputSize, 48);
  assert.equal(countParams(again.model).trainableParams, 1290, 'frozen base stays frozen');
  await assert.rejects(loadModel(path.join(dir, 'nothing')), /nothing: no model\.json/);
  tf.dispose([x, a, b]);
  built.model.dispose();
  loaded.dispose();
});

test('layer table: one row per layer with type, output shape, params, trainable (nested expanded)', { skip }, async () => {
  const built = await buildModel({ arch: 'darknet-tiny', head: 'gap', inputSize: 64, weights: 'none' }, 10);
  assert.equal(built.weightsSource, 'random');
  setBaseTrainable(built, false);
  const rows = layerRows(built.model, { expand: true });
  const conv = rows.find((r) => r.name === 'conv2d_1')!;
  assert.deepEqual(conv, { name: 'conv2d_1', type: 'Conv2D', outputShape: '(None, 64, 64, 16)', params: 432, trainable: false, parent: 'darknet_tiny' });
  const dense = rows.find((r) => r.name === 'dense')!;
  assert.equal(dense.trainable, true);
  assert.equal(rows.reduce((s, r) => s + r.params, 0), countParams(built.model).params);
  const df = layerTable(built.model, { expand: true });
  assert.equal(df.height, rows.length);
  assert.deepEqual(df.columns, ['parent', 'name', 'type', 'outputShape', 'params', 'trainable']);
  assert.equal(layerRows(built.model).length, 4, 'collapsed: image, resize, base, head');
  built.model.dispose();
});

test('ImageNet label files: Keras class index JSON and one-name-per-line lists', () => {
  const json = JSON.stringify(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [String(i), [`n${i}`, `class${i}`]])));
  assert.equal(parseLabels(json, 'x')[999], 'class999');
  // The bundled lists: 1000 names in each order (ImageNet names two classes 'crane' and two 'maillot'),
  // Keras' starting with the tench, Darknet's with the kit fox.
  for (const order of ['keras', 'darknet'] as const) {
    assert.equal(imagenetLabels(order).length, 1000);
    assert.ok(new Set(imagenetLabels(order)).size >= 998);
  }
  assert.equal(imagenetLabels('keras')[0], 'tench, Tinca tinca');
  assert.equal(imagenetLabels('darknet')[0], 'kit fox');
  assert.equal(parseLabels(Array.from({ length: 1200 }, (_, i) => `l${i}`).join('\n'), 'y').length, 1000);
  assert.throws(() => parseLabels('a\nb', 'short.list'), /short\.list: expected at least 1000/);
  const js = `// ml5\nexport default [\n${Array.from({ length: 1000 }, (_, i) => `    "name \\"${i}\\""`).join(',\n')},\n]`;
  const parsed = parseLabels(js, 'labels.js');
  assert.equal(parsed.length, 1000);
  assert.equal(parsed[7], 'name "7"');
});

test('cli: model --arch darknet-tiny --head gap --json prints the counts', { skip }, () => {
  const out = execFileSync(process.execPath, [path.join(projectRoot, 'dist/src/cli.js'), 'model', '--arch', 'darknet-tiny', '--head', 'gap', '--input-size', '64', '--json'], {
    env: { ...process.env, TLWB_BACKEND: 'wasm' },
    encoding: 'utf8',
  });
  const j = JSON.parse(out.trim().split('\n').at(-1)!);
  assert.equal(j.arch, 'darknet-tiny');
  assert.equal(j.head, 'gap');
  assert.equal(j.params, j.trainableParams + j.nonTrainableParams);
  assert.equal(j.params - 1290, 917_488, 'Darknet-Tiny up to leaky_re_lu_15 + Dense(128->10)');
  assert.ok(j.layers > 40);
});

test('imagenetCheck: the backbone with its ImageNet top ranks 5 classes per image; paramRows per part', { skip }, async () => {
  const images = new Uint8Array(3 * 32 * 32 * 3).map((_, i) => (i * 37) % 256);
  const set = { images, labels: Uint8Array.from([3, 8, 0]), count: 3, height: 32, width: 32 };
  const cfg = { arch: 'darknet-tiny', head: 'gap' as const, inputSize: 64, weights: 'imagenet' };
  const check = await imagenetCheck(cfg, set, [0, 2], { inputSize: 64, classNames: ['a', 'b', 'c', 'cat', 'd', 'e', 'f', 'g', 'ship', 'h'] });
  assert.equal(check.rows.length, 2);
  assert.equal(check.rows[0].class, 'cat');
  assert.match(String(check.rows[1].top5), /^.+ \(0\.\d\d\)$/);
  // Darknet's outputs are named from the bundled Darknet-order list, never '#52'.
  for (const row of check.rows) for (let j = 1; j <= 5; j++) assert.doesNotMatch(String(row[`top${j}`]), /^#\d+/);
  assert.equal(check.items.length, 2);
  assert.equal(check.note, 'labels: ImageNet class names in darknet order');
  const scratch = await imagenetCheck({ ...cfg, weights: 'none' }, set, [0]);
  assert.deepEqual([scratch.rows, scratch.items], [[], []]);
  assert.match(scratch.note, /weights=none: the base starts from random weights/);
  const built = await buildModel(cfg, 10);
  const rows = paramRows(built);
  assert.deepEqual(rows.map((r) => r.part), ['model', 'base', 'head']);
  assert.equal(rows[0].params, rows[1].params + rows[2].params);
  built.model.dispose();
});
