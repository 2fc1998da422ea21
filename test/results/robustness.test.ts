/**
 * The robustness evaluation: corrupted copies of a test set scored like the clean one - on a tiny
 * model whose answer is known (bright or dark), and on a real smoke run (skipped without
 * ../shared/data) whose evaluation.json and report must show the table.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { CORRUPTION_NAMES, projectRoot } from '../../src/config';
import type { ImageSet } from '../../src/data/types';
import { Random } from '../../src/random';
import { corruptSet, evaluateRobustness, robustnessNames, robustnessRows } from '../../src/results/robustness';
import { robustnessSpec } from '../../src/results/charts';
import { chartSvg } from '../../src/display';

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

/** Class 0 when the image's mean ('unit' pixels) is above 0.5, else class 1: GAP -> Dense(2, softmax). */
function brightnessModel(): tf.LayersModel {
  const model = tf.sequential({ layers: [tf.layers.globalAveragePooling2d({ inputShape: [16, 16, 3] }), tf.layers.dense({ units: 2, activation: 'softmax' })] });
  const w = 40 / 3;
  model.layers[1].setWeights([tf.tensor2d([w, -w, w, -w, w, -w], [3, 2]), tf.tensor1d([-20, 20])]);
  return model;
}

/** Textured 16x16 images whose mean is 0.5 +- 0.06 (bright: label 0, dark: label 1). */
function brightDarkSet(n: number): ImageSet {
  const rng = new Random(9);
  const images = new Uint8Array(n * 16 * 16 * 3);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const base = labels[i] === 0 ? 143 : 112;
    for (let p = 0; p < 16 * 16 * 3; p += 2) {
      const t = rng.int(41) - 20;
      images[i * 768 + p] = base + t;
      images[i * 768 + p + 1] = base - t; // pairs keep the mean exact
    }
  }
  return { images, labels, count: n, height: 16, width: 16 };
}

test('robustnessNames: true is every corruption, a list is checked', () => {
  assert.deepEqual(robustnessNames(true), [...CORRUPTION_NAMES]);
  assert.deepEqual(robustnessNames(false), []);
  assert.deepEqual(robustnessNames(undefined), []);
  assert.deepEqual(robustnessNames(['contrast']), ['contrast']);
  assert.throws(() => robustnessNames(['jpeg-70' as never]), /unknown corruption 'jpeg-70'/);
});

test('corruptSet: the same seed gives the same pixels, another seed other noise; labels kept; the clean set untouched', () => {
  const set = brightDarkSet(6);
  const copy = set.images.slice();
  const a = corruptSet(set, 'gaussian-noise', 5);
  assert.deepEqual(corruptSet(set, 'gaussian-noise', 5).images, a.images);
  assert.notDeepEqual(corruptSet(set, 'gaussian-noise', 6).images, a.images);
  assert.notDeepEqual(corruptSet(set, 'contrast', 5).images, corruptSet(set, 'brightness', 5).images);
  assert.equal(a.labels, set.labels);
  assert.deepEqual(set.images, copy);
});

test('evaluateRobustness: brightness fools a brightness classifier, contrast (mean kept) does not; drops, TTA and the mean', async () => {
  const model = brightnessModel();
  const set = brightDarkSet(40);
  const before = tf.memory().numTensors;
  const progress: number[] = [];
  const clean = { accuracy: 1, ttaAccuracy: 1 };
  const r = await evaluateRobustness(model, set, { mode: 'unit', names: ['contrast', 'brightness', 'jpeg-90'], clean, tta: true, batchSize: 16, onProgress: (_n, d) => progress.push(d) });
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  assert.equal(progress.at(-1), 3 * 2 * 40);
  const by = Object.fromEntries(r.corruptions.map((c) => [c.name, c]));
  assert.equal(by.contrast.accuracy, 1, 'contrast keeps each image\'s mean, so the answer');
  assert.equal(by.brightness.accuracy, 0.5, 'brighter: the dark images now look bright');
  assert.equal(by.brightness.drop, 0.5);
  assert.equal(by['jpeg-90'].accuracy, 1);
  assert.equal(by.brightness.ttaAccuracy, 0.5, 'flip TTA scored too');
  assert.ok(Math.abs(r.meanAccuracy - (1 + 0.5 + 1) / 3) < 1e-12);
  assert.deepEqual(by.brightness.params, { add: 0.15 });
  const rows = robustnessRows(r);
  assert.deepEqual(rows.map((x) => x.test_set), ['clean', 'contrast ×0.4', 'brightness +0.15 V', 'JPEG quality 90', 'mean over corruptions']);
  const again = await evaluateRobustness(model, set, { mode: 'unit', names: ['brightness'], clean, batchSize: 7 });
  assert.equal(again.corruptions[0].accuracy, by.brightness.accuracy, 'another batch size, same result');
  assert.equal(again.corruptions[0].ttaAccuracy, null);
  const svg = await chartSvg(robustnessSpec(r));
  assert.match(svg, /^<svg/);
  assert.ok(svg.includes('brightness +0.15 V') && svg.includes('clean'), 'the chart names each bar');
  model.dispose();
});

