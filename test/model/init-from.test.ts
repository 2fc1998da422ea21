/**
 * model.initFrom: the profile's model built as usual, then every weight set from a model this
 * workbench trained and saved (a folder with model.json, a run folder's model/, a published folder's
 * float16 weights), matched by name; a missing folder, a missing or reshaped weight and another class
 * count are refused naming the file. The backbone is a tiny TF.js model.json written here, built
 * through buildTrainModel as training builds its model; the published MobileNet runs when its files are here.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { projectRoot, type Profile } from '../../src/config';
import { buildModel } from '../../src/model/build';
import { float16Bits, fromFloat16Bits } from '../../src/model/float16';
import { initFromTrained, resolveInitFrom } from '../../src/model/init-from';
import { loadModel, saveModel } from '../../src/model/io';
import { PRESETS, type TfjsPreset } from '../../src/model/presets';
import { stableWeights, type TrainableModel } from '../../src/model/split';
import { weightsHash } from '../../src/train/feature-cache';
import { buildTrainModel } from '../../src/train/setup';
import { train } from '../../src/train';
import { lrFind } from '../../src/train/lr-find';
import type { Session } from '../../src/session';
import { SIZE, testProfile } from '../train/fixtures';

let root: string;
let wide: string; // a backbone: conv(16) + BatchNorm + conv(16) + pooling + an ImageNet-like classifier
let narrow: string; // another: conv(8), no BatchNorm
let trained: string; // a model built on `wide` for 3 classes, its weights changed, saved by saveModel

/** A small TF.js layers backbone saved as model.json + weights.bin (what model.arch may name). */
async function writeBackbone(dir: string, filters: number, batchNorm: boolean, prefix = 'bb'): Promise<string> {
  const input = tf.input({ shape: [SIZE, SIZE, 3], name: `${prefix}_input` });
  let x = tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', name: `${prefix}_conv1` }).apply(input) as tf.SymbolicTensor;
  if (batchNorm) x = tf.layers.batchNormalization({ name: `${prefix}_bn1` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: `${prefix}_relu1` }).apply(x) as tf.SymbolicTensor;
  // 3x3x16x16 = 2,304 values: enough for saveModel's float16 storage (1,024 and more).
  x = tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu', name: `${prefix}_conv2` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: `${prefix}_pool` }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 5, activation: 'softmax', name: `${prefix}_predictions` }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'tiny_backbone' });
  await saveModel(model, dir);
  model.dispose();
  return dir;
}

/** The train tests' profile on one of these backbones ('gap' head: cut before the classifier, Dense(classes)). */
function profileOn(backbone: string, initFrom?: string): Profile {
  const p = testProfile([{ name: 'all', trainable: 'all', optimizer: 'adam', lr: 1e-3, epochs: 1 }]);
  p.model = { arch: backbone, head: 'gap', inputSize: 16, weights: 'imagenet', dropout: 0.2, ...(initFrom ? { initFrom } : {}) };
  return p;
}

/** Every weight of a model by its name, as plain numbers. */
function valuesByName(built: TrainableModel): Map<string, Float32Array> {
  return new Map(stableWeights(built.model).map((w) => [w.originalName, w.read().dataSync() as Float32Array]));
}

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-init-from-'));
  wide = await writeBackbone(path.join(root, 'backbone-wide'), 16, true);
  narrow = await writeBackbone(path.join(root, 'backbone-narrow'), 8, false);
  const a = await buildTrainModel(profileOn(wide), 3);
  // Other values than any build draws: every weight (BatchNorm's moving statistics too) changed.
  stableWeights(a.model).forEach((w, i) => w.write(tf.randomUniform(w.shape as number[], 0.5, 1.5, 'float32', 100 + i)));
  trained = path.join(root, 'trained');
  await saveModel(a.model, trained);
  // A run folder holds its trained model in model/.
  fs.mkdirSync(path.join(root, 'run'));
  fs.writeFileSync(path.join(root, 'run', 'profile.json'), JSON.stringify(profileOn(wide)));
  await saveModel(a.model, path.join(root, 'run', 'model'));
  await saveModel(a.model, path.join(root, 'half'), undefined, { float16: true });
  a.model.dispose();
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

