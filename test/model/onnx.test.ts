/**
 * ONNX export checked by running the file in ONNX Runtime against TF.js on random inputs: every
 * layer kind (each padding/stride case), then whole networks - ResNet-50 (random weights), and
 * Darknet-Tiny and MobileNet v1 from ../shared when present - within 1e-4 of the largest magnitude.
 */
import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { projectRoot, type PreprocessMode } from '../../src/config';
import { ImageResize } from '../../src/model/layers';
import { exportOnnx, samePads } from '../../src/model/onnx/export';
import { modelProtoType } from '../../src/model/onnx/schema';
import { createSession, loadOrt, runSession } from '../../src/model/engine';
import { ResNet50 } from '../../src/model/resnet';
import { cutModel, loadTfjsModel } from '../../src/model/tfjs-backbone';
import { Random } from '../../src/random';

// The shared data folder beside the clone, else the one holding CIFAR10_DIR (a worktree elsewhere).
const shared = [path.resolve(projectRoot, '../shared/data'), process.env.CIFAR10_DIR ? path.dirname(path.resolve(process.env.CIFAR10_DIR)) : '']
  .find((d) => d && fs.existsSync(path.join(d, 'darknet-tiny'))) ?? path.resolve(projectRoot, '../shared/data');
const darknetDir = process.env.DARKNET_TINY_DIR || path.join(shared, 'darknet-tiny');
const mobilenetDir = path.join(shared, 'mobilenet-v1-0.75');

before(async () => {
  await initBackend({ force: 'wasm', quiet: true });
  assert.ok(loadOrt(), 'onnxruntime-node must load (npm ci installs it)');
});

function randomInput(shape: number[], seed: number, scale = 1): tf.Tensor {
  const rng = new Random(seed);
  const n = shape.reduce((a, d) => a * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rng.next() * 2 - 1) * scale;
  return tf.tensor(data, shape);
}

/** Largest |ORT - TF.js| relative to the largest |TF.js| value, over `batch` random inputs. */
/** An exported file's bytes, to hand to compare() with the expected output. */
function exportOnnxFile(model: tf.LayersModel, preprocess: PreprocessMode): { bytes: Uint8Array } {
  return { bytes: exportOnnx(model, { preprocess }).bytes };
}

async function compare(model: tf.LayersModel | tf.layers.Layer[] | { bytes: Uint8Array }, input: tf.Tensor, tfjsOut?: tf.Tensor): Promise<{ rel: number; abs: number; max: number; ort: Float32Array; tfjs: Float32Array }> {
  const bytes = 'bytes' in model ? model.bytes : exportOnnx(model).bytes;
  const session = await createSession(bytes, 2);
  try {
    const got = await runSession(session, input);
    const want = tfjsOut ?? (Array.isArray(model) ? model.reduce((x, l) => l.apply(x) as tf.Tensor, input) : ((model as tf.LayersModel).predict(input) as tf.Tensor));
    assert.deepEqual(got.shape, want.shape, 'output shapes');
    const a = got.dataSync() as Float32Array;
    const b = want.dataSync() as Float32Array;
    let abs = 0;
    let max = 0;
    for (let i = 0; i < a.length; i++) {
      abs = Math.max(abs, Math.abs(a[i] - b[i]));
      max = Math.max(max, Math.abs(b[i]));
    }
    tf.dispose([got, want]);
    return { rel: abs / Math.max(max, 1e-12), abs, max, ort: a, tfjs: b };
  } finally {
    await session.release();
  }
}

function seqModel(inputShape: number[], layers: tf.layers.Layer[], name = 'm'): tf.LayersModel {
  const input = tf.input({ shape: inputShape });
  const out = layers.reduce((x, l) => l.apply(x) as tf.SymbolicTensor, input as tf.SymbolicTensor);
  return tf.model({ inputs: input, outputs: out, name });
}

async function randomizeBatchNorm(model: tf.LayersModel, seed: number): Promise<void> {
  const rng = new Random(seed);
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const w = l.getWeights();
    l.setWeights(w.map((t, i) => {
      const vals = Float32Array.from({ length: t.size }, () => (i === w.length - 1 ? 0.5 + rng.next() : rng.next() * 2 - 1));
      return tf.tensor(vals, t.shape);
    }));
  }
}

