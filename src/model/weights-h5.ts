/**
 * Keras .h5 weights, read and written in TypeScript with h5wasm (no Python conversion step).
 *
 * Layout Keras writes (model.save_weights / keras.applications files):
 *   root attrs: layer_names (split into layer_names0, layer_names1, ... when too large), backend, keras_version
 *   /<layer>/ attr weight_names ["<layer>/kernel:0", ...]; datasets at /<layer>/<weight name>
 * A full-model file (model.save) keeps the same under /model_weights. A nested model is one
 * "layer" whose weight_names list every weight of its sublayers ("conv1_conv/kernel:0", ...).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { checkHdf5File, h5wasm } from './h5';
import { leafLayers } from './freeze';

type H5Group = import('h5wasm').Group;
type H5Dataset = import('h5wasm').Dataset;

/** A tf.LayersModel nested inside another one acts as a single Keras "layer" with many weights. */
function isContainer(layer: tf.layers.Layer): layer is tf.LayersModel {
  return Array.isArray((layer as unknown as { layers?: unknown }).layers);
}

/** Keras' name for a weight: "<layer>/<weight>:0" (tfjs' originalName lacks the ":0"). */
function kerasWeightName(w: tf.LayerVariable): string {
  return `${w.originalName}:0`;
}

function shapeText(shape: readonly (number | null)[]): string {
  return `[${shape.join(', ')}]`;
}

/** Reads a string-list attribute, joining the chunks Keras splits large ones into (name0, name1, ...). */
function readStringList(group: H5Group, name: string): string[] | undefined {
  const attrs = group.attrs;
  const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v == null ? [] : [String(v)]);
  if (name in attrs) return asList(attrs[name].value);
  if (!(`${name}0` in attrs)) return undefined;
  const out: string[] = [];
  for (let i = 0; `${name}${i}` in attrs; i++) out.push(...asList(attrs[`${name}${i}`].value));
  return out;
}

export interface LoadH5Options {
  /** Model layers allowed to be absent from the file (they keep their values), e.g. a new head. */
  allowMissing?: string[];
}

export interface LoadH5Report {
  file: string;
  /** Model layers whose weights came from the file. */
  loaded: string[];
  /** File layers the model does not have (ignored, as Keras' by_name loading does). */
  unused: string[];
  /** Number of values written into the model's variables. */
  values: number;
}

interface Assignment {
  variable: tf.LayerVariable;
  dataset: H5Dataset;
  name: string;
}

/** Pairs a model layer's variables with the file's datasets: by Keras weight name when all match, else in order. */
function pairWeights(file: string, layer: tf.layers.Layer, group: H5Group, weightNames: string[]): Assignment[] {
  const variables = layer.weights;
  if (variables.length !== weightNames.length) {
    throw new Error(
      `${file}: layer '${layer.name}' has ${weightNames.length} weights in the file (${weightNames.join(', ') || 'none'}) ` +
        `but ${variables.length} in the model (${variables.map(kerasWeightName).join(', ')})`,
    );
  }
  const byName = new Map(variables.map((v) => [kerasWeightName(v), v]));
  const allNamed = isContainer(layer) && weightNames.every((n) => byName.has(n));
  return weightNames.map((name, i) => {
    const variable = allNamed ? byName.get(name)! : variables[i];
    const entity = group.get(name);
    if (!entity || (entity as { type?: string }).type !== 'Dataset') {
      throw new Error(`${file}: layer '${layer.name}' lists weight '${name}' but the file has no such dataset`);
    }
    const dataset = entity as H5Dataset;
    const fileShape = (dataset.shape ?? []) as number[];
    const modelShape = variable.shape;
    if (fileShape.length !== modelShape.length || fileShape.some((d, k) => d !== modelShape[k])) {
      throw new Error(
        `${file}: layer '${layer.name}' weight '${name}' has shape ${shapeText(fileShape)} in the file, ` +
          `the model expects ${shapeText(modelShape)}`,
      );
    }
    return { variable, dataset, name };
  });
}

/**
 * Loads Keras .h5 weights into `model` by layer name, checking every shape before changing anything.
 * Fails naming the file and the first model layer that is missing or does not fit.
 */
