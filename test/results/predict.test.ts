import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { initBackend, tf } from '../../src/backend';
import { projectRoot } from '../../src/config';
import { saveModel } from '../../src/model/io';
import { fitImage, loadPredictor, predictFile, runClasses } from '../../src/results/predict';
import { publishRun } from '../../src/results/publish';

const CLASSES = ['red', 'green', 'blue'];
const SIZE = 8;

/** GAP -> Dense(3, softmax): the class is the strongest colour channel ('unit' pixels, logits 8 x mean). */
function colourModel(): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.globalAveragePooling2d({ inputShape: [SIZE, SIZE, 3] }),
      tf.layers.dense({ units: 3, activation: 'softmax', weights: [tf.eye(3).mul(8), tf.zeros([3])] }),
    ],
  });
  return model;
}

function solid(width: number, height: number, rgb: [number, number, number]): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) rgba.set([...rgb, 255], i * 4);
  return rgba;
}

let dir: string;
let run: string;

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-predict-'));
  run = path.join(dir, 'runs', '20260101-000000-colours');
  fs.mkdirSync(run, { recursive: true });
  fs.writeFileSync(path.join(run, 'profile.json'), JSON.stringify({
    name: 'colours', data: { source: 'folder', dir: path.join(dir, 'nowhere'), imageSize: SIZE, valFraction: 0 },
    model: { arch: 'darknet-tiny', head: 'gap', inputSize: 64, weights: 'none' },
  }));
  const model = colourModel();
  await saveModel(model, path.join(run, 'model'), { preprocess: 'unit', classes: CLASSES });
  model.dispose();
  const png = new PNG({ width: 50, height: 37 });
  png.data = Buffer.from(solid(50, 37, [230, 20, 10]));
  fs.writeFileSync(path.join(dir, 'red.png'), PNG.sync.write(png));
  const jpg = jpeg.encode({ data: Buffer.from(solid(120, 90, [10, 30, 220])), width: 120, height: 90 }, 90);
  fs.writeFileSync(path.join(dir, 'blue.jpg'), jpg.data);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'this is not an image\n');
});

test('predictFile: PNG and JPEG of any size, top-3 classes by probability', async () => {
  const p = await loadPredictor(run);
  assert.deepEqual(p.classes, CLASSES);
  assert.equal(p.mode, 'unit');
  assert.equal(p.size, SIZE);
  const before = tf.memory().numTensors;
  const red = await predictFile(p, path.join(dir, 'red.png'));
  const blue = await predictFile(p, path.join(dir, 'blue.jpg'), 2);
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  assert.deepEqual(red.top.map((t) => t.class), ['red', 'green', 'blue']);
  assert.deepEqual([red.width, red.height], [50, 37]);
  assert.equal(blue.top[0].class, 'blue');
  assert.equal(blue.top.length, 2);
  // softmax of 8 x (0.9, 0.08, 0.04) for the red image
  const z = [230, 20, 10].map((v) => Math.exp((8 * v) / 255));
  assert.ok(Math.abs(red.top[0].probability - z[0] / (z[0] + z[1] + z[2])) < 1e-3);
  await assert.rejects(predictFile(p, path.join(dir, 'notes.txt')), new RegExp(`notes.txt: not a PNG or JPEG image`));
  p.model.dispose();
});

test('fitImage shrinks large images by averaging, then resizes exactly', () => {
  // a 64x64 checkerboard of black and white pixels averages to grey, not to aliasing stripes
  const data = new Uint8Array(64 * 64 * 3);
  for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) if ((x + y) % 2) data.fill(255, (y * 64 + x) * 3, (y * 64 + x) * 3 + 3);
  const t = fitImage({ data, width: 64, height: 64 }, 8);
  assert.deepEqual(t.shape, [8, 8, 3]);
  const v = t.dataSync();
  for (const x of v) assert.ok(Math.abs(x - 127.5) < 1e-3, `grey, got ${x}`);
  t.dispose();
  const small = fitImage({ data: new Uint8Array(3 * 5 * 3).fill(9), width: 3, height: 5 }, 8);
  assert.deepEqual(small.shape, [8, 8, 3]);
  small.dispose();
});

