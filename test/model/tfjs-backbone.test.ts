/**
 * TF.js layers models as backbones: Darknet-Tiny from ../shared (skipped when absent) and the same
 * files served over HTTP on 127.0.0.1 by the test; other input sizes; cutting at a layer.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { projectRoot } from '../../src/config';
import { cutModel, loadTfjsModel, readModelArtifacts, withInputSize } from '../../src/model/tfjs-backbone';

const darknetDir = process.env.DARKNET_TINY_DIR || path.resolve(projectRoot, '../shared/data/darknet-tiny');
const haveDarknet = fs.existsSync(path.join(darknetDir, 'model.json'));
const skip = haveDarknet ? false : `no Darknet-Tiny at ${darknetDir}`;

let server: http.Server | undefined;
let baseUrl = '';
let requests: string[] = [];

before(async () => {
  await initBackend({ force: 'wasm', quiet: true });
  if (!haveDarknet) return;
  server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const m = /^\/models\/darknettiny\/([\w.-]+)$/.exec(decodeURIComponent((req.url ?? '').split('?')[0]));
    const file = m ? path.join(darknetDir, m[1]) : '';
    if (!m || !fs.existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/darknettiny/`;
});
after(() => server?.close());

async function checksum(m: tf.LayersModel): Promise<number> {
  const sums = m.weights.map((w) => tf.sum(tf.abs(w.read())));
  const total = tf.addN(sums);
  const v = (await total.data())[0];
  tf.dispose([...sums, total]);
  return v;
}

test('Darknet-Tiny loads from a folder: 224x224x3 -> 1000 ImageNet logits', { skip }, async () => {
  const m = await loadTfjsModel(darknetDir);
  assert.deepEqual(m.inputs[0].shape, [null, 224, 224, 3]);
  assert.deepEqual(m.outputs[0].shape, [null, 1000]);
  const x = tf.fill([1, 224, 224, 3], 0.5);
  const y = m.predict(x) as tf.Tensor;
  const v = await y.data();
  assert.ok(v.every(Number.isFinite));
  assert.ok(Math.max(...v) - Math.min(...v) > 1, 'real weights give spread-out logits');
  tf.dispose([x, y]);
  m.dispose();
});

test('Darknet-Tiny loads from a URL served on 127.0.0.1 with the same weights', { skip }, async () => {
  requests = [];
  const fromUrl = await loadTfjsModel(`${baseUrl}model.json`);
  const fromDir = await loadTfjsModel(darknetDir);
  assert.ok(requests.some((r) => r.endsWith('model.json')));
  assert.equal(requests.filter((r) => r.includes('shard')).length, 31, 'every shard fetched');
  assert.equal(await checksum(fromUrl), await checksum(fromDir));
  await assert.rejects(loadTfjsModel(`${baseUrl}missing/model.json`), /HTTP 404/);
  fromUrl.dispose();
  fromDir.dispose();
});

test('other input sizes (fully convolutional) and cutting before the 1000-way conv', { skip }, async () => {
  const m = await loadTfjsModel(darknetDir, { inputSize: 64 });
  assert.deepEqual(m.inputs[0].shape, [null, 64, 64, 3]);
  const cut = cutModel(m, 'leaky_re_lu_15', { pooling: 'avg', name: 'darknet_tiny' });
  assert.deepEqual(cut.outputs[0].shape, [null, 128]);
  assert.equal(cut.layers.at(-2)!.name, 'leaky_re_lu_15');
  assert.ok(!cut.layers.some((l) => l.name === 'conv2d_16'), 'the classifier conv is cut off');
  const x = tf.randomUniform([2, 64, 64, 3]);
  const f = cut.predict(x) as tf.Tensor;
  assert.deepEqual(f.shape, [2, 128]);
  tf.dispose([x, f]);
  assert.throws(() => cutModel(m, 'no_such_layer'), /cut layer 'no_such_layer' not in model/);
  m.dispose();
});

test('bad sources fail naming what is wrong', async () => {
  const tmp = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'tlwb-tfjs-'));
  try {
    await assert.rejects(readModelArtifacts(path.join(tmp, 'nothing')), /nothing: model\.json not found/);
    fs.writeFileSync(path.join(tmp, 'model.json'), '{"format": "graph-model"');
    await assert.rejects(readModelArtifacts(tmp), /model\.json: not valid JSON/);
    fs.writeFileSync(path.join(tmp, 'model.json'), '{"format": "graph-model"}');
    await assert.rejects(readModelArtifacts(tmp), /no 'modelTopology'/);
    assert.throws(() => withInputSize({ config: { layers: [] } }, 64, 'x.json'), /x\.json: expected one InputLayer/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