test('TF same padding puts the odd pixel after, as TF computes it', () => {
  assert.deepEqual(samePads(224, 7, 2), [2, 3]);
  assert.deepEqual(samePads(224, 3, 1), [1, 1]);
  assert.deepEqual(samePads(7, 2, 2), [0, 1]);
  assert.deepEqual(samePads(8, 2, 2), [0, 0]);
  assert.deepEqual(samePads(9, 3, 1, 2), [2, 2]);
});

const cases: { name: string; shape: number[]; layers: () => tf.layers.Layer[] }[] = [];
for (const size of [7, 8]) {
  for (const padding of ['same', 'valid'] as const) {
    for (const strides of [1, 2]) {
      for (const kernelSize of [1, 3, 4]) {
        cases.push({ name: `Conv2D ${kernelSize}x${kernelSize} s${strides} ${padding} on ${size}`, shape: [size, size, 3], layers: () => [tf.layers.conv2d({ filters: 5, kernelSize, strides, padding, useBias: true, biasInitializer: 'randomNormal' })] });
        cases.push({ name: `DepthwiseConv2D ${kernelSize}x${kernelSize} s${strides} ${padding} x2 on ${size}`, shape: [size, size, 3], layers: () => [tf.layers.depthwiseConv2d({ kernelSize, strides, padding, depthMultiplier: 2, useBias: true, biasInitializer: 'randomNormal' })] });
      }
      cases.push({ name: `MaxPooling2D 3 s${strides} ${padding} on ${size}`, shape: [size, size, 4], layers: () => [tf.layers.maxPooling2d({ poolSize: 3, strides, padding })] });
      cases.push({ name: `AveragePooling2D 2 s${strides} ${padding} on ${size}`, shape: [size, size, 4], layers: () => [tf.layers.averagePooling2d({ poolSize: 2, strides, padding })] });
    }
    cases.push({ name: `Conv2D 3x3 dilation 2 ${padding} on ${size}`, shape: [size, size, 2], layers: () => [tf.layers.conv2d({ filters: 3, kernelSize: 3, dilationRate: 2, padding })] });
  }
}
cases.push(
  { name: 'Conv2D relu activation, no bias', shape: [6, 6, 3], layers: () => [tf.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', useBias: false })] },
  { name: 'BatchNormalization (4-D and 2-D)', shape: [5, 5, 3], layers: () => [tf.layers.batchNormalization({ epsilon: 1.001e-5 }), tf.layers.flatten(), tf.layers.batchNormalization({ center: false })] },
  { name: 'ReLU, ReLU6 (maxValue), LeakyReLU, Activation relu6/sigmoid/tanh', shape: [4, 4, 3], layers: () => [tf.layers.leakyReLU({ alpha: 0.1 }), tf.layers.activation({ activation: 'tanh' }), tf.layers.reLU({ maxValue: 0.5 }), tf.layers.activation({ activation: 'sigmoid' }), tf.layers.activation({ activation: 'relu6' }), tf.layers.reLU()] },
  { name: 'ELU layer, activations elu/selu/hardSigmoid/swish/softplus/softsign', shape: [3, 3, 2], layers: () => [tf.layers.elu({}), ...(['elu', 'selu', 'hardSigmoid', 'swish', 'softplus', 'softsign'] as const).map((activation) => tf.layers.activation({ activation }))] },
  { name: 'ZeroPadding2D asymmetric', shape: [5, 6, 2], layers: () => [tf.layers.zeroPadding2d({ padding: [[1, 2], [3, 0]] }), tf.layers.conv2d({ filters: 2, kernelSize: 2 })] },
  { name: 'GlobalAveragePooling2D, Dense, Dropout, Softmax', shape: [4, 4, 6], layers: () => [tf.layers.globalAveragePooling2d({}), tf.layers.dropout({ rate: 0.5 }), tf.layers.dense({ units: 7, activation: 'softmax', biasInitializer: 'randomNormal' })] },
  { name: 'GlobalMaxPooling2D', shape: [3, 5, 6], layers: () => [tf.layers.globalMaxPooling2d({})] },
  { name: 'Flatten of a map keeps NHWC order, then Dense', shape: [3, 4, 5], layers: () => [tf.layers.flatten(), tf.layers.dense({ units: 6 })] },
  { name: 'Reshape 4-D -> 4-D -> 2-D (NHWC order)', shape: [2, 3, 4], layers: () => [tf.layers.reshape({ targetShape: [4, 3, 2] }), tf.layers.conv2d({ filters: 3, kernelSize: 1 }), tf.layers.reshape({ targetShape: [36] })] },
  { name: 'Reshape 2-D -> 4-D (MobileNet head)', shape: [6], layers: () => [tf.layers.reshape({ targetShape: [1, 1, 6] }), tf.layers.conv2d({ filters: 4, kernelSize: 1 }), tf.layers.activation({ activation: 'softmax' }), tf.layers.reshape({ targetShape: [4] })] },
  { name: 'Dense on a 4-D map (last axis)', shape: [3, 3, 4], layers: () => [tf.layers.dense({ units: 5, activation: 'relu' })] },
  { name: 'Softmax layer on channels of a map', shape: [3, 3, 4], layers: () => [tf.layers.softmax({ axis: -1 })] },
  { name: 'ImageResize up 5 -> 12 and down 12 -> 7 (half-pixel bilinear)', shape: [5, 5, 3], layers: () => [new ImageResize({ height: 12, width: 12 }), new ImageResize({ height: 7, width: 7 })] },
  { name: 'ImageResize same size passes through', shape: [4, 4, 3], layers: () => [new ImageResize({ height: 4, width: 4 })] },
);

for (const c of cases) {
  test(`ONNX = TF.js: ${c.name}`, async () => {
    const model = seqModel(c.shape, c.layers());
    await randomizeBatchNorm(model, 3);
    const x = randomInput([2, ...c.shape], 11);
    const r = await compare(model, x);
    x.dispose();
    assert.ok(r.rel <= 1e-5, `max |diff| ${r.abs} vs max |value| ${r.max}`);
  });
}

test('ONNX = TF.js: Add and Concatenate of branches, nested model', async () => {
  const inner = (() => {
    const i = tf.input({ shape: [6, 6, 4] });
    const a = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(i) as tf.SymbolicTensor;
    const b = tf.layers.add().apply([a, i]) as tf.SymbolicTensor;
    const c = tf.layers.concatenate({ axis: -1 }).apply([b, i]) as tf.SymbolicTensor;
    const m = tf.layers.multiply().apply([c, c]) as tf.SymbolicTensor;
    return tf.model({ inputs: i, outputs: m, name: 'inner' });
  })();
  const input = tf.input({ shape: [6, 6, 4] });
  const y = inner.apply(input) as tf.SymbolicTensor;
  const z = tf.layers.globalAveragePooling2d({}).apply(y) as tf.SymbolicTensor;
  const z2 = tf.layers.dense({ units: 3 }).apply(z) as tf.SymbolicTensor;
  const k = tf.layers.concatenate().apply([z2, z]) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: k, name: 'outer' });
  const x = randomInput([3, 6, 6, 4], 5);
  const r = await compare(model, x);
  x.dispose();
  assert.ok(r.rel <= 1e-5, `max |diff| ${r.abs} vs max |value| ${r.max}`);
});

