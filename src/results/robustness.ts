/**
 * Corruption robustness: the test set corrupted in memory by each named corruption
 * (src/preprocess/corruptions.ts: JPEG re-encoding, noise, blur, contrast, brightness at CIFAR-10-C's
 * severity 3), scored exactly as the clean test set (same engine, same batches, flip TTA when asked).
 * Each corrupted copy is made image by image from a seed and the corruption's name, so the same seed
 * gives the same pixels whatever the batch size, and only one copy is in memory at a time.
 */
import { CORRUPTION_NAMES, type CorruptionName, type PreprocessMode } from '../config';
import type { ImageSet } from '../data/types';
import { imageBytes } from '../data/types';
import { CORRUPTIONS } from '../preprocess/corruptions';
import { Random } from '../random';
import { tf } from '../backend';
import { predictSet, outputClasses, scoresFrom } from './evaluate';

/** Seed of the random corruptions (noise) when none is given. */
export const ROBUSTNESS_SEED = 23;

/** results.robustness of a profile as a list of names ([] when off). */
export function robustnessNames(setting: boolean | readonly CorruptionName[] | undefined): CorruptionName[] {
  if (setting === true) return [...CORRUPTION_NAMES];
  if (!setting) return [];
  for (const n of setting) if (!(n in CORRUPTIONS)) throw new Error(`results.robustness: unknown corruption '${n}'; known: ${CORRUPTION_NAMES.join(', ')}`);
  return [...setting];
}

/** A 32-bit seed per corruption: the run's seed mixed with the name (FNV-1a), so each copy has its own stream. */
function corruptionSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A copy of `set` with every image corrupted by `name` (labels shared); deterministic for a seed. */
export function corruptSet(set: ImageSet, name: CorruptionName, seed = ROBUSTNESS_SEED): ImageSet {
  const corruption = CORRUPTIONS[name];
  if (!corruption) throw new Error(`corruptSet: unknown corruption '${name}'; known: ${CORRUPTION_NAMES.join(', ')}`);
  if (corruption.applyMany) return { ...set, images: corruption.applyMany(set.images.subarray(0, set.count * imageBytes(set)), set.count, set.width, set.height) };
  const size = imageBytes(set);
  const images = new Uint8Array(set.count * size);
  const rng = new Random(corruptionSeed(seed, name));
  for (let i = 0; i < set.count; i++) {
    const data = set.images.subarray(i * size, (i + 1) * size);
    images.set(corruption.apply({ data, width: set.width, height: set.height }, rng), i * size);
  }
  return { ...set, images };
}

/** One corruption's scores on the whole test set. */
export interface RobustnessRow {
  name: CorruptionName;
  label: string;
  params: Record<string, number>;
  accuracy: number;
  loss: number;
  /** With flip TTA, when the evaluation made it. */
  ttaAccuracy: number | null;
  /** Clean accuracy minus this one (points of accuracy lost, as a fraction). */
  drop: number;
  seconds: number;
}

/** evaluation.json's `robustness`: the clean numbers beside each corruption's, and their mean. */
export interface RobustnessSummary {
  seed: number;
  count: number;
  source: string;
  codec: string;
  clean: { accuracy: number; ttaAccuracy: number | null };
  corruptions: RobustnessRow[];
  /** Mean accuracy over the corruptions (and with TTA). */
  meanAccuracy: number;
  meanTtaAccuracy: number | null;
  seconds: number;
}

export interface RobustnessOptions {
  mode: PreprocessMode;
  names: CorruptionName[];
  /** The clean scores already measured (the rows' drop is taken from them). */
  clean: { accuracy: number; ttaAccuracy: number | null };
  tta?: boolean;
  batchSize?: number;
  seed?: number;
  /** After each batch: which corruption, images done of the total over every corruption. */
  onProgress?: (name: CorruptionName, done: number, total: number) => void;
}

const meanOf = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** Scores `model` on each corrupted copy of `test`, the same way evaluate() scores the clean set. */
export async function evaluateRobustness(model: tf.LayersModel, test: ImageSet, opts: RobustnessOptions): Promise<RobustnessSummary> {
  if (opts.names.length === 0) throw new Error('evaluateRobustness: no corruptions asked for');
  const t0 = performance.now();
  const seed = opts.seed ?? ROBUSTNESS_SEED;
  const numClasses = outputClasses(model);
  const perCopy = opts.tta ? 2 * test.count : test.count;
  const total = perCopy * opts.names.length;
  const rows: RobustnessRow[] = [];
  for (const [k, name] of opts.names.entries()) {
    const t1 = performance.now();
    const corrupted = corruptSet(test, name, seed);
    const base = k * perCopy;
    const report = (done: number) => opts.onProgress?.(name, base + done, total);
    const plain = await predictSet(model, corrupted, { mode: opts.mode, batchSize: opts.batchSize, onBatch: report });
    const scores = scoresFrom(plain, test.labels, numClasses);
    let ttaAccuracy: number | null = null;
    if (opts.tta) {
      const flipped = await predictSet(model, corrupted, { mode: opts.mode, batchSize: opts.batchSize, flip: true, onBatch: (d) => report(test.count + d) });
      const averaged = new Float32Array(plain.length);
      for (let i = 0; i < plain.length; i++) averaged[i] = (plain[i] + flipped[i]) / 2;
      ttaAccuracy = scoresFrom(averaged, test.labels, numClasses).accuracy;
    }
    const c = CORRUPTIONS[name];
    rows.push({ name, label: c.label, params: c.params, accuracy: scores.accuracy, loss: scores.loss, ttaAccuracy, drop: opts.clean.accuracy - scores.accuracy, seconds: (performance.now() - t1) / 1000 });
  }
  const tta = rows.every((r) => r.ttaAccuracy !== null);
  return {
    seed,
    count: test.count,
    source: 'CIFAR-10-C severity-3 parameters (Hendrycks & Dietterich, ICLR 2019; github.com/hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py); JPEG at the qualities named',
    codec: 'jpeg-js (baseline, 4:4:4)',
    clean: opts.clean,
    corruptions: rows,
    meanAccuracy: meanOf(rows.map((r) => r.accuracy)),
    meanTtaAccuracy: tta ? meanOf(rows.map((r) => r.ttaAccuracy as number)) : null,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The table rows: clean first, then each corruption, then the mean (for display.table and the report). */
export function robustnessRows(r: RobustnessSummary): { test_set: string; accuracy: number; drop: number | null; tta_accuracy: number | null }[] {
  return [
    { test_set: 'clean', accuracy: r.clean.accuracy, drop: null, tta_accuracy: r.clean.ttaAccuracy },
    ...r.corruptions.map((c) => ({ test_set: c.label, accuracy: c.accuracy, drop: c.drop, tta_accuracy: c.ttaAccuracy })),
    { test_set: 'mean over corruptions', accuracy: r.meanAccuracy, drop: r.clean.accuracy - r.meanAccuracy, tta_accuracy: r.meanTtaAccuracy },
  ];
}
