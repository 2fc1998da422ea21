/**
 * Whether a run's training diverged (a NaN or infinite loss stopped it). The trainer records it as
 * `"status": "diverged"` plus `"diverged": {phase, epoch, step, reason}` in <run>/train-summary.json
 * and <run>/train-state.json; predict and the report read it here so that they say so instead of
 * showing the numbers of a broken model.
 */
import * as path from 'node:path';
import { readJsonObjectIfExists } from '../fsutil';

export interface Divergence {
  phase?: string;
  epoch?: number;
  step?: number;
  reason: string;
  /** The file that recorded it. */
  file: string;
}

/** The run's divergence, from train-summary.json, else train-state.json; null when neither records one. */
export function readDivergence(runDir: string): Divergence | null {
  for (const name of ['train-summary.json', 'train-state.json']) {
    const file = path.join(runDir, name);
    const j = readJsonObjectIfExists(file);
    if (!j) continue;
    const d = j.diverged && typeof j.diverged === 'object' ? (j.diverged as Record<string, unknown>) : null;
    if (j.status !== 'diverged' && !d) continue;
    return {
      phase: typeof d?.phase === 'string' ? d.phase : undefined,
      epoch: typeof d?.epoch === 'number' ? d.epoch : undefined,
      step: typeof d?.step === 'number' ? d.step : undefined,
      reason: typeof d?.reason === 'string' && d.reason ? d.reason : 'a non-finite loss',
      file,
    };
  }
  return null;
}

/** One sentence for people: "training diverged in phase head, epoch 3, step 12: loss is NaN". */
export function describeDivergence(d: Divergence): string {
  const where = [d.phase !== undefined ? `phase ${d.phase}` : '', d.epoch !== undefined ? `epoch ${d.epoch}` : '', d.step !== undefined ? `step ${d.step}` : '']
    .filter(Boolean)
    .join(', ');
  return `training diverged${where ? ` in ${where}` : ''}: ${d.reason}`;
}
