/**
 * model.initFrom: training starts from a model this workbench trained before (Keras'
 * model.load_weights then fit again, fastai's learn.load) instead of the fresh head on the ImageNet
 * backbone. The model is built from the profile as always, then every weight is set from the trained
 * model's, matched by name: buildModel names every layer (presets' model.json files, 'resize', 'dense',
 * the Keras ResNets' names), so a weight is called the same in every process, and a saved model.json
 * lists its weights by those names. Only when names repeat does the order decide.
 *
 * The trained model is read as weights only (model.json's manifest + weights.bin, through tf.io, which
 * also widens a published folder's float16 weights): its topology is not rebuilt.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { paths } from '../config';
import { verifyModelFolder } from './io';
import { stableWeights, type TrainableModel } from './split';
import { readModelArtifacts } from './tfjs-backbone';

/** What initFromTrained loaded, for a log line. */
export interface InitFromReport {
  /** model.initFrom as given. */
  spec: string;
  /** The folder holding model.json that was read. */
  modelDir: string;
  /** How many weights were set. */
  weights: number;
  /** How the trained weights were matched to the model's: by name, or by order where names repeat. */
  matchedBy: 'name' | 'order';
  /** Weights the trained model stored as float16 (widened to float32 when read). */
  float16: number;
}

/**
 * The folder holding the trained model.json that model.initFrom names: a folder with model.json, a
 * run or published folder (its model/), or a model.json file. A relative path is taken from the
 * project folder (where package.json is), whatever the working directory: notebooks run in notebooks/.
 */
export function resolveInitFrom(spec: string, root = paths().root): string {
  const given = path.isAbsolute(spec) ? spec : path.resolve(root, spec);
  const where = path.isAbsolute(spec) ? given : `${given} (relative paths start at the project folder ${root})`;
  if (!fs.existsSync(given)) throw new Error(`model.initFrom '${spec}': no such folder ${where}`);
  if (fs.statSync(given).isFile()) {
    if (path.basename(given) === 'model.json') return path.dirname(given);
    throw new Error(`model.initFrom '${spec}': ${given} is a file; expected a folder holding model.json, or a run or published folder with model/model.json`);
  }
  if (fs.existsSync(path.join(given, 'model.json'))) return given;
  if (fs.existsSync(path.join(given, 'model', 'model.json'))) return path.join(given, 'model');
  const unfinishedRun = fs.existsSync(path.join(given, 'profile.json'));
  throw new Error(
    `model.initFrom '${spec}': no model.json in ${where}, nor in its model/ ` +
      (unfinishedRun ? '(a run folder whose training has not finished: its model/ is written at the end)' : '(expected a run folder, a published folder or a folder written by saveModel)'),
  );
}

/** model.arch of the run (or published folder) a model/ folder belongs to, when its profile.json says. */
function trainedArch(modelDir: string): string | undefined {
  try {
    const profile = JSON.parse(fs.readFileSync(path.join(path.dirname(modelDir), 'profile.json'), 'utf8')) as { model?: { arch?: unknown } };
    return typeof profile.model?.arch === 'string' ? profile.model.arch : undefined;
  } catch {
    return undefined;
  }
}

const shapeText = (shape: readonly (number | null)[]) => `[${shape.join(',')}]`;

/** The trained weights in the file's order, each with its manifest name and value (the caller disposes). */
async function readTrainedWeights(modelDir: string): Promise<{ name: string; tensor: tf.Tensor; float16: boolean }[]> {
  verifyModelFolder(modelDir);
  const artifacts = await readModelArtifacts(modelDir);
  const specs = artifacts.weightSpecs ?? [];
  // tf.io keys its result by name: a prefix keeps repeated names apart and gives back the file's order.
  const keyed = specs.map((s, i) => ({ ...s, name: `${i}:${s.name}` }));
  const decoded = tf.io.decodeWeights(artifacts.weightData ?? new ArrayBuffer(0), keyed);
  return specs.map((s, i) => ({ name: s.name, tensor: decoded[`${i}:${s.name}`], float16: s.quantization?.dtype === 'float16' }));
}

/**
 * Sets every weight of `built` from the trained model in `spec` (model.initFrom; see resolveInitFrom),
 * matched by name. Refused, naming the file, when a weight is missing on either side or has another
 * shape; a head trained for another number of classes says so. `built.weightsSource`, when present,
 * then names the trained folder.
 */
