/**
 * ImageNet class names for a backbone's 1000 outputs, and top-k predictions as a sanity check.
 * The two label orders ship with the project (imagenet-labels.json, with their sources): Keras order
 * for the Keras ResNets and MobileNet, Darknet's order (the list ml5 maps its Darknet outputs with)
 * for Darknet-Tiny. An environment variable may name another file for either.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import BUNDLED from './imagenet-labels.json';

export type ClassOrder = 'keras' | 'darknet';

/** The environment variable that replaces each bundled list with a file of one's own. */
export const IMAGENET_LABEL_SOURCES: Record<ClassOrder, { env: string }> = {
  keras: { env: 'IMAGENET_LABELS_KERAS' },
  darknet: { env: 'IMAGENET_LABELS_DARKNET' },
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

/** The 1000 labels in `order`: the file the environment variable names, else the bundled list. */
export function imagenetLabels(order: ClassOrder): string[] {
  const file = process.env[IMAGENET_LABEL_SOURCES[order].env];
  if (file) {
    if (!fs.existsSync(file)) throw new Error(`${IMAGENET_LABEL_SOURCES[order].env}=${file}: no such file`);
    return parseLabels(fs.readFileSync(file, 'utf8'), file);
  }
  return BUNDLED[order];
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
