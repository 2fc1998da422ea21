/** A seeded hold-out split of a training set. */
import { Random } from '../random';
import { ImageSet, subset } from '../data/types';

export interface TrainValSplit {
  train: ImageSet;
  val: ImageSet;
  /** Indices into the original set, each part in ascending order. */
  trainIndices: Uint32Array;
  valIndices: Uint32Array;
}

/** Image folders are split per class (their classes are often unequal); CIFAR-10 keeps its one permutation. */
export function stratifiedSplit(data: { source: string }): boolean {
  return data.source === 'folder';
}

export interface SplitOptions {
  /**
   * Hold out the same fraction of every class (sklearn's StratifiedShuffleSplit): image folders,
   * whose classes are often unequal. Off: one permutation of the whole set (CIFAR-10's split).
   */
  stratified?: boolean;
}

/**
 * Holds out round(count * valFraction) images chosen by a seeded permutation; both parts keep the
 * original order. The same seed gives the same split on every machine. Stratified: each class gives
 * floor(its count * valFraction) images, and the images left to reach the total come from the classes
 * with the largest remainders (ties: lower class index), each class's images in a seeded order.
 */
export function splitTrainVal(set: ImageSet, valFraction: number, seed: number, opts: SplitOptions = {}): TrainValSplit {
  if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`splitTrainVal: valFraction should be in [0, 1), got ${valFraction}`);
  const nVal = Math.round(set.count * valFraction);
  let valIndices: Uint32Array;
  if (opts.stratified) {
    const byClass: number[][] = [];
    for (let i = 0; i < set.count; i++) (byClass[set.labels[i]] ??= []).push(i);
    const classes = byClass.map((idx, c) => ({ c, idx: idx ?? [] })).filter((g) => g.idx.length > 0);
    const quota = classes.map((g) => g.idx.length * valFraction);
    const take = quota.map(Math.floor);
    const order = classes.map((_, k) => k).sort((a, b) => quota[b] - take[b] - (quota[a] - take[a]) || classes[a].c - classes[b].c);
    for (let left = nVal - take.reduce((a, b) => a + b, 0), k = 0; left > 0; left--, k++) take[order[k % order.length]]++;
    const rng = new Random(seed);
    const picked: number[] = [];
    classes.forEach((g, k) => {
      const perm = rng.permutation(g.idx.length);
      for (let j = 0; j < take[k]; j++) picked.push(g.idx[perm[j]]);
    });
    valIndices = Uint32Array.from(picked).sort();
  } else {
    valIndices = new Random(seed).permutation(set.count).slice(0, nVal).sort();
  }
  const isVal = new Uint8Array(set.count);
  for (const i of valIndices) isVal[i] = 1;
  const trainIndices = new Uint32Array(set.count - valIndices.length);
  for (let i = 0, n = 0; i < set.count; i++) if (!isVal[i]) trainIndices[n++] = i;
  return { train: subset(set, trainIndices), val: subset(set, valIndices), trainIndices, valIndices };
}