export async function initFromTrained(built: TrainableModel & { weightsSource?: string }, spec: string, opts: { root?: string } = {}): Promise<InitFromReport> {
  const modelDir = resolveInitFrom(spec, opts.root);
  const file = path.join(modelDir, 'model.json');
  let trained: Awaited<ReturnType<typeof readTrainedWeights>>;
  try {
    trained = await readTrainedWeights(modelDir);
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(`model.initFrom '${spec}': ${msg.includes(modelDir) ? msg : `${file}: ${msg}`}`, { cause: e });
  }
  try {
    const targets = stableWeights(built.model);
    const nameOf = (w: tf.LayerVariable) => w.originalName ?? w.name;
    const unique = (names: string[]) => new Set(names).size === names.length;
    const byName = unique(targets.map(nameOf)) && unique(trained.map((t) => t.name));
    const pairs: { target: tf.LayerVariable | undefined; source: (typeof trained)[number] | undefined; name: string }[] = [];
    if (byName) {
      const sources = new Map(trained.map((t) => [t.name, t]));
      for (const w of targets) pairs.push({ target: w, source: sources.get(nameOf(w)), name: nameOf(w) });
      const wanted = new Set(targets.map(nameOf));
      for (const t of trained) if (!wanted.has(t.name)) pairs.push({ target: undefined, source: t, name: t.name });
    } else {
      for (let i = 0; i < Math.max(targets.length, trained.length); i++) {
        pairs.push({ target: targets[i], source: trained[i], name: targets[i] ? nameOf(targets[i]) : trained[i].name });
      }
    }

    // Another backbone altogether: not one of the base's weights is named in the file (the heads share 'dense').
    const inFile = new Set(trained.map((t) => t.name));
    const baseWeights = stableWeights(built.base);
    if (byName && baseWeights.length && !baseWeights.some((w) => inFile.has(nameOf(w)))) {
      const madeWith = trainedArch(modelDir);
      const theirs = trained.find((t) => !targets.some((w) => nameOf(w) === t.name)) ?? trained[0];
      throw new Error(
        `model.initFrom '${spec}': ${file} shares no backbone weight name with the profile's model (${built.arch}: '${nameOf(baseWeights[0])}', ...; the file: '${theirs.name}', ...): ` +
          `it was built from another backbone${madeWith ? ` (the profile.json beside it says model.arch '${madeWith}')` : ''}; give model.arch as the trained model was built`,
      );
    }
    // Then the classifier: another class count is the likely mistake, and deserves its own sentence.
    const numClasses = built.model.outputs[0].shape[built.model.outputs[0].shape.length - 1];
    const headWeights = new Set(built.head.weights);
    for (const { target, source, name } of pairs) {
      if (!target || !source || !headWeights.has(target)) continue;
      const want = target.shape;
      const got = source.tensor.shape;
      const last = want.length - 1;
      if (want.length === got.length && want[last] === numClasses && got[last] !== numClasses && want.slice(0, last).every((d, i) => d === got[i])) {
        throw new Error(
          `model.initFrom '${spec}': ${file}: trained for ${got[last]} classes, the data has ${numClasses} ` +
            `(its weight '${name}' is ${shapeText(got)}, this model's ${shapeText(want)}); start from a model trained on the same classes`,
        );
      }
    }
    const problems: string[] = [];
    for (const { target, source, name } of pairs) {
      if (!source) problems.push(`no weight '${name}' (this model's is ${shapeText(target!.shape)})`);
      else if (!target) problems.push(`weight '${name}' ${shapeText(source.tensor.shape)} is not in this model`);
      else if (shapeText(target.shape) !== shapeText(source.tensor.shape)) problems.push(`weight '${name}' is ${shapeText(source.tensor.shape)} there, ${shapeText(target.shape)} in this model`);
      else if (target.dtype !== source.tensor.dtype) problems.push(`weight '${name}' is ${source.tensor.dtype} there, ${target.dtype} in this model`);
    }
    if (problems.length) {
      const shown = problems.slice(0, 6).join('; ') + (problems.length > 6 ? `; and ${problems.length - 6} more` : '');
      throw new Error(
        `model.initFrom '${spec}': ${file} does not fit the profile's model (${built.arch}, ${targets.length} weights; the file has ${trained.length}, matched by ${byName ? 'name' : 'order'}): ${shown}. ` +
          'Give model.arch, model.head and model.cutLayer as the trained model was built',
      );
    }
    for (const { target, source } of pairs) target!.write(source!.tensor);
    if ('weightsSource' in built) built.weightsSource = `${modelDir} (model.initFrom)`;
    return { spec, modelDir, weights: targets.length, matchedBy: byName ? 'name' : 'order', float16: trained.filter((t) => t.float16).length };
  } finally {
    // write() shares the tensor's data with the variable (reference-counted): disposing the read copy is safe.
    tf.dispose(trained.map((t) => t.tensor));
  }
}

/** One line for a log: which trained weights the model starts from. */
export function describeInitFrom(r: InitFromReport): string {
  return (
    `model.initFrom: ${r.weights} weights from ${r.modelDir} (matched by ${r.matchedBy}` +
    `${r.float16 ? `; ${r.float16} stored as float16, widened to float32` : ''})`
  );
}
