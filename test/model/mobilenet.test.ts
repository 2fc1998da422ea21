/**
 * The MobileNet v1 presets: the family's data, where the files are looked for, parameter counts
 * as Keras gives them (include_top=False: 1,832,976 at alpha 0.75), other input sizes, named cut
 * points, and the ImageNet check with the label names shipped in metadata.json. The real-weight
 * tests use /work/shared's copy (MOBILENET_V1_0_75_DIR or ../shared) and skip when it is absent.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { buildModel } from '../../src/model/build';
import { Random } from '../../src/random';
import { withSeededMathRandomAsync } from '../../src/train/seeded';
import { countParams } from '../../src/model/freeze';
import { labelsBesideModel } from '../../src/model/imagenet';
import { imagenetCheck } from '../../src/model/inspect';
import { MOBILENET_V1_ALPHAS, PRESETS, TfjsPreset, tfjsSource } from '../../src/model/presets';

const preset = PRESETS['mobilenet-v1-0.75'] as TfjsPreset;
const mobilenetDir = process.env.MOBILENET_V1_0_75_DIR || preset.source.defaultDir!;
const skip = fs.existsSync(path.join(mobilenetDir, 'model.json')) ? false : `no MobileNet v1 0.75 at ${mobilenetDir}`;
let dir: string;

before(async () => {
  await initBackend({ force: 'wasm', quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-mobilenet-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('MobileNet v1 presets: four widths, [-1, 1] inputs, cut at conv_pw_13_relu, files by env, ../shared, then upstream', () => {
  assert.deepEqual(MOBILENET_V1_ALPHAS, ['0.25', '0.50', '0.75', '1.0']);
  for (const alpha of MOBILENET_V1_ALPHAS) {
    const p = PRESETS[`mobilenet-v1-${alpha}`];
    assert.ok(p.kind === 'tfjs', alpha);
    assert.equal(p.preprocess, 'tf');
    assert.equal(p.cutLayer, 'conv_pw_13_relu');
    assert.equal(p.source.url, `https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_${alpha}_224/model.json`);
    assert.equal(p.source.env, `MOBILENET_V1_${alpha.replace('.', '_')}_DIR`);
    assert.ok(p.source.defaultDir!.endsWith(path.join('shared', 'data', `mobilenet-v1-${alpha}`)));
  }
  // Lookup order, on a copy of the preset whose folders are the test's.
  const local = path.join(dir, 'local');
  fs.mkdirSync(local);
  const fake: TfjsPreset = { ...preset, source: { env: 'TLWB_TEST_MOBILENET_DIR', defaultDir: path.join(dir, 'absent'), url: 'http://127.0.0.1:9/model.json' } };
  delete process.env.TLWB_TEST_MOBILENET_DIR;
  assert.equal(tfjsSource(fake), fake.source.url, 'nothing local: the upstream URL');
  fs.writeFileSync(path.join(local, 'model.json'), '{}');
  assert.equal(tfjsSource({ ...fake, source: { ...fake.source, defaultDir: local } }), local, 'the default folder when it has a model.json');
  process.env.TLWB_TEST_MOBILENET_DIR = path.join(dir, 'nowhere');
  try {
    assert.throws(() => tfjsSource(fake), /TLWB_TEST_MOBILENET_DIR=.*nowhere: no such folder or file/);
    process.env.TLWB_TEST_MOBILENET_DIR = local;
    assert.equal(tfjsSource({ ...fake, source: { ...fake.source, defaultDir: path.join(dir, 'absent') } }), local, 'the environment variable first');
  } finally {
    delete process.env.TLWB_TEST_MOBILENET_DIR;
  }
});

test('MobileNet v1 0.75: Keras counts (none 1,832,976; gap + Dense(10) 1,840,666), any input >= 32, named cuts', { skip }, async () => {
  const none = await buildModel({ arch: 'mobilenet-v1-0.75', head: 'none', inputSize: 224, weights: 'none' }, 10);
  assert.equal(countParams(none.model).params, 1_832_976);
  assert.deepEqual(none.base.outputs[0].shape, [null, 7, 7, 768]);
  none.model.dispose();
  const gap = await buildModel({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 224, weights: 'none' }, 10);
  assert.equal(countParams(gap.model).params, 1_840_666);
  gap.model.dispose();
  for (const [size, side] of [[32, 1], [96, 3], [128, 4], [160, 5]] as const) {
    const b = await buildModel({ arch: 'mobilenet-v1-0.75', head: 'none', inputSize: size, weights: 'none' }, 10);
    assert.deepEqual(b.base.outputs[0].shape, [null, side, side, 768], `${size} px`);
    b.model.dispose();
  }
  const cut = await buildModel({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 128, weights: 'none', cutLayer: 'conv_pw_11_relu' }, 10);
  assert.deepEqual(cut.base.outputs[0].shape, [null, 384]);
  cut.model.dispose();
  await assert.rejects(buildModel({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 16, weights: 'none' }, 10), /inputSize 16: mobilenet-v1-0\.75 needs at least 32 px/);
  await assert.rejects(buildModel({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 64, weights: 'none', cutLayer: 'conv_pw_99' }, 10), /cut layer 'conv_pw_99' not in model/);
});

test('MobileNet v1 0.75 ImageNet weights at 128 px: features are the cut of the full model; the check names real classes from metadata.json', { skip }, async () => {
  const built = await buildModel({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 128, weights: 'imagenet' }, 10);
  assert.equal(built.weightsSource, mobilenetDir);
  const x = tf.randomUniform([2, 128, 128, 3], -1, 1);
  const f = built.base.predict(x) as tf.Tensor;
  assert.deepEqual(f.shape, [2, 768]);
  const v = await f.data();
  assert.ok(v.every((e) => Number.isFinite(e) && e >= 0 && e <= 6), 'pooled ReLU6 features lie in [0, 6]');
  assert.ok(Math.max(...v) > 0.1, 'real weights give non-trivial features');
  tf.dispose([x, f]);
  built.model.dispose();

  const labels = await labelsBesideModel(mobilenetDir, 'metadata.json');
  assert.equal(labels?.length, 1000);
  assert.equal(labels?.[0], 'tench, Tinca tinca');
  // Smooth synthetic images (no data set needed): the check must show label names, not indices.
  const images = new Uint8Array(2 * 32 * 32 * 3).map((_, i) => 128 + Math.round(100 * Math.sin(i / 97)));
  const set = { images, labels: Uint8Array.from([3, 8]), count: 2, height: 32, width: 32 };
  const check = await imagenetCheck({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 128, weights: 'imagenet' }, set, [0, 1], { inputSize: 96 });
  assert.match(check.note, /metadata\.json/);
  for (const row of check.rows) assert.ok(labels!.some((l) => String(row.top1).startsWith(`${l} (`)), `top1 '${row.top1}' is a label name`);
});

test('labelsBesideModel reads metadata.json from a folder or beside a URL, undefined when missing', async () => {
  const folder = path.join(dir, 'labels');
  fs.mkdirSync(folder);
  const names = Array.from({ length: 1000 }, (_, i) => `class ${i}`);
  fs.writeFileSync(path.join(folder, 'metadata.json'), JSON.stringify({ labels: names }));
  assert.deepEqual(await labelsBesideModel(folder, 'metadata.json'), names);
  assert.deepEqual(await labelsBesideModel(path.join(folder, 'model.json'), 'metadata.json'), names);
  assert.equal(await labelsBesideModel(path.join(dir, 'absent'), 'metadata.json'), undefined);
  const server = http.createServer((req, res) => {
    if (req.url === '/m/metadata.json') res.writeHead(200).end(JSON.stringify({ labels: names }));
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    assert.deepEqual(await labelsBesideModel(`${base}/m/model.json`, 'metadata.json'), names);
    assert.equal(await labelsBesideModel(`${base}/x/model.json`, 'metadata.json'), undefined);
  } finally {
    server.close();
  }
});

test('a whole MobileNet v1 0.75 training step (ImageNet weights, 64 px, batch 2): wasm gradients match cpu', { skip }, async () => {
  // The head's initial weights seeded (as training seeds them): the same step every run, not a new draw each time.
  const built = await withSeededMathRandomAsync(new Random(42), () => buildModel({ arch: 'mobilenet-v1-0.75', head: 'gap', inputSize: 64, weights: 'imagenet' }, 10, { storedSize: 64 }));
  const xData = new Float32Array(2 * 64 * 64 * 3).map((_, i) => Math.sin(i * 0.013) * Math.cos(i * 0.0007));
  const grads = async (backend: string) => {
    await tf.setBackend(backend);
    const xs = tf.tensor4d(xData, [2, 64, 64, 3]);
    const ys = tf.oneHot([3, 8], 10);
    const { value, grads: g } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(ys, built.model.apply(xs, { training: true }) as tf.Tensor));
    const out: Record<string, Float32Array> = {};
    for (const [name, t] of Object.entries(g)) out[name] = (await t.data()) as Float32Array;
    const loss = (await value.data())[0];
    tf.dispose([xs, ys, value, g as never]);
    return { loss, grads: out };
  };
  try {
    const cpu = await grads('cpu');
    const wasm = await grads('wasm');
    assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-4 * (1 + cpu.loss), `loss cpu ${cpu.loss} wasm ${wasm.loss}`);
    const names = Object.keys(cpu.grads);
    assert.equal(names.length, 83, 'every kernel, gamma and beta of the base, and the Dense head');
    assert.ok(names.filter((n) => /depthwise_kernel/.test(n)).length === 13);
    for (const name of names) {
      const a = wasm.grads[name];
      const b = cpu.grads[name];
      let scale = 0;
      let worst = 0;
      for (const v of b) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      // 5e-3 of the largest value: with batch 2 and ReLU6 saturating, this gradient is chaotic - moving the
      // input by 1e-6 moved cpu's own gradients by up to 27% (64 px) - while wasm stays within 1.3e-3 of cpu.
      assert.ok(worst <= 5e-3 * scale + 1e-7, `${name}: max |wasm - cpu| ${worst.toExponential(2)} > 5e-3 x ${scale.toExponential(2)}`);
    }
  } finally {
    await tf.setBackend('wasm');
    built.model.dispose();
  }
});
