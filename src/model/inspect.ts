/**
 * Looking at a built model in a notebook: parameter counts per part, and the backbone's own ImageNet
 * top-5 on a few images (a sanity check that the weights loaded and the preprocessing fits).
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../config';
import type { Dataset, ImageSet } from '../data/types';
import { preprocess } from '../preprocess/preprocess';
import { buildModel, BuiltModel } from './build';
import { countParams, leafLayers } from './freeze';
import { imagenetLabels, labelsBesideModel } from './imagenet';
import { presetForModel, tfjsSource } from './presets';

// A type alias (not an interface) so rows fit display.table's Record<string, unknown>[].
export type ParamRow = {
  part: string;
  name: string;
  layers: number;
  params: number;
  trainableParams: number;
  nonTrainableParams: number;
};

/** Parameter counts of the whole model, its base and its head (layers: leaf layers without inputs). */
export function paramRows(built: BuiltModel): ParamRow[] {
  const row = (part: string, m: tf.LayersModel): ParamRow => ({
    part,
    name: m.name,
    layers: leafLayers(m).filter((l) => l.getClassName() !== 'InputLayer').length,
    ...countParams(m),
  });
  return [row('model', built.model), row('base', built.base), row('head', built.head)];
}

export interface ImagenetCheck {
  rows: Record<string, string | number>[];
  /** Why labels are indices, when they are. */
  note: string;
  /** The images with their captions (for display.imageGrid). */
  items: { rgb: Uint8Array; width: number; height: number; caption: string }[];
}

/**
 * The backbone with its ImageNet top (head 'none', at the preset's input size) on `indices` of `set`:
 * top-k classes and probabilities per image, named by the labels shipped with the model or the
 * project's ImageNet lists (a custom backbone of unknown class order shows indices '#n', and `note` says so).
 */
export async function imagenetCheck(
  cfg: ModelConfig,
  set: ImageSet,
  indices: number[],
  opts: { classNames?: string[]; k?: number; inputSize?: number } = {},
): Promise<ImagenetCheck> {
  // A network trained from scratch has no ImageNet top to check; say so rather than fail the notebook.
  if (cfg.weights === 'none') return { rows: [], items: [], note: 'model.weights=none: the base starts from random weights, so there are no ImageNet predictions to check' };
  const preset = presetForModel(cfg);
  const k = opts.k ?? 5;
  const inputSize = opts.inputSize ?? preset.inputSize;
  const backbone = await buildModel({ ...cfg, head: 'none', inputSize }, 1000, { storedSize: set.height, quiet: true, imagenetTop: true });
  const order = preset.classOrder === 'unknown' ? undefined : preset.classOrder;
  const shipped = preset.kind === 'tfjs' && preset.labelsFile ? await labelsBesideModel(tfjsSource(preset), preset.labelsFile) : undefined;
  const labels = shipped ?? (order ? imagenetLabels(order) : undefined);
  const pixels = set.height * set.width * 3;
  const batch = new Uint8Array(indices.length * pixels);
  indices.forEach((idx, i) => batch.set(set.images.subarray(idx * pixels, (idx + 1) * pixels), i * pixels));
  const probs = tf.tidy(() => {
    const x = tf.tensor4d(batch, [indices.length, set.height, set.width, 3], 'int32').toFloat() as tf.Tensor4D;
    return backbone.model.predict(preprocess(x, backbone.preprocess)) as tf.Tensor2D;
  });
  const { values, indices: top } = tf.topk(probs, k);
  const [v, t] = await Promise.all([values.array(), top.array()]);
  tf.dispose([probs, values, top]);
  backbone.model.dispose();
  const name = (c: number) => labels?.[c] ?? `#${c}`;
  const rows = indices.map((idx, r) => {
    const row: Record<string, string | number> = { image: idx, class: opts.classNames?.[set.labels[idx]] ?? set.labels[idx] };
    for (let j = 0; j < k; j++) row[`top${j + 1}`] = `${name(t[r][j])} (${v[r][j].toFixed(2)})`;
    return row;
  });
  const items = indices.map((idx, r) => ({
    rgb: set.images.subarray(idx * pixels, (idx + 1) * pixels),
    width: set.width,
    height: set.height,
    caption: `${opts.classNames?.[set.labels[idx]] ?? set.labels[idx]}: ${name(t[r][0])}`,
  }));
  const note = shipped
    ? `labels: the ImageNet class names shipped with the model (${preset.kind === 'tfjs' ? preset.labelsFile : ''})`
    : labels
    ? `labels: ImageNet class names in ${order} order`
    : 'a custom backbone: classes shown as output indices';
  return { rows, note, items };
}

/**
 * imagenetCheck on the first `n` images of a data set's test images, or of its training images when
 * it has none (an image folder without a test/ split).
 */
export function imagenetCheckSample(cfg: ModelConfig, ds: Pick<Dataset, 'train' | 'test' | 'classes'>, n = 8): Promise<ImagenetCheck> {
  const set = ds.test ?? ds.train;
  const indices = Array.from({ length: Math.min(n, set.count) }, (_, i) => i);
  return imagenetCheck(cfg, set, indices, { classNames: ds.classes });
}
