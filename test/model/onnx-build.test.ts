/**
 * ONNX backbones in buildModel without PyTorch: a small network written by the workbench's own
 * exporter (NHWC input, as tf2onnx files have) served from 127.0.0.1 as model.onnx.url with its
 * sha256, downloaded through the cached downloader, imported, cut and given a head; a wrong sha256
 * fails naming it. And the ONNX presets resolve with model.onnx overrides.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { buildModel } from '../../src/model/build';
import { countParams } from '../../src/model/freeze';
import { exportOnnx } from '../../src/model/onnx/export';
import { importOnnx } from '../../src/model/onnx/import';
import { ONNX_PRESETS, presetForModel } from '../../src/model/presets';
import { Random } from '../../src/random';
import { withSeededMathRandom } from '../../src/train/seeded';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-onnx-build-'));
const savedDataDir = process.env.TLWB_DATA_DIR;
let server: http.Server;
let base = '';
let onnxBytes: Buffer;
let requests = 0;

/** conv (stride 2, same) -> BN -> relu6 -> depthwise -> BN -> relu -> GAP -> dense(5): every weight kind the tiny test needs. */
function tinyNet(): tf.LayersModel {
  return withSeededMathRandom(new Random(4), () => {
    const input = tf.input({ shape: [16, 16, 3], name: 'image' });
    let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', name: 'stem' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu6', name: 'stem_relu' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'dw_bn' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu', name: 'dw_relu' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: 5, name: 'classifier' }).apply(x) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: x, name: 'tiny' });
  });
}

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
  process.env.TLWB_DATA_DIR = dataDir;
  const net = tinyNet();
  onnxBytes = Buffer.from(exportOnnx(net).bytes);
  net.dispose();
  server = http.createServer((req, res) => {
    requests++;
    if (req.url !== '/zoo/tiny.onnx') {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': onnxBytes.length });
    res.end(onnxBytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.close();
  if (savedDataDir === undefined) delete process.env.TLWB_DATA_DIR;
  else process.env.TLWB_DATA_DIR = savedDataDir;
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('model.onnx.url with sha256: downloaded once into data/downloads, imported (NHWC graph), cut before the classifier, new head', async () => {
  const sha256 = crypto.createHash('sha256').update(onnxBytes).digest('hex');
  const cfg = { arch: 'ignored', head: 'gap' as const, inputSize: 16, weights: 'imagenet', onnx: { url: `${base}/zoo/tiny.onnx`, sha256, preprocess: 'unit' as const } };
  const built = await buildModel(cfg, 3, { storedSize: 16, quiet: true });
  assert.ok(fs.existsSync(path.join(dataDir, 'downloads', 'tiny.onnx')), 'cached in data/downloads');
  assert.equal(built.arch, 'onnx:tiny');
  assert.equal(built.preprocess, 'unit');
  // The cut: the last spatial map (dw_relu), pooled; the 5-way classifier is not in the base.
  assert.deepEqual(built.base.outputs[0].shape, [null, 8]);
  assert.deepEqual(built.model.outputs[0].shape, [null, 3]);
  const backbone = 3 * 3 * 3 * 8 + 8 + 2 * 8 + 3 * 3 * 8 + 8 + 2 * 8;
  assert.equal(countParams(built.base).trainableParams, backbone);
  const y = built.model.predict(tf.randomUniform([2, 16, 16, 3])) as tf.Tensor;
  const sums = (tf.sum(y, 1).dataSync() as Float32Array).map((v) => Math.round(v * 1e4) / 1e4);
  assert.deepEqual(Array.from(sums), [1, 1]);
  tf.dispose(y);
  built.model.dispose();

  const before = requests;
  const again = await buildModel(cfg, 3, { storedSize: 16, quiet: true });
  assert.equal(requests, before, 'the cached file is used (its sha256 checked), not downloaded again');
  again.model.dispose();
});

test('a wrong sha256 fails naming it; a missing model.onnx.file fails naming the file', async () => {
  fs.rmSync(path.join(dataDir, 'downloads'), { recursive: true, force: true });
  const cfg = { arch: 'x', head: 'gap' as const, inputSize: 16, weights: 'imagenet', onnx: { url: `${base}/zoo/tiny.onnx`, sha256: '0'.repeat(64) } };
  await assert.rejects(buildModel(cfg, 3, { storedSize: 16, quiet: true }), /ONNX download failed .*sha256 mismatch .*expected 0{64}/);
  assert.ok(!fs.existsSync(path.join(dataDir, 'downloads', 'tiny.onnx')), 'no file left behind');
  await assert.rejects(buildModel({ ...cfg, onnx: { file: path.join(dataDir, 'nope.onnx') } }, 3, { quiet: true }), /model\.onnx\.file '.*nope\.onnx': no such file/);
});

test('the NHWC graph imports exactly: TF.js model -> ONNX -> TF.js gives the same outputs', () => {
  const net = tinyNet();
  const imported = importOnnx(onnxBytes, { origin: 'tiny.onnx' });
  const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 9);
  const [a, b] = [net.predict(x) as tf.Tensor, imported.model.predict(x) as tf.Tensor];
  assert.ok((tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]) < 1e-5);
  assert.equal(countParams(imported.model).trainableParams, countParams(net).trainableParams);
  tf.dispose([a, b, x]);
  net.dispose();
  imported.model.dispose();
});

test('ONNX presets: zoo URLs with sha256; model.onnx overrides the preset field by field', () => {
  for (const [name, p] of Object.entries(ONNX_PRESETS)) {
    assert.match(p.source.url ?? '', /^https:\/\/github\.com\/onnx\/models\/raw\/main\/Computer_Vision\/.+\.onnx$/, name);
    assert.match(p.source.sha256 ?? '', /^[0-9a-f]{64}$/, name);
  }
  const preset = presetForModel({ arch: 'onnx-mobilenet-v2' });
  assert.equal(preset.kind, 'onnx');
  const custom = presetForModel({ arch: 'onnx-mobilenet-v2', onnx: { cut: '/features/features.17/conv/conv.2/BatchNormalization', preprocess: 'tf' } });
  assert.ok(custom.kind === 'onnx' && custom.source.sha256 === ONNX_PRESETS['onnx-mobilenet-v2'].source.sha256 && custom.preprocess === 'tf' && custom.arch === 'onnx-mobilenet-v2');
  const local = presetForModel({ arch: 'resnet50', onnx: { file: '/x/y/my_net.onnx' } });
  assert.ok(local.kind === 'onnx' && local.arch === 'onnx:my_net' && local.preprocess === 'torch' && local.source.file === '/x/y/my_net.onnx');
  assert.throws(() => presetForModel({ arch: 'resnet50', onnx: {} }), /model\.onnx: give file or url/);
});
