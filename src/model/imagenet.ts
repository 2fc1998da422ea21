/**
 * ImageNet class names for a backbone's 1000 outputs, and top-k predictions as a sanity check.
 * The label lists are downloaded (and cached in data/downloads) like weights: Keras order for the
 * Keras ResNets, Darknet's order (the list ml5's darknet.js maps the outputs with) for Darknet. Offline without a cached copy, labels are undefined and callers show indices.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { paths } from '../config';
import { download } from '../data/download';

export type ClassOrder = 'keras' | 'darknet';

export const IMAGENET_LABEL_SOURCES: Record<ClassOrder, { url: string; file: string; env: string }> = {
  keras: {
    url: 'https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json',
    file: 'imagenet_class_index.json',
    env: 'IMAGENET_LABELS_KERAS',
  },
  darknet: {
    // The list ml5 ships for its Darknet classifiers (the source of the Darknet-Tiny files): output i is entry i.
    url: 'https://cdn.jsdelivr.net/gh/ml5js/ml5-library@v0.12.2/src/utils/IMAGENET_CLASSES_DARKNET.js',
    file: 'IMAGENET_CLASSES_DARKNET.js',
    env: 'IMAGENET_LABELS_DARKNET',
  },
};

/**
 * Parses a label file: Keras' class-index JSON ({"0": ["n01440764", "tench"], ...}), TensorFlow.js'
 * model metadata ({"labels": ["tench, Tinca tinca", ...]}), a JS module exporting an array, or one name per line.
 */
export function parseLabels(text: string, origin: string): string[] {
  const trimmed = text.trim();
  let labels: string[];
  if (/export\s+default\s*\[/.test(trimmed)) {
    // A JavaScript module exporting an array of strings (ml5's label files).
    labels = [...trimmed.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
  } else if (trimmed.startsWith('{') && Array.isArray((JSON.parse(trimmed) as { labels?: unknown }).labels)) {
    labels = ((JSON.parse(trimmed) as { labels: unknown[] }).labels).map(String);
  } else if (trimmed.startsWith('{')) {
    const index = JSON.parse(trimmed) as Record<string, [string, string]>;
    labels = Object.keys(index)
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => index[k][1]);
  } else {
    labels = trimmed.split(/\r?\n/).map((l) => l.trim());
  }
  if (labels.length < 1000) throw new Error(`${origin}: expected at least 1000 ImageNet labels, found ${labels.length}`);
  return labels.slice(0, 1000);
}

/**
 * The 1000 labels in `order`, from the environment variable's file, the cache, or a download.
 * Returns undefined (never throws) when none is reachable, e.g. offline.
 */
export async function imagenetLabels(order: ClassOrder, opts: { download?: boolean; quiet?: boolean } = {}): Promise<string[] | undefined> {
  const src = IMAGENET_LABEL_SOURCES[order];
  const candidates = [process.env[src.env], path.join(paths().downloads, src.file)].filter((f): f is string => !!f);
  for (const f of candidates) {
    if (fs.existsSync(f)) return parseLabels(fs.readFileSync(f, 'utf8'), f);
  }
  if (opts.download === false) return undefined;
  try {
    const f = await download(src.url, path.join(paths().downloads, src.file), { quiet: opts.quiet ?? true, timeoutMs: 10_000 });
    return parseLabels(fs.readFileSync(f, 'utf8'), f);
  } catch {
    return undefined;
  }
}

/**
 * The labels a TF.js preset ships beside its model.json (`labelsFile`, e.g. MobileNet's metadata.json),
 * from the folder or URL the model loads from. Undefined (never throws) when the file is not reachable.
 */
export async function labelsBesideModel(source: string, labelsFile: string): Promise<string[] | undefined> {
  const location = /^https?:\/\//i.test(source)
    ? new URL(labelsFile, source).href
    : path.join(fs.existsSync(source) && fs.statSync(source).isDirectory() ? source : path.dirname(source), labelsFile);
  try {
    if (/^https?:\/\//i.test(location)) {
      const res = await fetch(location, { signal: AbortSignal.timeout(10_000) });
      return res.ok ? parseLabels(await res.text(), location) : undefined;
    }
    return fs.existsSync(location) ? parseLabels(fs.readFileSync(location, 'utf8'), location) : undefined;
  } catch {
    return undefined;
  }
}

export interface TopK {
  index: number;
  label: string;
  probability: number;
}

/** Top-k of each row of `probs` [n, classes]; labels default to '#<index>'. */
export async function topK(probs: tf.Tensor2D, k: number, labels?: string[]): Promise<TopK[][]> {
  const { values, indices } = tf.topk(probs, k);
  const [v, i] = await Promise.all([values.array(), indices.array()]);
  values.dispose();
  indices.dispose();
  return v.map((row, r) => row.map((p, j) => ({ index: i[r][j], label: labels?.[i[r][j]] ?? `#${i[r][j]}`, probability: p })));
}
