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
import { loadPredictor, predictFile, predictorInput, runClasses } from '../../src/results/predict';
import { loadImageFolder } from '../../src/data/imagefolder';
import sharp from 'sharp';
import { declaredPng } from '../data/fixtures';
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
  await assert.rejects(predictFile(p, path.join(dir, 'notes.txt')), new RegExp(`notes.txt: not an image in a format this build reads`));
  p.model.dispose();
});

test('training and predict see the same pixels: one decode+resize rule (data/decode.ts)', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-same-'));
  const noise = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: 'grey', noise: { type: 'gaussian', mean: 128, sigma: 60 } } });
  const files = [path.join(root, 'a', 'photo.jpg'), path.join(root, 'b', 'turned.jpg'), path.join(root, 'b', 'deep.png')];
  files.forEach((f) => fs.mkdirSync(path.dirname(f), { recursive: true }));
  await noise(900, 600).jpeg({ quality: 85 }).toFile(files[0]);
  await noise(700, 500).jpeg({ quality: 85 }).withMetadata({ orientation: 8 }).toFile(files[1]);
  await noise(120, 90).toColourspace('rgb16').png().toFile(files[2]);
  const ds = await loadImageFolder(root, SIZE, { cache: false });
  const bytes = SIZE * SIZE * 3;
  // Interleaved order: a/photo.jpg, b/deep.png, b/turned.jpg
  for (const [n, file] of [[0, files[0]], [1, files[2]], [2, files[1]]] as const) {
    const { raw } = await predictorInput({ size: SIZE }, file);
    assert.deepEqual(Array.from(raw.dataSync()), Array.from(ds.train.images.subarray(n * bytes, (n + 1) * bytes)), path.basename(file));
    raw.dispose();
  }
  fs.rmSync(root, { recursive: true });
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
  assert.match(lines[2].error, /notes.txt: not an image in a format this build reads/);
  assert.match(r.stderr, /error: .*notes.txt: not an image in a format this build reads/);
  assert.doesNotMatch(r.stderr, /Hi, looks like you are running TensorFlow\.js/, 'the backend line says which backend runs; no tfjs banner');
  // Without --run it names the run it chose, its profile and its result, before any prediction.
  assert.match(r.stderr, new RegExp(`^model: run .*${path.basename(run)} \\(profile [^;]+; (test accuracy|no test accuracy).*\\) - the newest run with a trained model`, 'm'));

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

test('issue 25 case 3: predict refuses a PNG bomb by name, from its header (under 2 s; the process stays under 500 MB)', async () => {
  const bomb = path.join(dir, 'bomb.png');
  fs.writeFileSync(bomb, declaredPng(20000, 20000));
  const p = await loadPredictor(run);
  const started = performance.now();
  await assert.rejects(predictFile(p, bomb), (e: Error) => e.message.startsWith(`${bomb}: 20000x20000 pixels (400.0 megapixels) is more than the limit of 178956970 pixels`) && /the run's data\.maxImagePixels/.test(e.message));
  assert.ok(performance.now() - started < 2000);
  p.model.dispose();
  // The whole CLI (model loaded, the bomb refused): its peak memory, measured in the child.
  const preload = path.join(dir, 'measure.js');
  fs.writeFileSync(preload, "process.on('exit', () => process.stderr.write('\\nMAXRSS ' + process.resourceUsage().maxRSS + '\\n'));\n");
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, ['-r', preload, cli, 'predict', '--run', run, '--json', bomb], { encoding: 'utf8', env: { ...process.env, TLWB_DATA_DIR: dir, TLWB_BACKEND: 'cpu' }, timeout: 60_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bomb\.png: 20000x20000 pixels/);
  const maxRssMB = Number(/MAXRSS (\d+)/.exec(r.stderr)![1]) / 1024;
  assert.ok(maxRssMB < 500, `${maxRssMB} MB`);
});
