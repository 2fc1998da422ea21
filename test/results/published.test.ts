/**
 * The models published under docs/results/ (by `publish`) work on a fresh clone: each folder is
 * small, says where it came from, and `predict --run <folder>` answers for image files in ONNX
 * Runtime and in TF.js alike. With the shared CIFAR-10 test batch present, each is also scored on
 * its first 500 test images, against the accuracy its run recorded on all 10,000.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { projectRoot } from '../../src/config';
import { PUBLISHED_FILE } from '../../src/results/publish';

const docs = path.join(projectRoot, 'docs', 'results');
const published = fs.existsSync(docs)
  ? fs.readdirSync(docs).filter((d) => fs.existsSync(path.join(docs, d, PUBLISHED_FILE))).map((d) => path.join(docs, d))
  : [];
const cifar = process.env.CIFAR10_DIR ?? path.resolve(projectRoot, '../shared/data/cifar-10-batches-bin');
const testBatch = path.join(cifar, 'test_batch.bin');
const cli = path.join(projectRoot, 'dist/src/cli.js');
const COUNT = 500;

let dir = '';
const images: string[] = [];
const labels: string[] = [];

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-published-'));
  if (!fs.existsSync(testBatch)) return;
  const names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
  const records = fs.readFileSync(testBatch);
  for (let k = 0; k < COUNT; k++) {
    const rec = records.subarray(k * 3073, (k + 1) * 3073);
    const png = new PNG({ width: 32, height: 32 });
    for (let p = 0; p < 1024; p++) png.data.set([rec[1 + p], rec[1025 + p], rec[2049 + p], 255], p * 4);
    const file = path.join(dir, `test-${k}.png`);
    fs.writeFileSync(file, PNG.sync.write(png));
    images.push(file);
    labels.push(names[rec[0]]);
  }
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function predict(run: string, files: string[], engine: string) {
  const r = spawnSync(process.execPath, [cli, 'predict', '--run', run, '--json', '--top', '1', ...files], {
    env: { ...process.env, TLWB_INFERENCE: engine, TLWB_SET: '', TLWB_PROFILE: '' },
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, `predict --run ${run} (${engine}) failed: ${r.stderr}`);
  return { stderr: r.stderr, rows: r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; top: { class: string; probability: number }[] }) };
}

test('docs/results holds at least one published model', () => {
  assert.ok(published.length >= 1, `no folder with ${PUBLISHED_FILE} under ${docs}`);
});

for (const run of published) {
  const name = path.relative(projectRoot, run);
  test(`${name}: small, complete, and its ONNX file made from its TF.js weights`, () => {
    const files = ['profile.json', 'train-summary.json', 'model/model.json', 'model/weights.bin', 'model.onnx', 'report.html', 'evaluation.json'];
    for (const f of files) assert.ok(fs.existsSync(path.join(run, f)), `${name}/${f}`);
    const bytes = fs.readdirSync(run, { recursive: true }).reduce((s: number, f) => s + fs.statSync(path.join(run, String(f))).size, 0);
    assert.ok(bytes < 10e6, `${name}: ${bytes} bytes (under 10 MB)`);
    const info = JSON.parse(fs.readFileSync(path.join(run, PUBLISHED_FILE), 'utf8')) as { from: string; check: { sameTop1: number; images: number } };
    assert.ok(info.check.sameTop1 >= info.check.images - 2, `${name}: the published weights agreed with the run on ${info.check.sameTop1} of ${info.check.images}`);
  });

  test(`${name}: predict works from a clone, in ONNX Runtime and TF.js, and scores as its run did`, { skip: fs.existsSync(testBatch) ? false : `no CIFAR-10 test batch at ${testBatch}`, timeout: 900_000 }, () => {
    const ort = predict(run, images, 'onnx');
    assert.match(ort.stderr, /inference: onnxruntime.*model\.onnx/, 'the published ONNX file is used (its recorded sha256 matches the TF.js weights)');
    const tfjs = predict(run, images.slice(0, 50), 'tfjs');
    for (let i = 0; i < 50; i++) assert.equal(tfjs.rows[i].top[0].class, ort.rows[i].top[0].class, `${images[i]}: ORT and TF.js disagree`);
    const correct = ort.rows.filter((r, i) => r.top[0].class === labels[i]).length;
    const evaluation = JSON.parse(fs.readFileSync(path.join(run, 'evaluation.json'), 'utf8')) as { accuracy: number };
    // 500 images: one standard error is about 1.4 points at 90%; 4 points below the recorded score fails.
    assert.ok(correct / COUNT >= evaluation.accuracy - 0.04, `${name}: ${correct} of ${COUNT} right (${(100 * correct / COUNT).toFixed(1)}%) against ${(100 * evaluation.accuracy).toFixed(2)}% recorded`);
  });
}
