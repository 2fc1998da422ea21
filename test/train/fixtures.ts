/** Tiny stand-ins for the train tests: a resnet-like model (conv + BatchNorm + residual add) and learnable synthetic images. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend';
import type { Profile } from '../../src/config';
import type { ImageSet } from '../../src/data/types';
import { Random } from '../../src/random';
import type { Session } from '../../src/session';
import { writeJsonAtomic } from '../../src/session';
import type { TrainableModel } from '../../src/model/split';
import type { TrainData } from '../../src/train/setup';
import { withSeededMathRandom } from '../../src/train/seeded';
import { applyKerasBatchNormSemantics } from '../../src/model/freeze';

export const SIZE = 8;
export const CLASSES = ['red', 'green', 'blue'];

/** image -> base -> head, nested as buildModel nests them, with Keras' BatchNormalization semantics. */
function assemble(base: tf.LayersModel, head: tf.LayersModel, name: string, arch: string): TrainableModel {
  const image = tf.input({ shape: [SIZE, SIZE, 3], name: 'image' });
  const model = tf.model({ inputs: image, outputs: head.apply(base.apply(image)) as tf.SymbolicTensor, name });
  applyKerasBatchNormSemantics(model);
  return { model, base, head, preprocess: 'unit', inputSize: SIZE, arch };
}

/** input -> base (conv, BN, relu, a residual conv block, GAP) -> head (Dense softmax), nested like buildModel's. */
export function tinyResnetLike(seed = 7, dropout = 0): TrainableModel {
  return withSeededMathRandom(new Random(seed), () => {
    const bIn = tf.input({ shape: [SIZE, SIZE, 3], name: 'base_in' });
    let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv1_conv' }).apply(bIn) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'conv1_bn' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu', name: 'conv1_relu' }).apply(x) as tf.SymbolicTensor;
    let y = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv2_block1_1_conv' }).apply(x) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization({ name: 'conv2_block1_1_bn' }).apply(y) as tf.SymbolicTensor;
    x = tf.layers.add({ name: 'conv2_block1_add' }).apply([x, y]) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as tf.SymbolicTensor;
    const base = tf.model({ inputs: bIn, outputs: x, name: 'tiny_base' });
    const hIn = tf.input({ shape: [4], name: 'features' });
    let h: tf.SymbolicTensor = hIn;
    if (dropout > 0) h = tf.layers.dropout({ rate: dropout, name: 'dropout' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.dense({ units: CLASSES.length, activation: 'softmax', name: 'dense' }).apply(h) as tf.SymbolicTensor;
    return assemble(base, tf.model({ inputs: hIn, outputs: h, name: 'head' }), 'tiny', 'tiny-resnet-like');
  });
}

/** input -> base (conv, BN, relu, then a 1x1 conv, BN, relu: a chain, as MobileNet's last block) -> head (GAP, Dense softmax). */
export function tinyChain(seed = 7): TrainableModel {
  return withSeededMathRandom(new Random(seed), () => {
    const bIn = tf.input({ shape: [SIZE, SIZE, 3], name: 'base_in' });
    let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv1_conv' }).apply(bIn) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'conv1_bn' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu', name: 'conv1_relu' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ filters: 4, kernelSize: 1, name: 'conv2_conv' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'conv2_bn' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'relu', name: 'conv2_relu' }).apply(x) as tf.SymbolicTensor;
    const base = tf.model({ inputs: bIn, outputs: x, name: 'tiny_chain_base' });
    const hIn = tf.input({ shape: [SIZE, SIZE, 4], name: 'features' });
    let h = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(hIn) as tf.SymbolicTensor;
    h = tf.layers.dense({ units: CLASSES.length, activation: 'softmax', name: 'dense' }).apply(h) as tf.SymbolicTensor;
    return assemble(base, tf.model({ inputs: hIn, outputs: h, name: 'head' }), 'tiny_chain', 'tiny-chain');
  });
}

/** Images whose class is the brightest channel: learnable in a few epochs. */
export function syntheticSet(count: number, seed: number): ImageSet {
  const rng = new Random(seed);
  const images = new Uint8Array(count * SIZE * SIZE * 3);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = rng.int(3);
    labels[i] = c;
    for (let p = 0; p < SIZE * SIZE; p++) {
      for (let ch = 0; ch < 3; ch++) images[(i * SIZE * SIZE + p) * 3 + ch] = ch === c ? 120 + rng.int(136) : rng.int(120);
    }
  }
  return { images, labels, count, height: SIZE, width: SIZE };
}

export function syntheticData(trainCount = 96, valCount = 48): TrainData {
  return { train: syntheticSet(trainCount, 1), val: syntheticSet(valCount, 2), classes: CLASSES, valSource: 'split' };
}

export function testProfile(phases: Profile['train']['phases'], extra: Partial<Profile['train']> = {}): Profile {
  return {
    name: 'unit',
    description: 'train unit test',
    data: { source: 'cifar10', valFraction: 0.1, imageSize: SIZE },
    model: { arch: 'tiny-resnet-like', head: 'gap', inputSize: 32, weights: 'none' },
    train: { batchSize: 32, seed: 3, labelSmoothing: 0, augment: false, featureCache: true, phases, ...extra },
    results: { tta: false, galleryCount: 0 },
  };
}

const made: string[] = [];
process.on('exit', () => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A session on the cpu backend in a fresh temporary run folder (TLWB_DATA_DIR redirected there too). */
export async function tempSession(profile: Profile): Promise<Session> {
  const backend = await initBackend({ force: 'cpu', quiet: true });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-train-'));
  made.push(root);
  process.env.TLWB_DATA_DIR = path.join(root, 'data');
  const runDir = path.join(root, 'run');
  fs.mkdirSync(runDir, { recursive: true });
  writeJsonAtomic(path.join(runDir, 'profile.json'), profile);
  return { profile, runDir, backend };
}

/** Epoch rows without the wall-clock column, for comparing runs. */
export function numbersOf(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map(({ seconds: _s, ...rest }) => rest);
}