test('initFrom a folder with model.json and a run folder (its model/): every weight equals the trained one, by name', async () => {
  const reference = await loadModel(trained);
  const want = new Map(stableWeights(reference).map((w) => [w.originalName, w.read().dataSync() as Float32Array]));
  const fresh = await buildTrainModel(profileOn(wide), 3);
  for (const from of [trained, path.join(root, 'run')]) {
    const lines: string[] = [];
    const built = await buildTrainModel(profileOn(wide, from), 3, { log: (l) => lines.push(l) });
    const got = valuesByName(built);
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'the same weights');
    for (const [name, values] of want) assert.deepEqual(got.get(name), values, `${name} (from ${from})`);
    assert.deepEqual(lines, [`model.initFrom: ${got.size} weights from ${from === trained ? trained : path.join(root, 'run', 'model')} (matched by name)`]);
    // The feature cache keys on a hash of the frozen weights: the loaded base gets caches of its own.
    assert.notEqual(await weightsHash(stableWeights(built.base)), await weightsHash(stableWeights(fresh.base)), 'not the fresh base');
    assert.equal(await weightsHash(stableWeights(built.base)), await weightsHash(stableWeights(splitBase(reference))), "the trained model's base");
    const x = tf.randomUniform([2, SIZE, SIZE, 3], 0, 1, 'float32', 7);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(built.model.predict(x) as tf.Tensor, reference.predict(x) as tf.Tensor))).dataSync()[0]);
    assert.equal(diff, 0, 'the same predictions');
    x.dispose();
    built.model.dispose();
  }
  fresh.model.dispose();
  reference.dispose();
});

/** The nested base of a loaded model (the first nested model, as splitBuilt finds it). */
function splitBase(model: tf.LayersModel): tf.LayersModel {
  return model.layers.find((l) => Array.isArray((l as unknown as { layers?: unknown }).layers)) as unknown as tf.LayersModel;
}

test('initFrom a model saved with float16 weights (as publish writes them): tf.io widens them; the values are the float16 roundings', async () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'half', 'model.json'), 'utf8')).weightsManifest[0].weights as { name: string; quantization?: { dtype: string } }[];
  const halves = manifest.filter((w) => w.quantization?.dtype === 'float16').map((w) => w.name);
  assert.ok(halves.includes('bb_conv2/kernel'), `float16 weights: ${halves.join(', ')}`);
  const reference = await loadModel(trained);
  const want = valuesByName({ model: reference } as TrainableModel);
  reference.dispose();
  const built = await buildTrainModel(profileOn(wide), 3);
  const report = await initFromTrained(built, path.join(root, 'half'));
  assert.equal(report.float16, halves.length);
  for (const [name, values] of valuesByName(built)) {
    const expected = halves.includes(name) ? fromFloat16Bits(float16Bits(want.get(name)!)) : want.get(name)!;
    assert.deepEqual(values, expected, name);
  }
  built.model.dispose();
});

