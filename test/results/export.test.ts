/**
 * `export` and `publish` on a real smoke run (skipped without ../shared/data): the ONNX file carries
 * the contract in its metadata, and `predict` answers the same top-1 class for 20 JPEG images whether
 * it runs the exported file in ONNX Runtime (TLWB_INFERENCE=onnx) or the TF.js model
 * (TLWB_INFERENCE=tfjs); a published folder (float16 weights) predicts as the run does.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as jpeg from 'jpeg-js';
import { initBackend, tf } from '../../src/backend';
import { projectRoot } from '../../src/config';
import { readCifarBatches } from '../../src/data/cifar10';
import { inferenceEngine, releaseModel, runModel } from '../../src/model/engine';
import { loadModel } from '../../src/model/io';
import { readOnnxFileInfo } from '../../src/model/onnx';
import { preprocess } from '../../src/preprocess';

const cifar = process.env.CIFAR10_DIR ?? path.resolve(projectRoot, '../shared/data/cifar-10-batches-bin');
const darknet = process.env.DARKNET_TINY_DIR ?? path.join(path.dirname(path.resolve(cifar)), 'darknet-tiny');
const missing = !fs.existsSync(path.join(cifar, 'test_batch.bin')) || !fs.existsSync(path.join(darknet, 'model.json'))
  ? 'needs the shared data (CIFAR-10 binary and darknet-tiny)'
  : false;
const cli = path.join(projectRoot, 'dist/src/cli.js');

let dataDir = '';
let run = '';
const images: string[] = [];

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, TLWB_DATA_DIR: dataDir, CIFAR10_DIR: cifar, DARKNET_TINY_DIR: darknet, TLWB_SET: '', TLWB_PROFILE: '', TLWB_RUN_DIR: '', ...extra };
}

function runCli(args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { env: env(extra), encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${args.join(' ')} failed: ${r.stderr}`);
  return r;
}

before(() => {
  if (missing) return;
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-export-'));
  run = path.join(dataDir, 'runs', 'smoke');
  runCli(['train', '--profile', 'smoke', '--run-dir', run, '--json', '--progress', 'none']);
  // 20 test images as JPEG files, upscaled 3x (any size goes in; predict shrinks them back).
  const records = fs.readFileSync(path.join(cifar, 'test_batch.bin'));
  for (let k = 0; k < 20; k++) {
    const rec = records.subarray(k * 3073 + 1, (k + 1) * 3073);
    const side = 96;
    const rgba = Buffer.alloc(side * side * 4);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const p = Math.floor(y / 3) * 32 + Math.floor(x / 3);
        rgba.set([rec[p], rec[1024 + p], rec[2048 + p], 255], (y * side + x) * 4);
      }
    }
    const file = path.join(dataDir, `test-${k}.jpg`);
    fs.writeFileSync(file, jpeg.encode({ data: rgba, width: side, height: side }, 90).data);
    images.push(file);
  }
});

after(() => {
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

test('export --format onnx writes model.onnx with the contract in its metadata', { skip: missing, timeout: 300_000 }, () => {
  const r = runCli(['export', '--run', run, '--format', 'onnx', '--json']);
  const out = JSON.parse(r.stdout) as { file: string; checkedDifference: number; opset: number };
  assert.equal(out.file, path.join(run, 'model.onnx'));
  assert.ok(out.checkedDifference <= 1e-4, `ORT vs TF.js ${out.checkedDifference}`);
  const info = readOnnxFileInfo(out.file);
  assert.equal(info.opset, 13);
  assert.deepEqual(JSON.parse(info.metadata.classes), ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
  assert.equal(info.metadata.preprocess, 'unit');
  assert.equal(info.metadata.preprocess_baked, 'true');
  assert.deepEqual(info.input, { name: 'image', shape: ['batch', 32, 32, 3] });
  assert.deepEqual(info.output, { name: 'probabilities', shape: ['batch', 10] });
  // --out elsewhere
  const other = path.join(dataDir, 'elsewhere', 'm.onnx');
  runCli(['export', '--run', run, '--out', other]);
  assert.ok(fs.statSync(other).size > 1e6);
});

test('predict: the exported file in ONNX Runtime and the TF.js model agree on top-1 for 20 JPEGs', { skip: missing, timeout: 300_000 }, () => {
  const onnx = runCli(['predict', '--run', run, '--json', '--top', '3', ...images], { TLWB_INFERENCE: 'onnx' });
  const tfjs = runCli(['predict', '--run', run, '--json', '--top', '3', ...images], { TLWB_INFERENCE: 'tfjs' });
  assert.match(onnx.stderr, /inference: onnxruntime.*model\.onnx/, 'predict ran the exported file');
  assert.match(tfjs.stderr, /inference: tfjs - TLWB_INFERENCE=tfjs/);
  type Row = { file: string; top: { class: string; probability: number }[] };
  const parse = (s: string) => s.trim().split('\n').map((l) => JSON.parse(l) as Row);
  const a = parse(onnx.stdout);
  const b = parse(tfjs.stdout);
  assert.equal(a.length, 20);
  let maxDiff = 0;
  for (let i = 0; i < 20; i++) {
    assert.equal(a[i].file, b[i].file);
    assert.equal(a[i].top[0].class, b[i].top[0].class, `${a[i].file}: ORT ${a[i].top[0].class}, TF.js ${b[i].top[0].class}`);
    maxDiff = Math.max(maxDiff, Math.abs(a[i].top[0].probability - b[i].top[0].probability));
  }
  assert.ok(maxDiff < 1e-4, `top-1 probabilities differ by ${maxDiff}`);
  // Not a constant answer: the trained model tells at least three classes apart on these images.
  assert.ok(new Set(a.map((r) => r.top[0].class)).size >= 3);
});

test('evaluation: the trained smoke model in ORT and in TF.js, same top-1 on 500 test images', { skip: missing, timeout: 300_000 }, async () => {
  await initBackend({ force: 'wasm', quiet: true });
  const model = await loadModel(path.join(run, 'model'));
  const set = readCifarBatches([path.join(cifar, 'test_batch.bin')], 500);
  const x = tf.tidy(() => preprocess(tf.tensor4d(Float32Array.from(set.images), [500, 32, 32, 3]), 'unit'));
  const a = await runModel(model, x, { engine: inferenceEngine({ force: 'onnx', quiet: true }) });
  const b = await runModel(model, x, { engine: inferenceEngine({ force: 'tfjs', quiet: true }) });
  const [topA, topB] = [a, b].map((t) => tf.tidy(() => tf.argMax(t, -1).dataSync() as Int32Array));
  const differ = topA.filter((c, i) => c !== topB[i]).length;
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
  assert.equal(differ, 0, `${differ} of 500 images get another top-1 class (max probability difference ${diff})`);
  assert.ok(diff < 1e-4, `probabilities differ by ${diff}`);
  tf.dispose([x, a, b]);
  await releaseModel(model);
  model.dispose();
});

type Row = { file: string; top: { class: string; probability: number }[] };
const rows = (s: string) => s.trim().split('\n').map((l) => JSON.parse(l) as Row);

test('publish: a small folder (float16 weights) that predicts as the run does, in ORT and TF.js', { skip: missing, timeout: 300_000 }, () => {
  const out = path.join(dataDir, 'published', 'smoke');
  const r = runCli(['publish', '--run', run, '--out', out, '--json']);
  const res = JSON.parse(r.stdout) as { weights: string; files: { file: string; bytes: number }[]; check: { images: number; sameTop1: number; maxProbabilityDifference: number } };
  assert.equal(res.weights, 'float16');
  const names = res.files.map((f) => f.file);
  for (const f of ['model/model.json', 'model/weights.bin', 'model.onnx', 'profile.json', 'train-summary.json', 'history.csv', 'published.json']) assert.ok(names.includes(f), `${f} in ${names}`);
  assert.ok(!names.some((f) => f.startsWith('checkpoints') || f === 'train.lock' || f === 'train-state.json'), `only what predicting needs: ${names}`);
  const runWeights = fs.statSync(path.join(run, 'model', 'weights.bin')).size;
  const pubWeights = fs.statSync(path.join(out, 'model', 'weights.bin')).size;
  assert.ok(pubWeights < runWeights * 0.55, `weights.bin ${pubWeights} bytes against the run's ${runWeights}`);
  assert.ok(res.check.sameTop1 >= res.check.images - 2 && res.check.maxProbabilityDifference < 0.02, JSON.stringify(res.check));
  const info = readOnnxFileInfo(path.join(out, 'model.onnx'));
  assert.equal(info.metadata.weights, 'float16');
  const runProfile = JSON.parse(fs.readFileSync(path.join(run, 'profile.json'), 'utf8')) as { data: { dir?: string } };
  const pubProfile = JSON.parse(fs.readFileSync(path.join(out, 'profile.json'), 'utf8')) as { data: { dir?: string; source: string } };
  assert.equal(runProfile.data.dir, path.resolve(cifar), 'the run recorded where this machine keeps CIFAR-10');
  assert.equal(pubProfile.data.dir, undefined, 'the published profile does not carry a path of this machine');
  assert.equal(pubProfile.data.source, 'cifar10');
  assert.ok(fs.statSync(path.join(out, 'model.onnx')).size < runWeights * 0.6, 'the ONNX file stores float16 weights too');

  const ofRun = rows(runCli(['predict', '--run', run, '--json', ...images], { TLWB_INFERENCE: 'tfjs' }).stdout);
  // A fresh clone sets every file's mtime anew: model.json newer than model.onnx must not retire the file.
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(out, 'model', 'model.json'), later, later);
  const viaOrt = runCli(['predict', '--run', out, '--json', ...images], { TLWB_INFERENCE: 'onnx' });
  assert.match(viaOrt.stderr, /inference: onnxruntime.*published.smoke.model\.onnx/);
  const viaTfjs = runCli(['predict', '--run', out, '--json', ...images], { TLWB_INFERENCE: 'tfjs' });
  const [a, b] = [rows(viaOrt.stdout), rows(viaTfjs.stdout)];
  let agree = 0;
  for (let i = 0; i < images.length; i++) {
    assert.equal(a[i].top[0].class, b[i].top[0].class, `${a[i].file}: the published files disagree (ORT ${a[i].top[0].class}, TF.js ${b[i].top[0].class})`);
    assert.ok(Math.abs(a[i].top[0].probability - b[i].top[0].probability) < 1e-4, 'the ONNX file holds the same float16 weights');
    if (a[i].top[0].class === ofRun[i].top[0].class) agree++;
  }
  assert.ok(agree >= images.length - 1, `the published model agrees with the run on ${agree} of ${images.length} images`);
});

test('publish: the ONNX file retires when the TF.js weights change; refuses folders it did not write', { skip: missing, timeout: 300_000 }, () => {
  const out = path.join(dataDir, 'published', 'again');
  runCli(['publish', '--run', run, '--out', out, '--float32']);
  const first = JSON.parse(fs.readFileSync(path.join(out, 'published.json'), 'utf8')) as { weights: string; published: string };
  assert.equal(first.weights, 'float32');
  // Publishing again replaces the folder publish wrote.
  runCli(['publish', '--run', run, '--out', out]);
  assert.equal((JSON.parse(fs.readFileSync(path.join(out, 'published.json'), 'utf8')) as { weights: string }).weights, 'float16');
  // A run whose model was saved again after its export (here: the published float16 model): predict
  // leaves the stale model.onnx alone and says why.
  const stale = path.join(dataDir, 'runs', 'stale');
  fs.cpSync(run, stale, { recursive: true });
  runCli(['export', '--run', stale]);
  fs.rmSync(path.join(stale, 'model'), { recursive: true });
  fs.cpSync(path.join(out, 'model'), path.join(stale, 'model'), { recursive: true });
  const p = runCli(['predict', '--run', stale, images[0]], { TLWB_INFERENCE: 'onnx' });
  assert.match(p.stderr, /model\.onnx not used: .*stale.model\.onnx was exported from other weights than model\/weights\.bin holds now/, p.stderr);
  // The published folder with other weights than it was published with (the run's float32 ones): refused by name (issue 25).
  fs.copyFileSync(path.join(run, 'model', 'weights.bin'), path.join(out, 'model', 'weights.bin'));
  fs.copyFileSync(path.join(run, 'model', 'model.json'), path.join(out, 'model', 'model.json'));
  const tampered = spawnSync(process.execPath, [cli, 'predict', '--run', out, images[0]], { env: env({ TLWB_INFERENCE: 'auto' }), encoding: 'utf8', timeout: 120_000 });
  assert.equal(tampered.status, 1, tampered.stderr);
  assert.match(tampered.stderr, /model.model\.json: model\.json changed since it was published .*published\.json/);
  // Refusals, each naming what is wrong.
  const other = path.join(dataDir, 'not-published');
  fs.mkdirSync(other, { recursive: true });
  fs.writeFileSync(path.join(other, 'notes.txt'), 'mine');
  const refuse = (args: string[], re: RegExp) => {
    const r = spawnSync(process.execPath, [cli, 'publish', ...args], { env: env(), encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  refuse(['--run', run, '--out', other], /not-published: a folder with other files \(no published\.json\)/);
  assert.equal(fs.readFileSync(path.join(other, 'notes.txt'), 'utf8'), 'mine');
  refuse(['--run', run, '--out', run], /that is the run folder itself/);
  refuse(['--run', run], /--out <dir> is required/);
  const unfinished = path.join(dataDir, 'unfinished');
  fs.mkdirSync(path.join(unfinished, 'model'), { recursive: true });
  fs.copyFileSync(path.join(run, 'profile.json'), path.join(unfinished, 'profile.json'));
  refuse(['--run', unfinished, '--out', path.join(dataDir, 'x')], /unfinished.train-summary\.json: missing; publish takes a finished run/);
});