const cifar = process.env.CIFAR10_DIR ?? path.resolve(projectRoot, '../shared/data/cifar-10-batches-bin');
const darknet = process.env.DARKNET_TINY_DIR ?? path.resolve(projectRoot, '../shared/data/darknet-tiny');
const missing = !fs.existsSync(path.join(cifar, 'data_batch_1.bin')) || !fs.existsSync(path.join(darknet, 'model.json')) ? 'needs ../shared/data (CIFAR-10 binary and darknet-tiny)' : false;

test('a smoke run with --set results.robustness=true: evaluation.json has the robustness table, its report shows it', { skip: missing, timeout: 300_000 }, async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-robust-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const env = { ...process.env, TLWB_DATA_DIR: dataDir, CIFAR10_DIR: cifar, TLWB_SET: '', TLWB_PROFILE: '', TLWB_RUN_DIR: '' };
  const cli = path.join(projectRoot, 'dist/src/cli.js');
  const sets = ['results.robustness=true', 'train.phases.0.epochs=3'].flatMap((s) => ['--set', s]);
  const trained = spawnSync(process.execPath, [cli, 'train', '--profile', 'smoke', ...sets, '--json', '--progress', 'none'], { env, encoding: 'utf8' });
  assert.equal(trained.status, 0, trained.stderr);
  const { runDir } = JSON.parse(trained.stdout.trim()) as { runDir: string };

  // The results stage as notebook 05 runs it: evaluateRun, saveEvaluation.
  const old = process.env.CIFAR10_DIR;
  process.env.CIFAR10_DIR = cifar;
  t.after(() => (old === undefined ? delete process.env.CIFAR10_DIR : (process.env.CIFAR10_DIR = old)));
  const { readRunProfile } = await import('../../src/session');
  const { evaluateRun, saveEvaluation } = await import('../../src/results/run');
  const profile = readRunProfile(runDir);
  assert.equal(profile.results.robustness, true, 'the --set reached the run\'s profile');
  const r = await evaluateRun({ profile, runDir }, { progress: false });
  const saved = JSON.parse(fs.readFileSync(saveEvaluation(runDir, r.summary), 'utf8'));
  const table = saved.robustness;
  assert.ok(table, 'evaluation.json has a robustness table');
  assert.equal(table.count, 500, "the smoke profile's 500 test images");
  assert.deepEqual(table.corruptions.map((c: { name: string }) => c.name), [...CORRUPTION_NAMES]);
  assert.equal(table.clean.accuracy, saved.accuracy);
  for (const c of table.corruptions) {
    assert.ok(c.accuracy >= 0 && c.accuracy <= 1 && Math.abs(c.drop - (saved.accuracy - c.accuracy)) < 1e-12, JSON.stringify(c));
  }
  const acc = (name: string) => table.corruptions.find((c: { name: string }) => c.name === name).accuracy;
  assert.ok(saved.accuracy > 0.25, `the smoke model learned something (${saved.accuracy})`);
  assert.ok(Math.abs(acc('jpeg-90') - saved.accuracy) < 0.05, 'JPEG quality 90 barely changes the score');
  assert.ok(acc('jpeg-50') < saved.accuracy + 0.02, 'quality 50 does not help');

  // The report: executed notebooks are what it renders; a minimal one stands in for notebook 05's run.
  fs.mkdirSync(path.join(runDir, 'notebooks'));
  fs.writeFileSync(path.join(runDir, 'notebooks', '05-results.ipynb'), JSON.stringify({
    nbformat: 4, nbformat_minor: 5, metadata: { kernelspec: { name: 'tslab', display_name: 'TypeScript', language: 'typescript' } },
    cells: [{ id: 'a', cell_type: 'markdown', metadata: {}, source: '# 05 Results' }],
  }));
  const { writeReport } = await import('../../src/results/report');
  const page = fs.readFileSync(await writeReport(runDir), 'utf8');
  assert.match(page, /<h3 id="robustness">Robustness: the test set corrupted<\/h3>/);
  assert.match(page, /mean corruption accuracy<\/th><td>\d+\.\d% over 8 corruptions/);
  assert.match(page, /<td>JPEG quality 50<\/td><td class="num">\d+\.\d\d%<\/td>/);
  assert.match(page, /<img src="data:image\/svg\+xml;base64,[^"]+" alt="test accuracy, clean and corrupted"\/>/, 'the chart, as an embedded image');
});