test('a chain of layers exports as one graph (the frozen front of a model)', async () => {
  const base = seqModel([8, 8, 3], [tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' })], 'base');
  const input = tf.input({ shape: [4, 4, 3] });
  const resize = new ImageResize({ height: 8, width: 8 });
  const pool = tf.layers.globalAveragePooling2d({});
  pool.apply(base.apply(resize.apply(input)) as tf.SymbolicTensor);
  const x = randomInput([2, 4, 4, 3], 9);
  const r = await compare([resize, base, pool], x);
  x.dispose();
  assert.ok(r.rel <= 1e-5, `max |diff| ${r.abs}`);
});

test('an unsupported layer fails naming the layer and its class', () => {
  const model = seqModel([4, 4, 3], [tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'ok_conv' }), tf.layers.upSampling2d({ size: [2, 2], name: 'up' })]);
  assert.throws(() => exportOnnx(model), /layer 'up' \(class UpSampling2D\) is not supported/);
  const gelu = seqModel([3], [tf.layers.dense({ units: 2, activation: 'mish' as 'relu', name: 'dense_mish' })]);
  assert.throws(() => exportOnnx(gelu), /layer 'dense_mish' \(class Dense\) has activation 'mish'/);
});

for (const mode of ['unit', 'torch', 'tf', 'none'] as const) {
  test(`baked preprocessing '${mode}': raw pixels in the file = preprocess() then the model`, async () => {
    const model = seqModel([3, 3, 3], [tf.layers.conv2d({ filters: 2, kernelSize: 1 })]);
    const { preprocess } = await import('../../src/preprocess');
    const raw = tf.tidy(() => tf.mul(tf.add(randomInput([2, 3, 3, 3], 6), 1), 127.5));
    const want = tf.tidy(() => model.predict(preprocess(raw as tf.Tensor4D, mode)) as tf.Tensor);
    const r = await compare(exportOnnxFile(model, mode), raw, want);
    raw.dispose();
    assert.ok(r.rel <= 1e-5, `max |diff| ${r.abs} vs ${r.max}`);
  });
}