test('runClasses: from the run\'s files, else CIFAR-10 names, else a clear error', () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-classes-'));
  const cifar = { data: { source: 'cifar10', imageSize: 32, valFraction: 0 }, model: { arch: 'resnet50' } } as never;
  assert.equal(runClasses(empty, cifar)[0], 'airplane');
  fs.writeFileSync(path.join(empty, 'evaluation.json'), JSON.stringify({ classes: ['x', 'y'] }));
  assert.deepEqual(runClasses(empty, cifar), ['x', 'y']);
  fs.rmSync(path.join(empty, 'evaluation.json'));
  const folder = { data: { source: 'folder', dir: path.join(empty, 'gone'), imageSize: 32, valFraction: 0 }, model: { arch: 'resnet50' } } as never;
  assert.throws(() => runClasses(empty, folder), /cannot tell the class names/);
  fs.mkdirSync(path.join(empty, 'imgs', 'train', 'b'), { recursive: true });
  fs.mkdirSync(path.join(empty, 'imgs', 'train', 'a'), { recursive: true });
  assert.deepEqual(runClasses(empty, { data: { source: 'folder', dir: path.join(empty, 'imgs') } } as never), ['a', 'b']);
  fs.rmSync(empty, { recursive: true });
});

test('cli predict: one JSON line per image, a named error and exit 1 for a text file', () => {
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const env = { ...process.env, TLWB_DATA_DIR: dir, TLWB_BACKEND: 'cpu' };
  const files = ['red.png', 'blue.jpg', 'notes.txt'].map((f) => path.join(dir, f));
  const r = spawnSync(process.execPath, [cli, 'predict', '--json', ...files], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 1, 'a bad file makes the exit code 1');
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.equal(lines[0].file, files[0]);
  assert.equal(lines[0].top.length, 3);
  assert.equal(lines[0].top[0].class, 'red');
  assert.ok(lines[0].top[0].probability >= lines[0].top[1].probability);
  assert.equal(lines[1].top[0].class, 'blue');
  assert.match(lines[2].error, /notes.txt: not a PNG or JPEG image/);
  assert.match(r.stderr, /error: .*notes.txt: not a PNG or JPEG image/);

  const text = spawnSync(process.execPath, [cli, 'predict', '--run', run, files[0]], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /red.png \(50x37\): red \d+\.\d%, green \d+\.\d%, blue \d+\.\d%/);

  const none = spawnSync(process.execPath, [cli, 'predict', '--run', run], { encoding: 'utf8', env });
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no image files given/);
});

