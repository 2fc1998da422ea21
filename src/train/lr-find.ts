/**
 * The learning-rate finder (fastai lr_find, after Smith 2015): train one phase for a bounded number
 * of batches while the rate grows exponentially from minLr to maxLr, record the loss of each batch
 * (smoothed as fastai does: an exponential moving average, debiased), stop early once the smoothed
 * loss passes stopFactor x its minimum, and suggest a rate.
 *
 * Suggestion rule: fastai's valley (its default since 2.4) - halfway along the longest stretch over
 * which the smoothed loss keeps falling; steep (the steepest descent before the minimum) and
 * minimum/10 are computed beside it.
 *
 * Built on the loop core: the phase is prepared as training would (trainable set, cached features,
 * optimizer), and fitPhase runs it with a callback that sets the rate and stops the sweep. Every
 * weight is restored afterwards and the optimizer is thrown away; nothing is written to the run
 * folder (its checkpoint, when there is one, is only read: the sweep starts from its weights).
 */
import * as tf from '@tensorflow/tfjs';
import type { Session } from '../session';
import { VEGA_LITE_SCHEMA, type VegaLiteSpec } from '../display';
import { Random } from '../random';
import { snapshotWeights, stableWeights, type TrainableModel } from '../model/split';
import { installTrainingSwitch } from '../model/training-mode';
import { FitState, fitPhase, type BatchStream, type Callback, type PhaseRun, type StepLogs } from './loop';
import type { BatchRow } from './history';
import { createProgress, type ProgressMode } from './progress';
import { freshState, preparePhase, type ImageBatchSource } from './trainer';
import { resumeFromCheckpoint } from './callbacks/checkpointing';
import { lockRunFolder } from './run-state';
import { buildTrainModel, loadTrainData, loopContext, type TrainData } from './setup';
import { resolveInitFrom } from '../model/init-from';

export interface LrFindOptions {
  /** The profile's phase to sweep (0-based, default 0). */
  phase?: number;
  minLr?: number;
  maxLr?: number;
  /** Batches in the sweep at most (default 100). */
  iterations?: number;
  /** Stop once the smoothed loss exceeds this multiple of its minimum (default 4). */
  stopFactor?: number;
  progress?: ProgressMode;
  built?: TrainableModel;
  data?: TrainData;
  imageBatches?: ImageBatchSource;
}

export interface LrPoint {
  lr: number;
  loss: number;
  smoothed: number;
}

export interface LrFindResult {
  phase: string;
  /** The valley rule's rate (fastai's default since 2.4). */
  suggestedLr: number;
  rule: string;
  /** Every rule's rate: valley, steep (the steepest descent) and minimum/10 (the loss minimum's rate over 10). */
  suggestions: { valley: number; steep: number; minimum: number };
  minLr: number;
  maxLr: number;
  points: LrPoint[];
  /** Why the sweep ended. */
  stopped: string;
}

export const LR_RULE = "valley: halfway along the longest stretch over which the smoothed loss keeps falling (fastai's default)";

/** As fastai's suggestion functions: the first tenth of the sweep (the average still settling) and the last 5 points (the blow-up) are left out. */
function usablePoints(points: LrPoint[]): LrPoint[] {
  if (points.length === 0) throw new Error('lr-find: no points to suggest a rate from');
  const start = Math.floor(points.length / 10);
  return points.length - start > 8 ? points.slice(start, points.length - 5) : points;
}

/**
 * fastai's `valley`: the longest decreasing run of the smoothed loss (a longest decreasing
 * subsequence), and the rate halfway along it (index start + sections + sections/2, with sections
 * a third of its length). Robust where the loss is flat and noisy before it blows up
 * (a trained head being fine-tuned): there `steep` picks the noise.
 */
export function valleyLr(points: LrPoint[]): number {
  const usable = usablePoints(points);
  const loss = usable.map((p) => p.smoothed);
  const run = loss.map(() => 1); // longest decreasing subsequence ending at each point
  let end = 0;
  let start = 0;
  for (let i = 1; i < loss.length; i++) {
    for (let j = 0; j < i; j++) {
      if (loss[i] < loss[j] && run[i] < run[j] + 1) run[i] = run[j] + 1;
      if (run[end] < run[i]) {
        end = i;
        start = end - run[end];
      }
    }
  }
  const sections = (end - start) / 3;
  const at = start + Math.floor(sections) + Math.floor(sections / 2);
  return usable[Math.min(usable.length - 1, Math.max(0, at))].lr;
}

