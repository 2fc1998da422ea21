/**
 * A trained run as a small folder anyone can predict with, without training (fastai's export.pkl,
 * Keras' saved model): the profile, the class names and preprocessing (train-summary.json and the
 * model's metadata), the TF.js model, model.onnx, the evaluation and the report. By default the
 * large weights are stored as float16 (half the size, loaded back as float32); the ONNX file is made
 * from those same rounded weights, so both formats give the same numbers. The published folder is a
 * run folder for `predict --run` and `report`; nothing else of the run (checkpoints, caches, lock) goes in.
 *   npm run -s cli -- publish --run <runDir> --out <dir> [--float32] [--evaluate] [--json]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineCommand, parseCommand } from '../cli-options';
import { tf } from '../backend';
import { readRunProfile, writeJsonAtomic } from '../session';
import { assertOutTarget, checksumsOf, readJsonObjectIfExists, replaceFolderAtomic } from '../fsutil';
import { loadModel, readModelMetadata, saveModel } from '../model/io';
import { preprocess } from '../preprocess';
import { Random } from '../random';
import { describeDivergence, readDivergence } from './divergence';
import { exportRun } from './export';
import { runPreprocessMode } from './predict';

/** Files of a run copied as they are when present (profile.json and train-summary.json must be). */
const COPIED = ['profile.json', 'train-summary.json', 'evaluation.json', 'history.csv', 'report.html'];
const REQUIRED = ['profile.json', 'train-summary.json'];
/** What marks a folder as written by publish (and so replaceable by the next publish). */
export const PUBLISHED_FILE = 'published.json';

export interface PublishOptions {
  /** Store the large weights as float16 (default true). */
  float16?: boolean;
  /** Score the published model on the run's test set and record it (needs the data). */
  evaluate?: boolean;
  /** Images the published and the run's models are compared on (default 64). */
  checkImages?: number;
}

export interface PublishResult {
  dir: string;
  from: string;
  weights: 'float16' | 'float32';
  files: { file: string; bytes: number }[];
  bytes: number;
  /** The published model against the run's own on random images: top-1 agreement and largest probability difference. */
  check: { images: number; sameTop1: number; maxProbabilityDifference: number };
  /** The run's recorded test accuracy and the published model's, when --evaluate ran. */
  test?: { images: number; accuracy: number; ttaAccuracy: number | null; runAccuracy: number | null; runTtaAccuracy: number | null };
  onnx: { bytes: number; checkedDifference: number | null };
}

function filesUnder(dir: string, prefix = ''): { file: string; bytes: number }[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name), `${prefix}${e.name}/`) : [{ file: `${prefix}${e.name}`, bytes: fs.statSync(path.join(dir, e.name)).size }]));
}

/** Refuses to overwrite a folder that publish did not write (an empty or absent one is fine). */
function checkTarget(out: string, from: string): void {
  if (path.resolve(out) === path.resolve(from)) throw new Error(`--out ${out}: that is the run folder itself; publish into another folder`);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new Error(`--out ${out}: exists and is not a folder`);
  // Never inside a run (its model/ or checkpoints/ replaced whole would break it); the folder's own contents are judged below.
  assertOutTarget(out, { kind: 'folder', addsFiles: true, replaceable: (d) => fs.existsSync(path.join(d, PUBLISHED_FILE)) });
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0 && !fs.existsSync(path.join(out, PUBLISHED_FILE))) {
    throw new Error(`--out ${out}: a folder with other files (no ${PUBLISHED_FILE}); publish replaces only folders it wrote - choose an empty or new folder`);
  }
}

/** The published files whose sha256 published.json records: predict refuses the folder when one changed. */
const CHECKED = ['model/model.json', 'model/weights.bin', 'model/checksums.json', 'model.onnx'];

/** Runs both models on the same random images: how often the top class agrees, and the largest probability difference. */
async function compareModels(a: tf.LayersModel, b: tf.LayersModel, mode: ReturnType<typeof runPreprocessMode>, count: number): Promise<PublishResult['check']> {
  const [, h, w, c] = a.inputs[0].shape as number[];
  const rng = new Random(16);
  const [same, diff] = tf.tidy(() => {
    // Smooth random images (a coarse grid upscaled) look more like photos than per-pixel noise.
    const coarse = tf.tensor4d(Float32Array.from({ length: count * 4 * 4 * c }, () => Math.floor(rng.next() * 256)), [count, 4, 4, c]);
    const x = preprocess(tf.image.resizeBilinear(coarse, [h, w]), mode);
    const pa = a.predict(x) as tf.Tensor2D;
    const pb = b.predict(x) as tf.Tensor2D;
    return [tf.sum(tf.cast(tf.equal(tf.argMax(pa, 1), tf.argMax(pb, 1)), 'int32')).dataSync()[0], tf.max(tf.abs(tf.sub(pa, pb))).dataSync()[0]];
  });
  return { images: count, sameTop1: same, maxProbabilityDifference: diff };
}

