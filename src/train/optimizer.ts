/**
 * One optimizer per phase (adam, sgd with optional momentum, adamw = Adam + decoupled weight decay),
 * a settable learning rate, and the optimizer state as plain named tensors for checkpoints.
 */
import * as tf from '@tensorflow/tfjs';
import type { Phase } from '../config';

/** A tensor with a name, as optimizer.getWeights() gives them. */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

export interface PhaseOptimizer {
  optimizer: tf.Optimizer;
  kind: Phase['optimizer'];
  setLearningRate(lr: number): void;
  /** Decoupled weight decay after a step: w <- w * (1 - lr * wd), for kernels (rank >= 2) only. */
  decay(vars: tf.Variable[], lr: number): void;
}

export function createOptimizer(phase: Phase): PhaseOptimizer {
  const kind = phase.optimizer;
  let optimizer: tf.Optimizer;
  if (kind === 'adam' || kind === 'adamw') optimizer = tf.train.adam(phase.lr, 0.9, 0.999, 1e-7);
  else if (kind === 'sgd') optimizer = phase.momentum ? tf.train.momentum(phase.lr, phase.momentum) : tf.train.sgd(phase.lr);
  else throw new Error(`phase '${phase.name}': optimizer should be 'adam', 'sgd' or 'adamw', got ${JSON.stringify(kind)}`);
  const wd = phase.weightDecay ?? (kind === 'adamw' ? 0.01 : 0);
  return {
    optimizer,
    kind,
    setLearningRate(lr: number) {
      // Adam reads this.learningRate on every applyGradients; SGD/momentum expose a setter.
      if (kind === 'sgd') (optimizer as tf.SGDOptimizer).setLearningRate(lr);
      else (optimizer as unknown as { learningRate: number }).learningRate = lr;
    },
    decay(vars, lr) {
      if (!(wd > 0)) return;
      tf.tidy(() => {
        for (const v of vars) if (v.rank >= 2) v.assign(tf.mul(v, 1 - lr * wd));
      });
    },
  };
}

/**
 * The optimizer's whole state. tfjs' getWeights() gives the iteration count and the moments; Adam's
 * setWeights() recomputes beta1^t with pow(), which differs in the last bits from the product the
 * uninterrupted run accumulated, so the two accumulators are saved exactly as well.
 */
export async function optimizerState(opt: PhaseOptimizer): Promise<NamedTensor[]> {
  const weights = await opt.optimizer.getWeights();
  const adam = opt.optimizer as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  if (adam.accBeta1 && adam.accBeta2) {
    weights.push({ name: '__accBeta1', tensor: adam.accBeta1 }, { name: '__accBeta2', tensor: adam.accBeta2 });
  }
  return weights;
}

export async function restoreOptimizerState(opt: PhaseOptimizer, state: NamedTensor[]): Promise<void> {
  const extra = state.filter((w) => w.name.startsWith('__'));
  const plain = state.filter((w) => !w.name.startsWith('__'));
  await opt.optimizer.setWeights(plain);
  const adam = opt.optimizer as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  for (const w of extra) {
    if (w.name === '__accBeta1' && adam.accBeta1) adam.accBeta1.assign(w.tensor);
    if (w.name === '__accBeta2' && adam.accBeta2) adam.accBeta2.assign(w.tensor);
  }
}
