/**
 * `node dist/bench/onnx-import.js [--size 128] [--batch 16] [--steps 2] [--archs resnet18,mobilenet_v2,...] [--json]`
 *
 * What an imported ONNX backbone costs: torchvision models (random init: speed only) exported by
 * PyTorch at --size (scripts/torchvision-onnx.py; needs /usr/bin/python3 with torch), imported, and
 *  - one whole-network Adam training step (BatchNorm in training mode, cross-entropy on the 1000-way
 *    logits) on TensorFlow.js wasm (one thread unless TLWB_WASM_THREADS), median of --steps after a warm-up;
 *  - frozen-feature throughput: the ONNX file itself in ONNX Runtime (all cores), images per second.
 * Short on purpose: the machine may be shared, so say so next to any number.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defineCommand, parseCommand } from '../src/cli-options';
import { initBackend, tf } from '../src/backend';
import { machineInfo } from '../src/backend/machine';
import { createSession } from '../src/model/engine';
import { countParams } from '../src/model/freeze';
import { importOnnx } from '../src/model/onnx/import';

const projectRoot = path.resolve(__dirname, '..', '..');
const ARCHS = ['resnet18', 'mobilenet_v2', 'mobilenet_v3_small', 'efficientnet_b0', 'convnext_tiny'];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const ONNX_IMPORT_BENCH = defineCommand({
  name: 'onnx-import bench',
  invocation: 'node dist/bench/onnx-import.js',
  usage: ['node dist/bench/onnx-import.js [--size 128] [--batch 16] [--steps 2] [--archs resnet18,mobilenet_v2,...] [--json]'],
  about: '  What an imported ONNX backbone costs: one Adam training step on TF.js wasm and ONNX Runtime inference, per torchvision model.',
  options: {
    size: { type: 'string', value: 'PX', default: '128', help: 'the side the models are exported at' },
    batch: { type: 'string', value: 'N', default: '16', help: 'images per step' },
    steps: { type: 'string', value: 'N', default: '2', help: 'timed training steps after a warm-up (their median is reported)' },
    archs: { type: 'string', value: 'LIST', default: ARCHS.join(','), help: 'comma-separated torchvision models' },
    json: { type: 'boolean', default: false, help: 'print the results as JSON' },
  },
});

async function main(): Promise<void> {
  const parsed = parseCommand(ONNX_IMPORT_BENCH, process.argv.slice(2));
  if (!parsed) return;
  const { values } = parsed;
  const size = Number(values.size);
  const batch = Number(values.batch);
  const steps = Number(values.steps);
  const archs = values.archs!.split(',');
  const backend = await initBackend({ force: 'wasm', quiet: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-bench-onnx-'));
  try {
    const exported = spawnSync('/usr/bin/python3', [path.join(projectRoot, 'scripts/torchvision-onnx.py'), '--out', dir, '--size', String(size), '--opset', '17', ...archs], { encoding: 'utf8' });
    if (exported.status !== 0) throw new Error(`torchvision export failed (needs /usr/bin/python3 with torch and torchvision): ${exported.stderr.slice(-500)}`);
    const rows: Record<string, unknown>[] = [];
    for (const arch of archs) {
      const file = path.join(dir, `${arch}.onnx`);
      const bytes = fs.readFileSync(file);
      const t0 = Date.now();
      const { model } = importOnnx(bytes, { origin: file });
      const importSeconds = (Date.now() - t0) / 1000;
      const optimizer = tf.train.adam(1e-4);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const x = tf.randomUniform([batch, size, size, 3], -2, 2, 'float32', 1);
      const y = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 1000), 'int32'), 1000);
      const times: number[] = [];
      for (let s = 0; s <= steps; s++) {
        const start = Date.now();
        const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, true, vars)!;
        loss.dataSync();
        loss.dispose();
        if (s > 0) times.push((Date.now() - start) / 1000);
      }
      tf.dispose([x, y]);
      optimizer.dispose();
      const params = countParams(model).trainableParams;
      model.dispose();

      const session = await createSession(bytes);
      const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
      // The export's batch is fixed at 1: run images one by one, as a frozen-feature pass over a file does.
      const input = new ort.Tensor('float32', new Float32Array(3 * size * size).map((_, i) => Math.sin(i)), [1, 3, size, size]);
      await session.run({ [session.inputNames[0]]: input });
      const n = 16;
      const o0 = Date.now();
      for (let i = 0; i < n; i++) await session.run({ [session.inputNames[0]]: input });
      const ortImagesPerSecond = n / ((Date.now() - o0) / 1000);
      await session.release();
      const row = { arch, size, batch, trainableParams: params, importSeconds, stepSeconds: median(times), trainImagesPerSecond: batch / median(times), ortImagesPerSecond };
      rows.push(row);
      if (!values.json) process.stdout.write(`${arch.padEnd(20)} ${String(params).padStart(10)} params  import ${importSeconds.toFixed(1)} s  step ${median(times).toFixed(2)} s (${(batch / median(times)).toFixed(1)} img/s)  ORT ${ortImagesPerSecond.toFixed(0)} img/s\n`);
    }
    const out = { backend: backend.tfName, threads: backend.threads, machine: machineInfo(), rows };
    if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e) => {
    // an unknown option: its did-you-mean, not a stack
    process.stderr.write(`${(e as Error).name === 'CliUsageError' ? (e as Error).message : ((e as Error).stack ?? e)}\n`);
    process.exit((e as Error).name === 'CliUsageError' ? 2 : 1);
  });
}