test('a head trained for another number of classes is refused: "trained for 3 classes, the data has 5", naming the file', async () => {
  await assert.rejects(
    buildTrainModel(profileOn(wide, trained), 5),
    (e: Error) => {
      assert.match(e.message, /^model\.initFrom '.*': .*\/trained\/model\.json: trained for 3 classes, the data has 5 \(its weight 'dense\/kernel' is \[16,3\], this model's \[16,5\]\)/);
      return true;
    },
  );
});

test('a weight of another shape, or missing on either side, is refused naming the file, the weight and both shapes', async () => {
  // The narrow backbone (8 filters, no BatchNorm) from the wide model: other shapes, weights it has not.
  await assert.rejects(buildTrainModel(profileOn(narrow, trained), 3), (e: Error) => {
    assert.match(e.message, new RegExp(`^model\\.initFrom '${trained}': ${trained}/model\\.json does not fit the profile's model`));
    assert.match(e.message, /weight 'bb_conv1\/kernel' is \[3,3,3,16\] there, \[3,3,3,8\] in this model/);
    assert.match(e.message, /weight 'bb_bn1\/gamma' \[16\] is not in this model/);
    return true;
  });
  // Another backbone altogether (no weight name in common but the head's): said in one sentence, with the arch its profile.json names.
  const other = await writeBackbone(path.join(root, 'backbone-other'), 16, true, 'xx');
  await assert.rejects(
    buildTrainModel(profileOn(other, path.join(root, 'run')), 3),
    new RegExp(`run/model/model\\.json shares no backbone weight name with the profile's model \\(${other}: 'xx_conv1/kernel', \\.\\.\\.; the file: 'bb_conv1/kernel', \\.\\.\\.\\): it was built from another backbone \\(the profile\\.json beside it says model\\.arch '${wide}'\\)`),
  );
  // And the wide one from a narrow model: its BatchNorm weights are not in the file.
  const n = await buildTrainModel(profileOn(narrow), 3);
  const narrowTrained = await saveModel(n.model, path.join(root, 'narrow-trained'));
  n.model.dispose();
  await assert.rejects(buildTrainModel(profileOn(wide, narrowTrained), 3), /narrow-trained\/model\.json does not fit .*no weight 'bb_bn1\/gamma' \(this model's is \[16\]\)/);
});

test('a missing folder, a run without a trained model and a folder without model.json are refused by name', async () => {
  const missing = path.join(root, 'no-such-run');
  await assert.rejects(buildTrainModel(profileOn(wide, missing), 3), new RegExp(`^Error: model\\.initFrom '${missing}': no such folder ${missing}$`));
  const unfinished = path.join(root, 'unfinished-run');
  fs.mkdirSync(unfinished);
  fs.writeFileSync(path.join(unfinished, 'profile.json'), '{}');
  await assert.rejects(buildTrainModel(profileOn(wide, unfinished), 3), /no model\.json in .*unfinished-run, nor in its model\/ \(a run folder whose training has not finished/);
  await assert.rejects(buildTrainModel(profileOn(wide, path.join(root, 'backbone-wide', 'weights.bin')), 3), /weights\.bin is a file; expected a folder holding model\.json/);
  // A relative path starts at the project folder, and the message says so.
  assert.throws(() => resolveInitFrom('data/no-such-run-here'), new RegExp(`no such folder ${projectRoot}/data/no-such-run-here \\(relative paths start at the project folder ${projectRoot}\\)`));
});

test('train and lr-find refuse a model.initFrom that names nothing before a new run\'s folder is made', async () => {
  const missing = path.join(root, 'gone');
  let made = false;
  const s = {
    profile: profileOn(wide, missing),
    backend: await initBackend({ force: 'cpu', quiet: true }),
    get runDir(): string {
      made = true; // a new run's folder is created when first asked for
      return path.join(root, 'new-run');
    },
  } as Session;
  await assert.rejects(train(s, { progress: 'none' }), /model\.initFrom '.*gone': no such folder/);
  await assert.rejects(lrFind(s, { progress: 'none' }), /model\.initFrom '.*gone': no such folder/);
  assert.equal(made, false);
});

test('a damaged trained model is refused by name before its numbers are used', async () => {
  const reference = await loadModel(trained);
  const damaged = await saveModel(reference, path.join(root, 'damaged'));
  reference.dispose();
  fs.appendFileSync(path.join(damaged, 'weights.bin'), Buffer.from([0]));
  await assert.rejects(buildTrainModel(profileOn(wide, damaged), 3), /^Error: model\.initFrom '.*damaged': .*damaged.*weights\.bin/);
});

const mobilenetDir = process.env.MOBILENET_V1_0_75_DIR || (PRESETS['mobilenet-v1-0.75'] as TfjsPreset).source.defaultDir!;
const published = 'docs/results/mobilenet-finetune-128';
const noMobilenet = fs.existsSync(path.join(mobilenetDir, 'model.json')) ? false : `no MobileNet v1 0.75 at ${mobilenetDir}`;

test("the published cpu-best model (float16 weights), given relative to the project folder: the built model predicts as the published one", { skip: noMobilenet }, async () => {
  assert.equal(resolveInitFrom(published), path.join(projectRoot, published, 'model'));
  const built = await buildModel({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 128, weights: 'imagenet', dropout: 0.2 }, 10, { quiet: true });
  const report = await initFromTrained(built, published);
  assert.equal(report.weights, 137);
  assert.ok(report.float16 > 0, 'its large weights are stored as float16');
  assert.equal(built.weightsSource, `${path.join(projectRoot, published, 'model')} (model.initFrom)`);
  const reference = await loadModel(path.join(projectRoot, published, 'model'));
  const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 3);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(built.model.predict(x) as tf.Tensor, reference.predict(x) as tf.Tensor))).dataSync()[0]);
  assert.ok(diff < 1e-5, `largest difference ${diff}`);
  x.dispose();
  built.model.dispose();
  reference.dispose();
});