test('the file is a valid ModelProto with opset 13, metadata, and baked preprocessing', async () => {
  const model = seqModel([4, 4, 3], [tf.layers.conv2d({ filters: 2, kernelSize: 1 }), tf.layers.flatten()]);
  const out = exportOnnx(model, { preprocess: 'caffe', metadata: { classes: '["a","b"]', preprocess: 'caffe' } });
  const decoded = modelProtoType().toObject(modelProtoType().decode(out.bytes), { longs: Number }) as { opset_import: { version: number }[]; metadata_props: { key: string; value: string }[]; graph: { input: { name: string }[] } };
  assert.equal(decoded.opset_import[0].version, 13);
  assert.deepEqual(decoded.metadata_props.map((m) => m.key), ['classes', 'preprocess']);
  // Raw 0..255 RGB in the file equals preprocess() then the model in TF.js.
  const { preprocess } = await import('../../src/preprocess');
  const raw = tf.tidy(() => tf.mul(tf.add(randomInput([2, 4, 4, 3], 4), 1), 127.5));
  const session = await createSession(out.bytes, 1);
  const got = await runSession(session, raw);
  const want = model.predict(preprocess(raw as tf.Tensor4D, 'caffe')) as tf.Tensor;
  const diff = tf.max(tf.abs(tf.sub(got, want))).dataSync()[0];
  const scale = tf.max(tf.abs(want)).dataSync()[0];
  assert.ok(diff <= 1e-5 * scale, `diff ${diff} scale ${scale}`);
  await session.release();
  tf.dispose([raw, got, want]);
});

test('whole network: ResNet-50 (random weights, 224 px) within 1e-4 of the largest magnitude', async () => {
  const model = ResNet50({ includeTop: true, classifierActivation: 'linear' });
  const x = randomInput([1, 224, 224, 3], 21, 100);
  const r = await compare(model, x);
  x.dispose();
  console.log(`resnet50: max |diff| ${r.abs.toExponential(3)}, max |value| ${r.max.toExponential(3)}, relative ${r.rel.toExponential(3)}`);
  assert.ok(r.rel <= 1e-4, `relative ${r.rel}`);
  model.dispose();
});

test('whole network: Darknet-Tiny (224 px)', { skip: fs.existsSync(path.join(darknetDir, 'model.json')) ? false : `no Darknet-Tiny at ${darknetDir}` }, async () => {
  const model = await loadTfjsModel(darknetDir);
  const x = randomInput([2, 224, 224, 3], 22, 0.5);
  const r = await compare(model, tf.add(x, 0.5));
  x.dispose();
  console.log(`darknet-tiny: max |diff| ${r.abs.toExponential(3)}, max |value| ${r.max.toExponential(3)}, relative ${r.rel.toExponential(3)}`);
  assert.ok(r.rel <= 1e-4, `relative ${r.rel}`);
  model.dispose();
});

test('whole network: MobileNet v1 0.75 (224 px)', { skip: fs.existsSync(path.join(mobilenetDir, 'model.json')) ? false : `no MobileNet at ${mobilenetDir}` }, async () => {
  const model = await loadTfjsModel(mobilenetDir);
  const x = randomInput([2, 224, 224, 3], 23);
  const r = await compare(model, x);
  x.dispose();
  console.log(`mobilenet-v1-0.75: max |diff| ${r.abs.toExponential(3)}, max |value| ${r.max.toExponential(3)}, relative ${r.rel.toExponential(3)}`);
  assert.ok(r.rel <= 1e-4, `relative ${r.rel}`);
  // The logits too (before the softmax squeezes differences): cut at conv_preds.
  const logits = cutModel(model, 'conv_preds', { name: 'mobilenet_logits' });
  const x2 = randomInput([2, 224, 224, 3], 24);
  const l = await compare(logits, x2);
  x2.dispose();
  console.log(`mobilenet-v1-0.75 logits: max |diff| ${l.abs.toExponential(3)}, max |value| ${l.max.toExponential(3)}, relative ${l.rel.toExponential(3)}`);
  assert.ok(l.rel <= 1e-4, `relative ${l.rel}`);
  model.dispose();
});

