/**
 * Learning-rate schedules within a phase, as pure functions of the position in the phase, so that a
 * resumed run computes exactly the rate an uninterrupted one would.
 */
import type { Phase } from '../config';

/**
 * The rate for step `step` (0-based) of epoch `epoch` (0-based) in `phase`, with `stepsPerEpoch` steps.
 * cosine: linear warm-up from lr/steps to lr over warmupEpochs, then half a cosine down to minLr.
 * one-cycle (fastai fit_one_cycle): half a cosine up from lr/divFactor to lr over the first pctStart
 * of the phase's steps, then half a cosine down to lr/(divFactor*finalDivFactor); defaults 0.25, 25, 1e5.
 */
export function learningRateAt(phase: Phase, epoch: number, step: number, stepsPerEpoch: number): number {
  const schedule = phase.schedule ?? { kind: 'constant' };
  if (schedule.kind === 'constant') return phase.lr;
  const total = Math.max(1, phase.epochs * stepsPerEpoch);
  if (schedule.kind === 'one-cycle') return oneCycle(phase.lr, schedule, epoch * stepsPerEpoch + step, total);
  if (schedule.kind !== 'cosine') {
    throw new Error(`phase '${phase.name}': schedule.kind should be 'constant', 'cosine' or 'one-cycle', got ${JSON.stringify((schedule as { kind: unknown }).kind)}`);
  }
  const warmup = Math.min(total, Math.round((schedule.warmupEpochs ?? 0) * stepsPerEpoch));
  const t = epoch * stepsPerEpoch + step; // steps already taken
  if (t < warmup) return (phase.lr * (t + 1)) / warmup;
  const minLr = schedule.minLr ?? 0;
  // The phase's last step runs at minLr.
  const decaySteps = Math.max(1, total - warmup - 1);
  const progress = Math.min(1, (t - warmup) / decaySteps);
  return minLr + 0.5 * (phase.lr - minLr) * (1 + Math.cos(Math.PI * progress));
}

/** From `from` (at t = 0) to `to` (at t = 1) along half a cosine. */
function cosineBetween(from: number, to: number, t: number): number {
  return to + ((from - to) * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, t))))) / 2;
}

function oneCycle(lr: number, s: { pctStart?: number; divFactor?: number; finalDivFactor?: number }, t: number, total: number): number {
  const start = lr / (s.divFactor ?? 25);
  const end = start / (s.finalDivFactor ?? 1e5);
  const up = Math.max(1, Math.round((s.pctStart ?? 0.25) * total));
  if (t < up) return cosineBetween(start, lr, t / up);
  return cosineBetween(lr, end, (t - up) / Math.max(1, total - up - 1));
}
