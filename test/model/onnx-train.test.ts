/**
 * An imported ONNX network through the whole workbench from the command line: torchvision's
 * mobilenet_v2 (random init, BatchNorm statistics calibrated on random input so that inference mode
 * means what it means for a pretrained net; exported by PyTorch at 32 px) as model.onnx.file of the
 * smoke profile, fine-tuned end to end (one whole-network phase, BatchNorm frozen as the Keras guide
 * does) on a small learnable CIFAR-format set (each class a colour), exported back to ONNX (checked
 * in ORT by the export command) and asked to predict.
 * Skipped, saying so, without PyTorch (apt-get install python3-torch python3-torchvision).
 */
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { projectRoot } from '../../src/config';
import { Random } from '../../src/random';

const PYTHON = process.env.TLWB_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
const noTorch = probe.status === 0 ? false : `needs PyTorch: ${PYTHON} cannot import torch/torchvision (Debian: apt-get install python3-torch python3-torchvision)`;
const cli = path.join(projectRoot, 'dist/src/cli.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-onnx-train-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const CLASSES = ['red', 'green', 'blue', 'yellow', 'cyan', 'magenta', 'white', 'black', 'orange', 'purple'];
const COLOURS = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [220, 220, 30], [30, 210, 210], [210, 30, 210], [230, 230, 230], [20, 20, 20], [240, 140, 20], [120, 40, 160]];

/** 32x32 CIFAR-10 binary records: class colour plus uniform noise of +-40 per pixel and channel. */
function records(count: number, rng: Random): Buffer {
  const buf = Buffer.alloc(count * 3073);
  for (let r = 0; r < count; r++) {
    const label = r % 10;
    buf[r * 3073] = label;
    for (let plane = 0; plane < 3; plane++) {
      for (let p = 0; p < 1024; p++) buf[r * 3073 + 1 + plane * 1024 + p] = Math.max(0, Math.min(255, COLOURS[label][plane] + rng.int(81) - 40));
    }
  }
  return buf;
}

function writeColourSet(root: string): void {
  fs.mkdirSync(root, { recursive: true });
  const rng = new Random(3);
  for (let i = 1; i <= 5; i++) fs.writeFileSync(path.join(root, `data_batch_${i}.bin`), records(40, rng));
  fs.writeFileSync(path.join(root, 'test_batch.bin'), records(50, rng));
  fs.writeFileSync(path.join(root, 'batches.meta.txt'), `${CLASSES.join('\n')}\n\n`);
}

function png(file: string, rgb: number[]): void {
  const img = new PNG({ width: 40, height: 40 });
  for (let i = 0; i < 40 * 40; i++) img.data.set([...rgb, 255], i * 4);
  fs.writeFileSync(file, PNG.sync.write(img));
}

test('train --profile smoke --set model.onnx.file=<mobilenet_v2.onnx>: a whole-network phase learns, exports to ONNX and predicts', { skip: noTorch, timeout: 600_000 }, () => {
  const exported = spawnSync(PYTHON, [path.join(projectRoot, 'scripts/torchvision-onnx.py'), '--out', dir, '--size', '32', '--calibrate-bn', '4', 'mobilenet_v2'], { encoding: 'utf8' });
  assert.equal(exported.status, 0, exported.stderr.slice(-2000));
  const onnx = path.join(dir, 'mobilenet_v2.onnx');
  const cifar = path.join(dir, 'colours');
  writeColourSet(cifar);
  const env = { ...process.env, TLWB_DATA_DIR: path.join(dir, 'data'), CIFAR10_DIR: cifar, TLWB_SET: '', TLWB_PROFILE: '', TLWB_RUN_DIR: '' };
  const runDir = path.join(dir, 'run');
  const sets = [
    `model.onnx.file=${onnx}`,
    `data.dir=${cifar}`,
    'data.trainLimit=200',
    'data.valFraction=0.25',
    'model.inputSize=32',
    'train.batchSize=25',
    'train.phases=[{"name":"all","trainable":"all","optimizer":"adam","lr":0.001,"epochs":3,"batchNorm":"frozen"}]',
  ];
  const r = spawnSync(process.execPath, [cli, 'train', '--profile', 'smoke', ...sets.flatMap((s) => ['--set', s]), '--run-dir', runDir, '--json', '--progress', 'none'], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'train-summary.json'), 'utf8'));
  // The whole network trained: mobilenet_v2's 2,223,872 backbone parameters (no 1000-way classifier)
  // less the 34,112 BatchNorm scales and offsets (frozen), plus the 10-way head.
  assert.equal(summary.trainableByPhase.all, 2_223_872 - 34_112 + 1280 * 10 + 10, JSON.stringify(summary.trainableByPhase));
  assert.ok(out.finalValAccuracy > 0.3, `val accuracy ${out.finalValAccuracy} (chance 0.10)`);

  const ex = spawnSync(process.execPath, [cli, 'export', '--run', runDir, '--json'], { env, encoding: 'utf8' });
  assert.equal(ex.status, 0, ex.stderr.slice(-3000));
  const exportedRun = JSON.parse(ex.stdout.trim().split('\n').pop()!);
  assert.ok(exportedRun.checkedDifference <= 1e-4, `ONNX export against TF.js: ${exportedRun.checkedDifference}`);
  assert.equal(exportedRun.metadata.arch, 'onnx:mobilenet_v2');
  assert.equal(exportedRun.metadata.preprocess, 'torch');
  assert.deepEqual(exportedRun.output.shape, [null, 10]);

  const red = path.join(dir, 'red.png');
  const blue = path.join(dir, 'blue.png');
  png(red, COLOURS[0]);
  png(blue, COLOURS[2]);
  const p = spawnSync(process.execPath, [cli, 'predict', '--run', runDir, '--json', red, blue], { env, encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr.slice(-3000));
  const lines = p.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  for (const line of lines) assert.ok(JSON.stringify(line).match(/red|green|blue|yellow|cyan|magenta|white|black|orange|purple/), JSON.stringify(line));
  process.stderr.write(`onnx mobilenet_v2 fine-tune: val accuracy ${out.finalValAccuracy}; predict: ${p.stdout.trim()}\n`);
});
