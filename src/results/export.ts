/**
 * A trained run as an ONNX file (the standard exchange format): `<run>/model.onnx` by default.
 * The file takes raw RGB 0..255 (float32, NHWC, the run's stored image size) - the backbone's
 * preprocessing is baked in - and gives the class probabilities. Its metadata carries the contract:
 * class names, input size and layout, the preprocessing. Before it is kept, the file runs in ONNX
 * Runtime against the TF.js model on a few random images.
 *   npm run -s cli -- export --run <runDir> [--format onnx] [--out file] [--json]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineCommand, parseCommand } from '../cli-options';
import { tf } from '../backend';
import { readRunProfile } from '../session';
import { assertOutTarget, writeFileAtomic } from '../fsutil';
import { presetForModel } from '../model/presets';
import { loadModel, tfjsWeightsSha256 } from '../model/io';
import { exportOnnx, OPSET } from '../model/onnx';
import { createSession, loadOrt, ortLoadError, runSession } from '../model/engine';
import { preprocess } from '../preprocess';
import { Random } from '../random';
import { runClasses, runPreprocessMode } from './predict';

export interface ExportResult {
  file: string;
  format: 'onnx';
  opset: number;
  bytes: number;
  nodes: number;
  input: { name: string; shape: (number | null)[] };
  output: { name: string; shape: (number | null)[] };
  metadata: Record<string, string>;
  /** Largest |ORT - TF.js| over the check images, relative to the largest probability; null when ORT is absent. */
  checkedDifference: number | null;
}

export async function exportRun(runDir: string, opts: { out?: string; format?: string; float16?: boolean } = {}): Promise<ExportResult> {
  const format = opts.format ?? 'onnx';
  if (format !== 'onnx') throw new Error(`--format ${format}: only onnx is supported`);
  const dir = path.resolve(runDir);
  const profile = readRunProfile(dir);
  // Checked before the long export: never over a run's own files, nor onto a folder.
  const file = path.resolve(opts.out ?? path.join(dir, 'model.onnx'));
  assertOutTarget(file, { flag: opts.out ? '--out' : 'export to', kind: 'file', allowedInRun: ['model.onnx'], ownRun: dir });
  const modelDir = path.join(dir, 'model');
  if (!fs.existsSync(path.join(modelDir, 'model.json'))) throw new Error(`${modelDir}: no trained model (model.json) in this run; train it first`);
  const model = await loadModel(modelDir);
  try {
    const classes = runClasses(dir, profile);
    const mode = runPreprocessMode(dir, profile);
    const shape = model.inputs[0].shape;
    const metadata: Record<string, string> = {
      classes: JSON.stringify(classes),
      input: 'float32 RGB 0..255, NHWC [batch, height, width, 3]',
      input_height: String(shape[1]),
      input_width: String(shape[2]),
      preprocess: mode,
      preprocess_baked: 'true',
      output: 'class probabilities [batch, classes]',
      arch: profile.model.onnx ? presetForModel(profile.model).arch : profile.model.arch,
      head: profile.model.head,
      backbone_input_size: String(profile.model.inputSize ?? ''),
      run: path.basename(dir),
      producer: 'tl-workbench',
      weights: opts.float16 ? 'float16' : 'float32',
      tfjs_weights_sha256: tfjsWeightsSha256(modelDir),
    };
    const exported = exportOnnx(model, { preprocess: mode, metadata, inputName: 'image', outputName: 'probabilities', name: model.name, float16Weights: opts.float16 });
    const checkedDifference = await checkAgainstTfjs(model, exported.bytes, mode);
    writeFileAtomic(file, exported.bytes);
    return {
      file,
      format: 'onnx',
      opset: OPSET,
      bytes: exported.bytes.byteLength,
      nodes: exported.nodeCount,
      input: exported.input,
      output: exported.output,
      metadata,
      checkedDifference,
    };
  } finally {
    model.dispose();
  }
}

/** Runs the file in ORT and the model in TF.js on 4 random images; fails when they disagree. */
async function checkAgainstTfjs(model: tf.LayersModel, bytes: Uint8Array, mode: ReturnType<typeof runPreprocessMode>): Promise<number | null> {
  if (!loadOrt()) return null;
  const [, h, w, c] = model.inputs[0].shape as number[];
  const rng = new Random(14);
  const raw = tf.tensor4d(Float32Array.from({ length: 4 * h * w * c }, () => Math.floor(rng.next() * 256)), [4, h, w, c]);
  const session = await createSession(bytes);
  try {
    const got = await runSession(session, raw);
    const want = tf.tidy(() => model.predict(preprocess(raw, mode)) as tf.Tensor);
    const [diff, scale] = tf.tidy(() => [tf.max(tf.abs(tf.sub(got, want))).dataSync()[0], tf.max(tf.abs(want)).dataSync()[0]]);
    tf.dispose([got, want]);
    const rel = diff / Math.max(scale, 1e-12);
    if (!(rel <= 1e-4)) throw new Error(`ONNX export: the file's outputs differ from the TF.js model's by ${rel.toExponential(2)} of the largest value (more than 1e-4)`);
    return rel;
  } finally {
    raw.dispose();
    await session.release();
  }
}

export const EXPORT_COMMAND = defineCommand({
  name: 'export',
  usage: ['npm run -s cli -- export [--run <runDir>] [--format onnx] [--out file] [--json]'],
  about:
    `  Writes the run's trained model as an ONNX file (opset ${OPSET}), <runDir>/model.onnx by default.\n` +
    "  Input 'image': float32 RGB 0..255, NHWC [batch, H, W, 3] at the run's image size (preprocessing\n" +
    "  baked in); output 'probabilities': [batch, classes]. The metadata names the classes, the input\n" +
    '  size and the preprocessing. The file is checked in ONNX Runtime against the TF.js model.',
  options: {
    run: { type: 'string', value: '<runDir>', help: 'the trained run folder (default: the newest run with a model)' },
    format: { type: 'string', value: 'onnx', default: 'onnx', help: 'onnx (the one format written)' },
    out: { type: 'string', value: 'FILE', help: 'the file to write (default <runDir>/model.onnx)' },
    json: { type: 'boolean', help: 'print the result as JSON' },
    backend: { type: 'string', value: 'NAME', help: 'TensorFlow.js backend that loads the model: cpu, wasm, node or node-gpu (default: the fastest that loads)' },
  },
});

export async function exportCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(EXPORT_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  const { chooseRun } = await import('./command');
  const runDir = chooseRun(values.run, (d) => fs.existsSync(path.join(d, 'model', 'model.json')), 'a trained model (model/model.json)');
  const { initBackend } = await import('../backend');
  await initBackend({ force: values.backend, quiet: true });
  const r = await exportRun(runDir, { out: values.out, format: values.format });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const check = r.checkedDifference === null ? `not checked (ONNX Runtime: ${ortLoadError()})` : `ORT = TF.js within ${r.checkedDifference.toExponential(1)}`;
  process.stderr.write(`ONNX opset ${r.opset}, ${r.nodes} nodes, ${(r.bytes / 1e6).toFixed(1)} MB; input ${r.input.name} [${r.input.shape.map((d) => d ?? 'batch')}], output ${r.output.name} [${r.output.shape.map((d) => d ?? 'batch')}]; ${check}\n`);
  process.stdout.write(`${r.file}\n`);
}
