/**
 * Saved model folders carry checksums.json (size and sha256 of model.json and weights.bin); loadModel
 * verifies them, so an edited, truncated or replaced file is refused by name before its numbers are
 * used (issue 25). Folders saved before checksums existed get a size check and errors naming model.json.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { loadModel, MODEL_CHECKSUMS, saveModel } from '../../src/model/io';

function dense(units = 3): tf.LayersModel {
  return tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units, activation: 'softmax', kernelInitializer: 'ones' })] });
}

function tmpDir(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-io-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function saved(t: { after: (fn: () => void) => void }): Promise<string> {
  const dir = path.join(tmpDir(t), 'model');
  const m = dense();
  await saveModel(m, dir, { classes: ['a', 'b', 'c'] });
  m.dispose();
  return dir;
}

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

test('saveModel writes checksums.json; loadModel verifies it and loads an intact folder', async (t) => {
  const dir = await saved(t);
  const sums = JSON.parse(fs.readFileSync(path.join(dir, MODEL_CHECKSUMS), 'utf8')) as Record<string, { bytes: number; sha256: string }>;
  assert.deepEqual(Object.keys(sums).sort(), ['model.json', 'weights.bin']);
  assert.equal(sums['weights.bin'].bytes, fs.statSync(path.join(dir, 'weights.bin')).size);
  const m = await loadModel(dir);
  assert.deepEqual(m.outputs[0].shape, [null, 3]);
  m.dispose();
});

test('issue 25 case 4: weights.bin overwritten in part, filled with 0.5, or with float16 infinities is refused by name, never called divergence', async (t) => {
  const dir = await saved(t);
  const weights = path.join(dir, 'weights.bin');
  const original = fs.readFileSync(weights);
  const edits: [string, Buffer][] = [
    ['part overwritten', Buffer.concat([Buffer.alloc(8, 7), original.subarray(8)])],
    ['filled with 0.5', Buffer.from(new Float32Array(original.byteLength / 4).fill(0.5).buffer)],
    ['infinities', Buffer.from(new Float32Array(original.byteLength / 4).fill(Infinity).buffer)],
  ];
  for (const [what, bytes] of edits) {
    fs.writeFileSync(weights, bytes);
    await assert.rejects(loadModel(dir), (e: Error) => {
      assert.match(e.message, new RegExp(`^${weights}: weights\\.bin changed since it was saved \\(sha256 .* as recorded in ${path.join(dir, MODEL_CHECKSUMS)}\\)`), what);
      assert.doesNotMatch(e.message, /diverge/);
      return true;
    });
  }
});

test('issue 25 item 7: a truncated weights.bin and an edited model.json name the file and what was expected', async (t) => {
  const dir = await saved(t);
  const weights = path.join(dir, 'weights.bin');
  const modelJson = path.join(dir, 'model.json');
  const json = fs.readFileSync(modelJson, 'utf8');
  const full = fs.readFileSync(weights);
  // With checksums: any change is named.
  fs.writeFileSync(weights, full.subarray(0, 20));
  await assert.rejects(loadModel(dir), new RegExp(`${weights}: weights\\.bin changed since it was saved \\(20 bytes, expected ${full.byteLength}`));
  fs.writeFileSync(weights, full);
  fs.writeFileSync(modelJson, json.replace('"units":3', '"units":2'));
  await assert.rejects(loadModel(dir), new RegExp(`${modelJson}: model\\.json changed since it was saved`));
  // A folder saved before checksums existed: the sizes its manifest implies, and model.json named on a mismatch.
  fs.rmSync(path.join(dir, MODEL_CHECKSUMS));
  fs.writeFileSync(modelJson, json);
  fs.writeFileSync(weights, full.subarray(0, 20));
  await assert.rejects(loadModel(dir), new RegExp(`${weights}: 20 bytes, expected ${full.byteLength} for the 2 weights ${modelJson} lists`));
  fs.writeFileSync(weights, full);
  const edited = JSON.parse(json) as { modelTopology: unknown; weightsManifest: { weights: { shape: number[] }[] }[] };
  fs.writeFileSync(modelJson, JSON.stringify({ ...edited, modelTopology: JSON.parse(JSON.stringify(edited.modelTopology).replace('"units":3', '"units":2')) }));
  await assert.rejects(loadModel(dir), new RegExp(`${modelJson}: cannot load the model \\(.*\\); expected model\\.json and the weights it lists`));
});

test('a float16 folder (publish) is checked by the sizes its quantized manifest implies', async (t) => {
  const dir = path.join(tmpDir(t), 'model');
  const big = tf.sequential({ layers: [tf.layers.dense({ inputShape: [64], units: 32 })] }); // 2048 values: stored as float16
  await saveModel(big, dir, {}, { float16: true });
  big.dispose();
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as { weightsManifest: { weights: { quantization?: { dtype: string } }[] }[] };
  assert.equal(manifest.weightsManifest[0].weights[0].quantization?.dtype, 'float16');
  fs.rmSync(path.join(dir, MODEL_CHECKSUMS));
  const m = await loadModel(dir);
  m.dispose();
  fs.writeFileSync(path.join(dir, 'weights.bin'), fs.readFileSync(path.join(dir, 'weights.bin')).subarray(0, 100));
  await assert.rejects(loadModel(dir), /weights\.bin: 100 bytes, expected 4224 /);
});