/** The rate at which the smoothed loss falls fastest, before its minimum (fastai's `steep`). */
export function suggestLr(points: LrPoint[]): number {
  const usable = usablePoints(points);
  let minAt = 0;
  usable.forEach((p, i) => {
    if (p.smoothed < usable[minAt].smoothed) minAt = i;
  });
  const upTo = usable.slice(0, minAt + 1);
  if (upTo.length < 2) return usable[minAt].lr / 10;
  let best = 0;
  let bestSlope = Infinity;
  for (let i = 0; i + 1 < upTo.length; i++) {
    const slope = (upTo[i + 1].smoothed - upTo[i].smoothed) / (Math.log10(upTo[i + 1].lr) - Math.log10(upTo[i].lr));
    if (slope < bestSlope) {
      bestSlope = slope;
      best = i;
    }
  }
  return upTo[best].lr;
}

/** The loss minimum's rate over 10 (fastai's `minimum`). */
export function minimumLr(points: LrPoint[]): number {
  const usable = usablePoints(points);
  return usable.reduce((m, p) => (p.smoothed < m.smoothed ? p : m)).lr / 10;
}

/** Sets the exponential rate on each batch and records the loss; stops the run when the sweep is over. */
class LrSweep implements Callback {
  readonly points: LrPoint[] = [];
  stopped = '';
  private avg = 0;
  private min = Infinity;
  constructor(
    private readonly iterations: number,
    private readonly stopFactor: number,
    private readonly beta = 0.98,
  ) {}
  onBatchEnd(_run: PhaseRun, s: FitState, row: BatchRow, logs: StepLogs): void {
    const n = this.points.length + 1;
    this.avg = this.beta * this.avg + (1 - this.beta) * logs.loss;
    const smoothed = this.avg / (1 - this.beta ** n);
    if (!Number.isFinite(logs.loss) || !Number.isFinite(logs.outputSum)) {
      this.stopped = `the loss went non-finite at lr ${row.lr.toExponential(2)}`;
    } else {
      this.points.push({ lr: row.lr, loss: logs.loss, smoothed });
      this.min = Math.min(this.min, smoothed);
      if (smoothed > this.stopFactor * this.min) this.stopped = `the smoothed loss passed ${this.stopFactor} x its minimum`;
      else if (n >= this.iterations) this.stopped = `${this.iterations} batches`;
    }
    if (this.stopped) s.stop('run', this.stopped);
  }
}

/** One sentence: the suggested rate, its rule, the other rules' rates and how the sweep ended. */
export function describeLrFind(r: LrFindResult): string {
  return (
    `suggested lr for phase '${r.phase}': ${r.suggestedLr.toExponential(2)} (${r.rule}; steep ${r.suggestions.steep.toExponential(2)}, ` +
    `minimum/10 ${r.suggestions.minimum.toExponential(2)}; ${r.points.length} batches, stopped: ${r.stopped})`
  );
}