// The official ONNX checker (python3-onnx), independent of ONNX Runtime: the schema of every node,
// strict shape inference. Skipped where /usr/bin/python3 has no onnx package (apt: python3-onnx).
const pythonOnnx = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;
test('the official onnx checker accepts an export with every layer kind (full check, strict shape inference)', { skip: pythonOnnx ? false : 'no python3-onnx' }, () => {
  const input = tf.input({ shape: [9, 9, 3] });
  let x = new ImageResize({ height: 12, width: 12 }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.zeroPadding2d({ padding: 1 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({}).apply(x) as tf.SymbolicTensor;
  const d = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor;
  const a = tf.layers.add().apply([x, tf.layers.leakyReLU({}).apply(d) as tf.SymbolicTensor]) as tf.SymbolicTensor;
  const c = tf.layers.concatenate().apply([a, tf.layers.reLU({ maxValue: 6 }).apply(x) as tf.SymbolicTensor]) as tf.SymbolicTensor;
  const m = tf.layers.maxPooling2d({ poolSize: 2, padding: 'same' }).apply(c) as tf.SymbolicTensor;
  const p = tf.layers.averagePooling2d({ poolSize: 2 }).apply(m) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({}).apply(p) as tf.SymbolicTensor;
  const r = tf.layers.reshape({ targetShape: [1, 1, 8] }).apply(g) as tf.SymbolicTensor;
  const f = tf.layers.flatten().apply(tf.layers.activation({ activation: 'relu6' }).apply(r) as tf.SymbolicTensor) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 5, activation: 'softmax' }).apply(tf.layers.dropout({ rate: 0.2 }).apply(f) as tf.SymbolicTensor) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'everything' });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-onnx-')), 'everything.onnx');
  fs.writeFileSync(file, exportOnnx(model, { preprocess: 'caffe', metadata: { classes: '["a"]' } }).bytes);
  const py = `import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
i = onnx.shape_inference.infer_shapes(m, strict_mode=True)
print([d.dim_value or d.dim_param for d in i.graph.output[0].type.tensor_type.shape.dim])`;
  const run = spawnSync('/usr/bin/python3', ['-c', py, file], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), "['batch', 5]");
  model.dispose();
});

test('float16Weights: large kernels stored as float16 behind a Cast, the output within float16 rounding, the checker accepts it', async () => {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = tf.layers.conv2d({ filters: 64, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor; // 1,728 values: float16
  x = tf.layers.batchNormalization({}).apply(x) as tf.SymbolicTensor; // 64 values each: stay float32
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 4, activation: 'softmax' }).apply(x) as tf.SymbolicTensor; // 256 values: float32
  const model = tf.model({ inputs: input, outputs: out, name: 'half' });
  await randomizeBatchNorm(model, 3);
  const full = exportOnnx(model);
  const half = exportOnnx(model, { float16Weights: true });
  type Init = { name: string; data_type: number; dims: number[] };
  const decoded = modelProtoType().toObject(modelProtoType().decode(half.bytes), { longs: Number }) as { graph: { initializer: Init[]; node: { op_type: string; input: string[] }[] } };
  const halves = decoded.graph.initializer.filter((t) => t.data_type === 10);
  assert.deepEqual(halves.map((t) => t.dims), [[64, 3, 3, 3]], 'only the conv kernel is float16');
  assert.ok(decoded.graph.node.some((n) => n.op_type === 'Cast' && n.input[0] === halves[0].name), 'a Cast widens it');
  assert.ok(half.bytes.byteLength < full.bytes.byteLength - 1728 * 2 + 200, `${half.bytes.byteLength} vs ${full.bytes.byteLength} bytes`);
  const xIn = randomInput([4, 8, 8, 3], 21);
  const r = await compare({ bytes: half.bytes }, xIn, model.predict(xIn) as tf.Tensor);
  xIn.dispose();
  // float16 keeps 11 significant bits: the probabilities move by about 1e-3 of their size, not more.
  assert.ok(r.rel > 0 && r.rel <= 5e-3, `relative ${r.rel}`);
  if (pythonOnnx) {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-onnx-')), 'half.onnx');
    fs.writeFileSync(file, half.bytes);
    const run = spawnSync('/usr/bin/python3', ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', file], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
  model.dispose();
});
