/**
 * Learning-rate schedules within a phase, as pure functions of the position in the phase, so that a
 * resumed run computes exactly the rate an uninterrupted one would.
 */
import type { Phase } from '../config';

/**
 * The rate for step `step` (0-based) of epoch `epoch` (0-based) in `phase`, with `stepsPerEpoch` steps.
 * cosine: linear warm-up from lr/steps to lr over warmupEpochs, then half a cosine down to minLr.
 */
export function learningRateAt(phase: Phase, epoch: number, step: number, stepsPerEpoch: number): number {
  const schedule = phase.schedule ?? { kind: 'constant' };
  if (schedule.kind === 'constant') return phase.lr;
  if (schedule.kind !== 'cosine') {
    throw new Error(`phase '${phase.name}': schedule.kind should be 'constant' or 'cosine', got ${JSON.stringify((schedule as { kind: unknown }).kind)}`);
  }
  const total = Math.max(1, phase.epochs * stepsPerEpoch);
  const warmup = Math.min(total, Math.round((schedule.warmupEpochs ?? 0) * stepsPerEpoch));
  const t = epoch * stepsPerEpoch + step; // steps already taken
  if (t < warmup) return (phase.lr * (t + 1)) / warmup;
  const minLr = schedule.minLr ?? 0;
  // The phase's last step runs at minLr.
  const decaySteps = Math.max(1, total - warmup - 1);
  const progress = Math.min(1, (t - warmup) / decaySteps);
  return minLr + 0.5 * (phase.lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