/** Sweeps the learning rate of one phase of the session's profile; see the file comment. */
export async function lrFind(s: Session, opts: LrFindOptions = {}): Promise<LrFindResult> {
  const { profile } = s;
  const p = opts.phase ?? 0;
  const phase = profile.train.phases[p];
  if (!phase) throw new Error(`lr-find: profile '${profile.name}' has no phase ${p} (it has ${profile.train.phases.length})`);
  const minLr = opts.minLr ?? 1e-7;
  const maxLr = opts.maxLr ?? 10;
  const iterations = opts.iterations ?? 100;
  if (!(minLr > 0 && maxLr > minLr)) throw new Error(`lr-find: expected 0 < minLr < maxLr, got ${minLr} and ${maxLr}`);
  if (!(Number.isInteger(iterations) && iterations >= 5)) throw new Error(`lr-find: iterations should be an integer >= 5, got ${iterations}`);
  // A model.initFrom that names nothing is refused before a new run's folder is made.
  if (profile.model.initFrom && !opts.built) resolveInitFrom(profile.model.initFrom);
  const runDir = s.runDir; // a new run's folder is made here
  const release = lockRunFolder(runDir);
  const progress = createProgress(opts.progress ?? 'auto', 1);
  try {
    const data = opts.data ?? (await loadTrainData(s));
    const numClasses = data.classes.length;
    const built = opts.built ?? (await buildTrainModel(profile, numClasses, { log: (line) => progress.message(`lr-find: ${line}`) }));
    installTrainingSwitch(built.model);
    const weights = stableWeights(built.model);
    // The weights the phase starts from: the run's checkpoint up to that point; for phase 0 of a run
    // past its start, the model as built (seeded, as the run began). The checkpoint is read (and its
    // checksums verified) once.
    const asBuilt = snapshotWeights(weights);
    const resumed = resumeFromCheckpoint(runDir, weights);
    if (resumed) {
      tf.dispose([...(resumed.optimizer ?? []).map((o) => o.tensor), ...Object.values(resumed.tensors).flat()]);
      const st = resumed.state;
      const atStart = st.phaseIndex < p || (st.phaseIndex === p && st.phaseEpoch === 0 && !st.partial) || (st.phaseIndex === p - 1 && st.phaseFinished);
      if (atStart || p > 0) {
        progress.message(`lr-find: starting from the weights of ${resumed.from}${atStart ? '' : ` (the run is past the start of phase ${p}: its latest weights)`}`);
      } else {
        asBuilt.restore();
        progress.message(`lr-find: the run is past the start of phase 0: sweeping from the initial weights`);
      }
    }
    asBuilt.dispose();
    const saved = snapshotWeights(weights);
    const rng = new Random(profile.train.seed);
    const run = await preparePhase(loopContext(s, data, built, progress, { imageBatches: opts.imageBatches }), p, rng);
    const sweep = new LrSweep(iterations, opts.stopFactor ?? 4);
    const rate = (e: number, step: number) => minLr * (maxLr / minLr) ** Math.min(1, (e * run.stepsPerEpoch + step) / (iterations - 1));
    const sweepRun: PhaseRun = {
      ...run,
      phase: { ...phase, epochs: Math.ceil(iterations / run.stepsPerEpoch) },
      lrAt: rate,
      valBatches: undefined as (() => BatchStream) | undefined,
    };
    const state = new FitState({ ...freshState(profile, s.backend), phaseIndex: p, rngState: rng.state }, rng, new Random(profile.train.seed ^ 0x5eed));
    try {
      progress.message(`lr-find: phase '${phase.name}', lr ${minLr} to ${maxLr} over at most ${iterations} batches`);
      await fitPhase(sweepRun, state, [sweep]);
    } finally {
      run.step.optimizer.optimizer.dispose();
      saved.restore();
      saved.dispose();
    }
    if (!sweep.stopped) sweep.stopped = 'the data ran out';
    const suggestions = { valley: valleyLr(sweep.points), steep: suggestLr(sweep.points), minimum: minimumLr(sweep.points) };
    const suggestedLr = suggestions.valley;
    progress.message(
      `lr-find: suggested lr ${suggestedLr.toExponential(2)} (${LR_RULE}); steep ${suggestions.steep.toExponential(2)}, minimum/10 ${suggestions.minimum.toExponential(2)}; stopped: ${sweep.stopped}`,
    );
    return { phase: phase.name, suggestedLr, rule: LR_RULE, suggestions, minLr, maxLr, points: sweep.points, stopped: sweep.stopped };
  } finally {
    progress.end();
    release();
  }
}

/** Loss against learning rate (log scale), the smoothed curve and the suggested rate. */
export function lrFindSpec(r: LrFindResult): VegaLiteSpec {
  const values = r.points.flatMap((p) => [
    { lr: p.lr, loss: p.loss, series: 'loss' },
    { lr: p.lr, loss: p.smoothed, series: 'smoothed' },
  ]);
  return {
    $schema: VEGA_LITE_SCHEMA,
    title: `learning-rate finder: phase '${r.phase}', suggested ${r.suggestedLr.toExponential(2)}`,
    width: 420,
    height: 240,
    layer: [
      {
        data: { values },
        mark: { type: 'line' },
        encoding: {
          x: { field: 'lr', type: 'quantitative', scale: { type: 'log' }, title: 'learning rate' },
          y: { field: 'loss', type: 'quantitative', scale: { zero: false }, title: 'training loss' },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
      {
        data: { values: [{ lr: r.suggestedLr, label: `suggested ${r.suggestedLr.toExponential(2)}` }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: '#c00' },
        encoding: { x: { field: 'lr', type: 'quantitative' }, tooltip: [{ field: 'label' }] },
      },
    ],
  };
}
