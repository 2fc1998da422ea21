/**
 * TensorFlow.js seeds its unseeded random ops (initialisers, dropout) from Math.random(). Running a
 * synchronous block with Math.random drawn from our Random makes those ops reproducible too, and
 * lets a checkpoint carry their state.
 */
import { Random } from '../random';

export function withSeededMathRandom<T>(rng: Random, fn: () => T): T {
  const original = Math.random;
  Math.random = () => rng.next();
  try {
    return fn();
  } finally {
    Math.random = original;
  }
}

/** The async variant, for model building: nothing else should run meanwhile (a build awaits I/O only). */
export async function withSeededMathRandomAsync<T>(rng: Random, fn: () => Promise<T>): Promise<T> {
  const original = Math.random;
  Math.random = () => rng.next();
  try {
    return await fn();
  } finally {
    Math.random = original;
  }
}
