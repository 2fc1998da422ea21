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

/**
 * Holds out round(count * valFraction) images chosen by a seeded permutation; both parts keep the
 * original order. The same seed gives the same split on every machine.
 */
export function splitTrainVal(set: ImageSet, valFraction: number, seed: number): TrainValSplit {
  if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`splitTrainVal: valFraction should be in [0, 1), got ${valFraction}`);
  const nVal = Math.round(set.count * valFraction);
  const perm = new Random(seed).permutation(set.count);
  const valIndices = perm.slice(0, nVal).sort();
  const trainIndices = perm.slice(nVal).sort();
  return { train: subset(set, trainIndices), val: subset(set, valIndices), trainIndices, valIndices };
}