test('issue 25 case 4: a published folder whose weights.bin was overwritten is refused by name; its intact copy predicts', { timeout: 120_000 }, async () => {
  const source = path.join(dir, 'runs', '20260104-000000-to-publish');
  fs.cpSync(run, source, { recursive: true });
  fs.writeFileSync(path.join(source, 'train-summary.json'), JSON.stringify({ profile: 'colours', status: 'finished', classes: CLASSES }));
  const out = path.join(dir, 'published', 'colours');
  await publishRun(source, out, { checkImages: 4 });
  const record = JSON.parse(fs.readFileSync(path.join(out, 'published.json'), 'utf8')) as { checksums: Record<string, { sha256: string }> };
  assert.deepEqual(Object.keys(record.checksums).sort(), ['model.onnx', 'model/checksums.json', 'model/model.json', 'model/weights.bin']);
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const env = { ...process.env, TLWB_DATA_DIR: dir, TLWB_BACKEND: 'cpu' };
  const ok = spawnSync(process.execPath, [cli, 'predict', '--run', out, path.join(dir, 'red.png')], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /red\.png \(50x37\): red/);
  // The edit: bytes of the published weights overwritten (here all but the first 8).
  const weights = path.join(out, 'model', 'weights.bin');
  const bytes = fs.readFileSync(weights);
  bytes.fill(0x7c, 8); // float16 infinity's high byte
  fs.writeFileSync(weights, bytes);
  for (const engine of ['onnx', 'tfjs']) {
    const r = spawnSync(process.execPath, [cli, 'predict', '--run', out, path.join(dir, 'red.png')], { encoding: 'utf8', env: { ...env, TLWB_INFERENCE: engine }, timeout: 60_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${weights}: weights\\.bin changed since it was published \\(sha256 .* as recorded in ${path.join(out, 'published.json')}\\)`), engine);
    assert.doesNotMatch(r.stderr + r.stdout, /diverged|%/);
  }
  // A run's own weights.bin filled with 0.5: refused by the model folder's checksums.
  const half = path.join(dir, 'runs', '20260105-000000-half');
  fs.cpSync(run, half, { recursive: true });
  const hw = path.join(half, 'model', 'weights.bin');
  fs.writeFileSync(hw, Buffer.from(new Float32Array(fs.statSync(hw).size / 4).fill(0.5).buffer));
  await assert.rejects(loadPredictor(half), new RegExp(`${hw}: weights\\.bin changed since it was saved`));
});

test('issue 25: predict says when it does not use model.onnx and why (here: a folder of that name)', () => {
  const odd = path.join(dir, 'runs', '20260106-000000-odd-onnx');
  fs.cpSync(run, odd, { recursive: true });
  fs.mkdirSync(path.join(odd, 'model.onnx'));
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'predict', '--run', odd, path.join(dir, 'red.png')], {
    encoding: 'utf8', env: { ...process.env, TLWB_DATA_DIR: dir, TLWB_BACKEND: 'cpu', TLWB_INFERENCE: 'onnx' }, timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`model\\.onnx not used: ${path.join(odd, 'model.onnx')} is not a file \\(expected the ONNX file export writes\\); predicting from the TF\\.js model`));
  assert.match(r.stdout, /red\.png \(50x37\): red/);
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('issue 11: predict on a diverged run says so and exits 1 instead of printing NaN%', async () => {
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const env = { ...process.env, TLWB_DATA_DIR: dir, TLWB_BACKEND: 'cpu' };
  const broken = path.join(dir, 'runs', '20260102-000000-diverged');
  fs.cpSync(run, broken, { recursive: true });
  fs.writeFileSync(path.join(broken, 'train-summary.json'), JSON.stringify({ status: 'diverged', diverged: { phase: 'head', epoch: 3, step: 41, reason: 'loss is NaN' } }));
  const r = spawnSync(process.execPath, [cli, 'predict', '--run', broken, path.join(dir, 'red.png')], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /training diverged in phase head, epoch 3, step 41: loss is NaN; its model cannot predict/);
  assert.doesNotMatch(r.stdout, /NaN%/);
  await assert.rejects(loadPredictor(broken), /training diverged/);
});

test('issue 11: a model that gives NaN probabilities is refused with a clear error, even without a divergence record', async () => {
  const nanRun = path.join(dir, 'runs', '20260103-000000-nan');
  fs.mkdirSync(nanRun, { recursive: true });
  fs.copyFileSync(path.join(run, 'profile.json'), path.join(nanRun, 'profile.json'));
  const model = colourModel();
  const dense = model.layers[1];
  dense.setWeights([tf.fill([3, 3], NaN), tf.zeros([3])]);
  await saveModel(model, path.join(nanRun, 'model'), { preprocess: 'unit', classes: CLASSES });
  model.dispose();
  const p = await loadPredictor(nanRun);
  // No divergence was recorded, so it is not called one (issue 25): the weights are named.
  await assert.rejects(predictFile(p, path.join(dir, 'red.png')), /red\.png: the model of .* gives a non-finite probability \(NaN for red\): its weights hold NaN or infinite values \(.*weights\.bin\)/);
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'predict', '--run', nanRun, path.join(dir, 'red.png')], { encoding: 'utf8', env: { ...process.env, TLWB_DATA_DIR: dir, TLWB_BACKEND: 'cpu' }, timeout: 60_000 });
  assert.equal(r.status, 1);
  assert.doesNotMatch(r.stdout, /NaN%/);
});

test('issue 11: predict on a FIFO names it and does not hang', { skip: process.platform === 'win32' }, () => {
  const fifo = path.join(dir, 'pipe.png');
  spawnSync('mkfifo', [fifo]);
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'predict', '--run', run, fifo, path.join(dir, 'red.png')], {
    encoding: 'utf8', env: { ...process.env, TLWB_DATA_DIR: dir, TLWB_BACKEND: 'cpu' }, timeout: 60_000,
  });
  assert.equal(r.signal, null, 'finished without being killed by the timeout');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /pipe\.png: a FIFO \(named pipe\), not an image file/);
  assert.match(r.stdout, /red\.png \(50x37\): red/);
});
