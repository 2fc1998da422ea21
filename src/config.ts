/**
 * Paths and experiment profiles. A profile is plain data (profiles/<name>.json, as timm keeps its
 * presets); the user's overrides merge over it and the resolved profile is saved with each run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The folder holding package.json, found from this file whether it runs from src/ or dist/src/. */
export const projectRoot: string = (() => {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'profiles'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the project root (package.json + profiles/) above ${__dirname}`);
    dir = up;
  }
})();

export interface Paths {
  root: string;
  data: string;
  downloads: string;
  cache: string;
  runs: string;
  profiles: string;
  notebooks: string;
}

/** All locations, honouring TLWB_DATA_DIR (default <root>/data). Read on each call so tests can redirect. */
export function paths(): Paths {
  const data = path.resolve(process.env.TLWB_DATA_DIR || path.join(projectRoot, 'data'));
  return {
    root: projectRoot,
    data,
    downloads: path.join(data, 'downloads'),
    cache: path.join(data, 'cache'),
    runs: path.join(data, 'runs'),
    profiles: path.join(projectRoot, 'profiles'),
    notebooks: path.join(projectRoot, 'notebooks'),
  };
}

export type PreprocessMode = 'caffe' | 'unit' | 'torch' | 'tf' | 'none';
export type HeadKind = 'seed' | 'gap' | 'none';

export interface DataConfig {
  /** 'cifar10' or a folder of images with one subfolder per class. */
  source: 'cifar10' | 'folder';
  /** For 'cifar10': a local copy of the extracted batches (else CIFAR10_DIR, else download). For 'folder': the folder. */
  dir?: string;
  /** Use only the first N training / test images (per the file order), for quick runs. 0 or absent: all. */
  trainLimit?: number;
  testLimit?: number;
  /** Fraction of the training set held out for validation (seeded). */
  valFraction: number;
  /** Side of the square the images are stored at (32 for CIFAR-10; folders are resized to it). */
  imageSize: number;
}

export interface ModelConfig {
  /** A preset name: resnet50, resnet101, resnet152, darknet-tiny, or a TF.js model.json path/URL. */
  arch: string;
  head: HeadKind;
  /** Side of the square the backbone sees; the model resizes its input to it. */
  inputSize: number;
  /** 'imagenet' (the preset's weights), 'none' (random init) or a path/URL to a weights file. */
  weights: string;
  dropout?: number;
  /** The layer the 'gap' (and 'none') head cuts a TF.js backbone at, instead of the preset's. */
  cutLayer?: string;
}

export interface Phase {
  name: string;
  /** Which layers train: the whole model, only the head (base frozen), or the base from a named layer on. */
  trainable: 'all' | 'head' | { from: string };
  optimizer: 'adam' | 'sgd' | 'adamw';
  lr: number;
  /** Learning-rate schedule within the phase. */
  schedule?: { kind: 'constant' } | { kind: 'cosine'; warmupEpochs?: number; minLr?: number };
  epochs: number;
  batchSize?: number;
  /** Decoupled weight decay (AdamW style, applied to every trainable tensor after each step). */
  weightDecay?: number;
  momentum?: number;
  /** 'frozen' keeps every BatchNormalization layer in inference mode with fixed gamma/beta (Keras guide). */
  batchNorm?: 'train' | 'frozen';
  /**
   * Run this phase only where it is affordable: on a native backend (nativeBackend: true), or when one
   * measured training step predicts the phase under maxEstimatedMinutes. Otherwise it is skipped, with the reason.
   */
  runIf?: { nativeBackend?: boolean; maxEstimatedMinutes?: number };
  /**
   * With trainable {from}: run the frozen layers below `from` once over the data and train the rest on
   * their cached output (as train.featureCache does for the head), so fine-tuning the top of a backbone
   * at a high resolution fits a CPU. The phase then trains without augmentation.
   */
  featureCache?: boolean;
}

export interface TrainConfig {
  batchSize: number;
  seed: number;
  labelSmoothing: number;
  augment: boolean;
  phases: Phase[];
  /** Cache the frozen base's features when a phase trains only the head. */
  featureCache: boolean;
  /** How cached features are stored: float32 (default) or float16 (half the disk, tiny rounding). */
  featureCacheDtype?: 'float32' | 'float16';
  /** How many epoch checkpoints to keep in <runDir>/checkpoints (default 2). */
  checkpointsKept?: number;
  earlyStopping?: { monitor: 'val_loss' | 'val_accuracy'; patience: number };
}

export interface Profile {
  name: string;
  description: string;
  data: DataConfig;
  model: ModelConfig;
  train: TrainConfig;
  results: { tta: boolean; galleryCount: number };
}

export function listProfiles(): string[] {
  return fs
    .readdirSync(paths().profiles)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge: objects merge key by key, everything else (arrays included) is replaced. */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isObject(base) || !isObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge((base as Record<string, unknown>)[k], v);
  return out as T;
}

/** Parses an override value: JSON where it parses (numbers, booleans, arrays, objects), else the string. */
function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** 'train.phases.0.lr=1e-4' -> { train: { phases: { 0: ... } } } applied onto `target` (arrays indexed). */
export function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node: Record<string, unknown> = target;
  keys.forEach((key, i) => {
    if (i === keys.length - 1) {
      node[key] = value;
      return;
    }
    if (!isObject(node[key]) && !Array.isArray(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
}

/**
 * Loads profiles/<name>.json (with "extends": "<other>" merged under it), then applies overrides
 * "a.b.c=value" from the command line and from the environment variable TLWB_SET
 * (semicolon-separated). CIFAR10_DIR fills data.dir for CIFAR-10 when the profile leaves it empty.
 */
export function loadProfile(name: string, overrides: string[] = []): Profile {
  const file = path.join(paths().profiles, `${name}.json`);
  if (!fs.existsSync(file)) {
    throw new Error(`unknown profile '${name}': no ${file}; available: ${listProfiles().join(', ')}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  let merged: Record<string, unknown> = raw;
  if (typeof raw.extends === 'string') {
    merged = deepMerge(loadProfile(raw.extends) as unknown as Record<string, unknown>, raw);
    delete merged.extends;
  }
  const envSets = (process.env.TLWB_SET ?? '').split(';').map((s) => s.trim()).filter(Boolean);
  for (const o of [...envSets, ...overrides]) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new Error(`override '${o}': expected key.path=value`);
    setPath(merged, o.slice(0, eq), parseValue(o.slice(eq + 1)));
  }
  merged.name = name;
  const profile = merged as unknown as Profile;
  if (profile.data?.source === 'cifar10' && !profile.data.dir && process.env.CIFAR10_DIR) {
    profile.data.dir = path.resolve(process.env.CIFAR10_DIR);
  }
  validateProfile(profile, file);
  return profile;
}

