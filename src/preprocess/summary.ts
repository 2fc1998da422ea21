/**
 * What notebook 02 shows: channel statistics as a table, value histograms before and after
 * preprocessing as a Vega-Lite chart, images before and after augmentation, the split's counts.
 */
import pl from 'nodejs-polars';
import type { TopLevelSpec } from 'vega-lite';
import { tf } from '../backend';
import { PhotoAugment, PreprocessMode, type Profile } from '../config';
import type { GridImage } from '../display';
import { classCountTable, imageItem } from '../data/summary';
import { Dataset, ImageSet, imageBytes } from '../data/types';
import { Random } from '../random';
import { augmentImage, BatchStream, imagesToTensor, type BatchOptions } from './batches';
import { photoAugmentBatch } from './corruptions';
import { channelNames, preprocess } from './preprocess';
import { ChannelStat } from './stats';
import { TrainValSplit } from './split';

/** Channel statistics as a DataFrame (stage, channel, mean, std, min, max), numbers rounded. */
export function statsTable(stats: ChannelStat[], digits = 3): pl.DataFrame {
  const r = (v: number) => Number(v.toFixed(digits));
  return pl.DataFrame({
    stage: stats.map((s) => s.stage),
    channel: stats.map((s) => s.channel),
    mean: stats.map((s) => r(s.mean)),
    std: stats.map((s) => r(s.std)),
    min: stats.map((s) => r(s.min)),
    max: stats.map((s) => r(s.max)),
  });
}

export interface HistogramRow {
  stage: string;
  channel: string;
  /** Bin start and end. */
  from: number;
  to: number;
  count: number;
}

/** Counts of `values` (interleaved channels) in `bins` equal bins spanning their range, per channel. */
export function channelHistogram(values: ArrayLike<number>, names: string[], stage: string, bins = 32): HistogramRow[] {
  const c = names.length;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < lo) lo = values[i];
    if (values[i] > hi) hi = values[i];
  }
  if (!(hi > lo)) hi = lo + 1;
  const width = (hi - lo) / bins;
  const counts = names.map(() => new Array<number>(bins).fill(0));
  for (let i = 0; i < values.length; i++) counts[i % c][Math.min(bins - 1, Math.floor((values[i] - lo) / width))]++;
  return names.flatMap((channel, k) =>
    counts[k].map((count, b) => ({ stage, channel, from: lo + b * width, to: lo + (b + 1) * width, count })),
  );
}

/** Histogram rows of the first `count` images, raw (0..255) and after preprocessing in `mode`. */
export async function preprocessHistogram(set: ImageSet, mode: PreprocessMode, count = 500, bins = 32): Promise<HistogramRow[]> {
  const n = Math.min(count, set.count);
  const raw = set.images.subarray(0, n * imageBytes(set));
  const after = tf.tidy(() => {
    const x = imagesToTensor(set, Uint32Array.from({ length: n }, (_, i) => i));
    return preprocess(x, mode);
  });
  const values = await after.data();
  after.dispose();
  return [...channelHistogram(raw, ['R', 'G', 'B'], 'raw 0..255', bins), ...channelHistogram(values, channelNames(mode), `after ${mode}`, bins)];
}

const CHANNEL_COLOURS = { domain: ['R', 'G', 'B'], range: ['#d62728', '#2ca02c', '#1f77b4'] };

/** Vega-Lite: one panel per stage (own x scale), a step line per channel (overlaid bars would hide each other). */
export function histogramSpec(rows: HistogramRow[], title = 'pixel values per channel'): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values: rows },
    facet: { column: { field: 'stage', type: 'nominal', title: null, sort: [...new Set(rows.map((r) => r.stage))] } },
    spec: {
      width: 260,
      height: 160,
      transform: [{ calculate: '(datum.from + datum.to) / 2', as: 'value' }],
      mark: { type: 'line', interpolate: 'step', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'value', type: 'quantitative', title: 'value' },
        y: { field: 'count', type: 'quantitative', title: 'pixels' },
        color: { field: 'channel', type: 'nominal', scale: CHANNEL_COLOURS },
      },
    },
    resolve: { scale: { x: 'independent' } },
  } as TopLevelSpec;
}

/**
 * Grid items: the images at `indices`, then `rounds` augmented versions of each (one row per
 * round, so use columns = indices.length). Draws from rng as the batch pipeline does, with the
 * profile's photo-like corruptions (train.photoAugment) when given.
 */
export function augmentationPreview(set: ImageSet, indices: number[], rng: Random, classes?: string[], rounds = 2, photo?: PhotoAugment): GridImage[] {
  const size = imageBytes(set);
  const caption = (i: number) => (classes ? classes[set.labels[i]] : `#${i}`);
  const items = indices.map((i) => imageItem(set, i, `${caption(i)} (original)`));
  for (let r = 0; r < rounds; r++) {
    for (const i of indices) {
      const out = new Uint8Array(size);
      augmentImage(set, i, rng, out, 0);
      if (photo) photoAugmentBatch(out, 1, set.width, set.height, photo, rng);
      items.push({ rgb: out, width: set.width, height: set.height, caption: `${caption(i)} (augmented)` });
    }
  }
  return items;
}

/** Per-class counts of a train/val split (and the test set when there is one). */
export function splitTable(ds: Dataset, split: TrainValSplit): pl.DataFrame {
  return classCountTable(ds, { train: split.train, val: split.val, test: ds.test });
}

/**
 * One sentence about the batches a profile's training reads from `set`: how many per epoch, the
 * first batch's shapes (the batch is disposed at once) and how many tensors remain alive afterwards.
 * (Positional arguments: tslab cannot take a notebook variable in an object shorthand such as `{ rng }`.)
 */
export function describeBatches(set: ImageSet, profile: Profile, mode: PreprocessMode, rng: Random, numClasses: number): string {
  const opts: BatchOptions = { batchSize: profile.train.batchSize, shuffle: true, rng, augment: profile.train.augment, photo: profile.train.photoAugment, mode, numClasses };
  const stream = new BatchStream(set, opts);
  const first = stream[Symbol.iterator]().next();
  if (first.done) return `no batches: the image set is empty`;
  const { xs, ys } = first.value;
  const text = `${stream.length} batches of ${opts.batchSize} per epoch; a batch: xs [${xs.shape}] ${xs.dtype}, ys [${ys.shape}] ${ys.dtype}`;
  tf.dispose([xs, ys]);
  return `${text}; tensors alive after disposing it: ${tf.memory().numTensors}`;
}