export async function publishRun(runDir: string, outDir: string, opts: PublishOptions = {}): Promise<PublishResult> {
  const from = path.resolve(runDir);
  const out = path.resolve(outDir);
  for (const f of REQUIRED) {
    if (!fs.existsSync(path.join(from, f))) throw new Error(`${path.join(from, f)}: missing; publish takes a finished run (train it to the end first)`);
  }
  if (!fs.existsSync(path.join(from, 'model', 'model.json'))) throw new Error(`${path.join(from, 'model')}: no trained model (model.json) in this run; train it first`);
  const diverged = readDivergence(from);
  if (diverged) throw new Error(`${from}: ${describeDivergence(diverged)}; a diverged model is not worth publishing`);
  checkTarget(out, from);
  const float16 = opts.float16 ?? true;
  const profile = readRunProfile(from);
  const mode = runPreprocessMode(from, profile);
  const weights = float16 ? 'float16' : 'float32';

  let check: PublishResult['check'] | undefined;
  let onnx: Awaited<ReturnType<typeof exportRun>> | undefined;
  let test: PublishResult['test'];
  await replaceFolderAtomic(out, async (tmp) => {
    for (const f of COPIED) if (fs.existsSync(path.join(from, f))) fs.copyFileSync(path.join(from, f), path.join(tmp, f));
    // Where this machine keeps CIFAR-10 (filled in from CIFAR10_DIR) means nothing elsewhere: the reader's CIFAR10_DIR or the download applies.
    if (profile.data.source === 'cifar10' && profile.data.dir) {
      const { dir: _local, ...data } = profile.data;
      writeJsonAtomic(path.join(tmp, 'profile.json'), { ...profile, data });
    }
    const original = await loadModel(path.join(from, 'model'));
    try {
      await saveModel(original, path.join(tmp, 'model'), readModelMetadata(path.join(from, 'model')), { float16 });
      const published = await loadModel(path.join(tmp, 'model'));
      try {
        check = await compareModels(original, published, mode, opts.checkImages ?? 64);
      } finally {
        published.dispose();
      }
    } finally {
      original.dispose();
    }
    onnx = await exportRun(tmp, { float16 });
    if (opts.evaluate) {
      const { evaluateRun } = await import('./run');
      const r = await evaluateRun({ profile, runDir: tmp }, { robustness: false }); // a check of the copy: the clean score says it
      const recorded = readJsonObjectIfExists(path.join(from, 'evaluation.json'));
      test = {
        images: r.evaluation.count,
        accuracy: r.evaluation.accuracy,
        ttaAccuracy: r.evaluation.tta?.accuracy ?? null,
        runAccuracy: typeof recorded?.accuracy === 'number' ? recorded.accuracy : null,
        runTtaAccuracy: typeof (recorded?.tta as { accuracy?: unknown } | null)?.accuracy === 'number' ? (recorded?.tta as { accuracy: number }).accuracy : null,
      };
    }
    writeJsonAtomic(path.join(tmp, PUBLISHED_FILE), {
      from: path.basename(from),
      published: new Date().toISOString(),
      weights,
      check,
      ...(test ? { test } : {}),
      onnx: { checkedDifference: onnx.checkedDifference },
      checksums: checksumsOf(tmp, CHECKED),
      predict: `npm run -s cli -- predict --run ${path.relative(process.cwd(), out) || '.'} <images>`,
    });
  });
  const files = filesUnder(out);
  return {
    dir: out,
    from,
    weights,
    files,
    bytes: files.reduce((s, f) => s + f.bytes, 0),
    check: check!,
    test,
    onnx: { bytes: onnx!.bytes, checkedDifference: onnx!.checkedDifference },
  };
}

export const PUBLISH_COMMAND = defineCommand({
  name: 'publish',
  usage: ['npm run -s cli -- publish --run <runDir> --out <dir> [--float32] [--evaluate] [--json]'],
  about:
    '  Writes a finished run as a small folder others can predict with, without training:\n' +
    '  profile.json, train-summary.json (class names), model/ (TF.js layers: model.json + weights.bin),\n' +
    '  model.onnx (preprocessing and class names inside), evaluation.json, history.csv, report.html and\n' +
    '  published.json (where it came from, how it was checked). Then:\n' +
    '    npm run -s cli -- predict --run <dir> <images>',
  options: {
    run: { type: 'string', value: '<runDir>', help: 'the trained run folder (default: the newest run with a model)' },
    out: { type: 'string', value: '<dir>', help: 'the folder to write (new, empty, or one publish wrote before: it is replaced whole)' },
    float32: {
      type: 'boolean',
      help: 'keep every weight float32 (default: the large weights are stored as float16, half\nthe size; they are widened back to float32 when loaded)',
    },
    evaluate: { type: 'boolean', help: "score the published model on the run's test set and record it (needs the data)" },
    json: { type: 'boolean', help: 'print the result as JSON' },
    backend: { type: 'string', value: 'NAME', help: 'TensorFlow.js backend: cpu, wasm, node or node-gpu (default: the fastest that loads)' },
  },
});

export async function publishCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(PUBLISH_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  if (!values.out) throw new Error('publish: --out <dir> is required (the folder to write)');
  const { chooseRun } = await import('./command');
  const runDir = chooseRun(values.run, (d) => fs.existsSync(path.join(d, 'model', 'model.json')), 'a trained model (model/model.json)');
  const { initBackend } = await import('../backend');
  await initBackend({ force: values.backend, quiet: true });
  const r = await publishRun(runDir, values.out, { float16: !values.float32, evaluate: values.evaluate });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  const lines = [
    `published ${r.from} -> ${r.dir} (${mb(r.bytes)}, weights ${r.weights})`,
    ...r.files.map((f) => `  ${f.file}  ${mb(f.bytes)}`),
    `check: the same top-1 class as the run's model on ${r.check.sameTop1} of ${r.check.images} images, probabilities within ${r.check.maxProbabilityDifference.toExponential(1)}`,
  ];
  if (r.test) {
    const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(2)}%`);
    lines.push(`test: ${pct(r.test.accuracy)} on ${r.test.images} images (TTA ${pct(r.test.ttaAccuracy)}); the run recorded ${pct(r.test.runAccuracy)} (TTA ${pct(r.test.runTtaAccuracy)})`);
  }
  process.stderr.write(`${lines.join('\n')}\n`);
  process.stdout.write(`${r.dir}\n`);
}