/** Checks the fields every stage relies on, naming the file and field that is wrong. */
export function validateProfile(p: Profile, origin: string): void {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new Error(`${origin}: field '${field}' should be ${expected}, got ${JSON.stringify(got)}`);
  };
  if (!isObject(p.data)) fail('data', 'an object', p.data);
  if (!['cifar10', 'folder'].includes(p.data.source)) fail('data.source', "'cifar10' or 'folder'", p.data.source);
  if (!(p.data.valFraction >= 0 && p.data.valFraction < 1)) fail('data.valFraction', 'a number in [0, 1)', p.data.valFraction);
  if (!(Number.isInteger(p.data.imageSize) && p.data.imageSize > 0)) fail('data.imageSize', 'a positive integer', p.data.imageSize);
  if (!isObject(p.model)) fail('model', 'an object', p.model);
  if (typeof p.model.arch !== 'string') fail('model.arch', 'a string', p.model.arch);
  if (!['seed', 'gap', 'none'].includes(p.model.head)) fail('model.head', "'seed', 'gap' or 'none'", p.model.head);
  if (!(Number.isInteger(p.model.inputSize) && p.model.inputSize >= 32)) fail('model.inputSize', 'an integer >= 32', p.model.inputSize);
  if (p.model.cutLayer !== undefined && (typeof p.model.cutLayer !== 'string' || !p.model.cutLayer)) fail('model.cutLayer', 'a layer name', p.model.cutLayer);
  if (!isObject(p.train)) fail('train', 'an object', p.train);
  if (!(Number.isInteger(p.train.batchSize) && p.train.batchSize > 0)) fail('train.batchSize', 'a positive integer', p.train.batchSize);
  if (!Array.isArray(p.train.phases) || p.train.phases.length === 0) fail('train.phases', 'a non-empty array', p.train.phases);
  p.train.phases.forEach((ph, i) => {
    if (!(ph.epochs >= 0)) fail(`train.phases.${i}.epochs`, 'a number >= 0', ph.epochs);
    if (!(ph.lr > 0)) fail(`train.phases.${i}.lr`, 'a positive number', ph.lr);
    if (!['adam', 'sgd', 'adamw'].includes(ph.optimizer)) fail(`train.phases.${i}.optimizer`, "'adam', 'sgd' or 'adamw'", ph.optimizer);
    if (ph.featureCache !== undefined && typeof ph.featureCache !== 'boolean') fail(`train.phases.${i}.featureCache`, 'true or false', ph.featureCache);
    if (ph.featureCache && typeof ph.trainable !== 'object') {
      fail(`train.phases.${i}.featureCache`, 'used only with trainable {"from": "<layer>"} (head phases follow train.featureCache)', ph.featureCache);
    }
  });
}