export async function loadWeightsH5(model: tf.LayersModel, file: string, opts: LoadH5Options = {}): Promise<LoadH5Report> {
  checkHdf5File(file);
  const h5 = await h5wasm();
  const f = new h5.File(file, 'r');
  if (f.file_id < 0n) throw new Error(`${file}: HDF5 could not open it (damaged file?)`);
  try {
    let root: H5Group = f;
    const mw = f.get('model_weights');
    if (mw && (mw as { type?: string }).type === 'Group' && !readStringList(f, 'layer_names')) root = mw as H5Group;
    const fileLayers = readStringList(root, 'layer_names');
    if (!fileLayers) throw new Error(`${file}: no 'layer_names' attribute: not a Keras weights file`);
    const inFile = new Set(fileLayers);
    const allowMissing = new Set(opts.allowMissing ?? []);
    const assignments: Assignment[] = [];
    const loaded: string[] = [];
    for (const layer of model.layers) {
      if (layer.weights.length === 0) continue;
      if (!inFile.has(layer.name)) {
        if (allowMissing.has(layer.name)) continue;
        const shapes = layer.weights.map((w) => shapeText(w.shape)).join(', ');
        throw new Error(`${file}: layer '${layer.name}' (weights ${shapes}) is missing from the file`);
      }
      const group = root.get(layer.name) as H5Group | null;
      if (!group) throw new Error(`${file}: layer '${layer.name}' is listed in layer_names but has no group`);
      const weightNames = readStringList(group, 'weight_names') ?? [];
      assignments.push(...pairWeights(file, layer, group, weightNames));
      loaded.push(layer.name);
    }
    // Everything checked: now read the values and write them into the variables.
    let values = 0;
    for (const a of assignments) {
      const raw = a.dataset.value as ArrayLike<number>;
      const data = raw instanceof Float32Array ? raw : Float32Array.from(raw);
      if (data.length !== (a.variable.shape as number[]).reduce((p, d) => p * d, 1)) {
        throw new Error(`${file}: weight '${a.name}' holds ${data.length} values, expected ${shapeText(a.variable.shape)}`);
      }
      const t = tf.tensor(data, a.variable.shape as number[], 'float32');
      a.variable.write(t);
      t.dispose();
      values += data.length;
    }
    const modelNames = new Set(model.layers.map((l) => l.name));
    return { file, loaded, unused: fileLayers.filter((n) => !modelNames.has(n)), values };
  } finally {
    f.close();
  }
}

/** Keras splits an attribute above HDF5's 64 KiB object-header limit into name0, name1, ... */
const HDF5_ATTR_LIMIT = 64512;

function writeStringList(group: H5Group, name: string, values: string[]): void {
  const width = Math.max(1, ...values.map((v) => Buffer.byteLength(v)));
  const chunks = Math.max(1, Math.ceil((width * values.length) / HDF5_ATTR_LIMIT));
  const dtype = `A${width}`;
  if (chunks === 1) {
    group.create_attribute(name, values, [values.length], dtype);
    return;
  }
  const per = Math.ceil(values.length / chunks);
  for (let i = 0; i < chunks; i++) {
    const part = values.slice(i * per, (i + 1) * per);
    group.create_attribute(`${name}${i}`, part, [part.length], dtype);
  }
}

/** Leaf layers of a nested model, in order. */
/**
 * A layer's weights in the order Keras' legacy .h5 loader zips them with the file: a layer's own
 * order, and for a nested model all trainable-kind weights of its layers, then all non-trainable-kind
 * ones (moving statistics), whatever is currently frozen.
 */
function kerasWeightOrder(layer: tf.layers.Layer): tf.LayerVariable[] {
  if (!isContainer(layer)) return layer.weights;
  type Internal = { _trainableWeights: tf.LayerVariable[]; _nonTrainableWeights: tf.LayerVariable[] };
  const ls = leafLayers(layer as tf.LayersModel) as unknown as Internal[];
  return [...ls.flatMap((l) => l._trainableWeights), ...ls.flatMap((l) => l._nonTrainableWeights)];
}

/**
 * Writes the model's weights in Keras' save_weights .h5 layout (all top-level layers in layer_names,
 * a nested model as one group holding its sublayers' weights), atomically (temp file + rename).
 * Keras opens it with model.load_weights(file) on the same architecture.
 */
export async function saveWeightsH5(model: tf.LayersModel, file: string): Promise<void> {
  const h5 = await h5wasm();
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const f = new h5.File(tmp, 'w');
  try {
    writeStringList(f, 'layer_names', model.layers.map((l) => l.name));
    f.create_attribute('backend', 'tensorflow');
    f.create_attribute('keras_version', '2.15.0');
    for (const layer of model.layers) {
      const group = f.create_group(layer.name);
      const weights = kerasWeightOrder(layer);
      writeStringList(group, 'weight_names', weights.map(kerasWeightName));
      if (weights.length === 0) continue;
      const values = await Promise.all(weights.map((w) => w.read().data()));
      weights.forEach((w, i) => {
        const parts = kerasWeightName(w).split('/');
        let g: H5Group = group;
        for (const p of parts.slice(0, -1)) g = (g.get(p) as H5Group | null) ?? g.create_group(p);
        g.create_dataset({ name: parts[parts.length - 1], data: values[i] as Float32Array, shape: w.shape as number[], dtype: '<f4' });
      });
    }
  } catch (e) {
    f.close();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  f.close();
  fs.renameSync(tmp, file);
}
