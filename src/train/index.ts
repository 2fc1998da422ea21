/**
 * Stage 04: train a profile's phases in its run folder, with checkpoints and resume.
 *
 *   const s = await wb.session({ profile: 'smoke' });
 *   const r = await wb.train.train(s);      // resumes the run from its last checkpoint if any
 *
 * Writes into runDir: history.csv / history.parquet (one row per epoch), history-batches.csv /
 * .parquet (one row per batch), checkpoints/, model/ (TF.js layers format), train-summary.json,
 * train-state.json (running | interrupted | diverged | finished).
 */
import { machineInfo, type Machine } from '../backend/machine';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type pl from 'nodejs-polars';
import type { Session } from '../session';
import type { Profile } from '../config';
import { readJsonFile, writeJsonAtomic } from '../fsutil';
import { saveModel } from '../model';
import { stableWeights, type TrainableModel } from '../model/split';
import { createProgress, ProgressMode } from './progress';
import { HISTORY_FILES, historyTable, EpochRow, writeHistory } from './history';
import { latestCheckpoint, readCheckpointState, saveCheckpoint, type TrainState } from './checkpoint';
import { ImageBatchSource, LoopDeps, runPhases } from './trainer';
import type { Callback } from './loop';
import { TrainingDivergedError } from './callbacks/divergence';
import { lockRunFolder, writeTrainState, type DivergedAt } from './run-state';
import { buildTrainModel, loadTrainData, loopContext, type TrainData } from './setup';
import { stopOnInterrupt, TrainingInterruptedError } from './interrupt';
import { inferenceEngine } from '../model/engine';
import { FeaturesInterruptedError } from './feature-cache';

export * from './schedule';
export * from './optimizer';
export * from './history';
export * from './curves';
export * from './checkpoint';
export * from './feature-cache';
export * from './progress';
export * from './trainer';
export * from './loop';
export * from './interrupt';
export * from './run-state';
export * from './lr-find';
export * from './setup';
export { TrainingDivergedError, nonFiniteWeights } from './callbacks/divergence';
export { stableWeights, cacheSplit, type CacheSplit } from '../model/split';
export { installTrainingSwitch, withTraining } from '../model/training-mode';
export { trainCommand } from './command';

export interface TrainOptions {
  /** auto (default): live display in a notebook, a bar in a terminal, lines when piped. */
  progress?: ProgressMode;
  /** A model to train instead of building the profile's (tests). */
  built?: TrainableModel;
  /** Data instead of loading the profile's. */
  data?: TrainData;
  /** Continue from the last checkpoint (default true); false starts the run over. */
  resume?: boolean;
  /** Stop after this many epochs in this call, as an interruption would (tests, notebooks). */
  stopAfterEpochs?: number;
  /** Called after each epoch's checkpoint. */
  onEpoch?: (row: EpochRow) => void;
  /** More loop callbacks (src/train/loop.ts Callback), after the built-in ones. */
  callbacks?: Callback[];
  /** Stop at the next batch when it fires (Kernel -> Interrupt), with a mid-epoch checkpoint the resume goes on from. */
  signal?: AbortSignal;
  /** Batches for the full model; default: the preprocess stage's batches(). */
  imageBatches?: ImageBatchSource;
  /** The engine for the frozen part of cached phases (default: TF.js); see LoopDeps.featureExtractor. */
  featureExtractor?: LoopDeps['featureExtractor'];
  /** Skip saving the final model (tests with stand-in models). */
  saveModel?: boolean;
}

export interface TrainSummary {
  profile: string;
  epochs: number;
  finalValAccuracy: number | null;
  /** Trainable parameter count of each phase that ran. */
  trainableByPhase: Record<string, number>;
  phases: { name: string; ran: boolean; reason: string; epochs: number }[];
  wallSeconds: number;
  backend: string;
  /** Threads the backend computed on (wasm: XNNPACK threads; 1 elsewhere). */
  threads: number;
  /** The engine that computed the cached features, when a phase trained on them ('onnx' or 'tfjs'). */
  featureEngine?: string;
  /** The CPU (model, cores, vector flags) and memory of the machine that finished the run: timings depend on them. */
  machine?: Machine;
  valSource: string;
  /** finished, or diverged (then `diverged` says where; the last good checkpoint is kept). */
  status: 'finished' | 'diverged';
  diverged?: DivergedAt;
  /** When the run finished or stopped. */
  finished: string;
}

export interface TrainResult {
  runDir: string;
  /** finished now, already finished before this call (nothing trained), or stopped by stopAfterEpochs. */
  status: 'finished' | 'already-finished' | 'interrupted';
  epochs: number;
  finalValAccuracy: number | null;
  /** history.csv */
  history: string;
  historyParquet: string;
  summary?: TrainSummary;
  /** The trained model (absent for 'already-finished': load it from runDir/model). */
  built?: TrainableModel;
  resumedFrom?: string;
  /** Broken checkpoints the resume skipped, with the reason (it fell back to an older one). */
  skipped?: { path: string; why: string }[];
}

export const SUMMARY_FILE = 'train-summary.json';

/** The run's training summary when it finished, else undefined. */
export function readTrainSummary(runDir: string): TrainSummary | undefined {
  const file = path.join(runDir, SUMMARY_FILE);
  return fs.existsSync(file) ? readJsonFile<TrainSummary>(file, 'the training summary') : undefined;
}

/** The history of a run as a polars DataFrame: one row per epoch, or per batch. */
export function history(runDir: string, which: 'epochs' | 'batches' = 'epochs'): pl.DataFrame {
  return historyTable(runDir, which);
}

/** One row per phase of a profile: what trains, how, and for how long (for a table in the notebook). */
export function phasesTable(profile: Profile): Record<string, string | number>[] {
  return profile.train.phases.map((p, i) => ({
    phase: `${i + 1}. ${p.name}`,
    trains: p.trainable === 'all' ? 'whole model' : p.trainable === 'head' ? 'head only (base frozen)' : `base from ${p.trainable.from}, head`,
    batchNorm: p.batchNorm === 'frozen' || p.trainable === 'head' ? 'inference' : 'training',
    optimizer: `${p.optimizer}${p.momentum ? ` m=${p.momentum}` : ''}${p.weightDecay ? ` wd=${p.weightDecay}` : ''}`,
    lr: p.schedule?.kind === 'cosine' ? `${p.lr} cosine (warm-up ${p.schedule.warmupEpochs ?? 0} ep)` : p.schedule?.kind === 'one-cycle' ? `${p.lr} one-cycle` : String(p.lr),
    epochs: p.epochs,
    batch: p.batchSize ?? profile.train.batchSize,
    features: p.trainable === 'head' && profile.train.featureCache ? 'cached' : profile.train.augment || profile.train.photoAugment ? 'augmented images' : 'images',
    when: p.runIf ? `native backend${p.runIf.maxEstimatedMinutes ? ` or < ${p.runIf.maxEstimatedMinutes} min measured` : ''}` : 'always',
  }));
}

/**
 * Trains the session's profile in its run folder. Resumes from the last checkpoint (each epoch
 * ends up in the history once, with the numbers of an uninterrupted run on the same backend);
 * a finished run reports itself and trains no further (start another with session({newRun: true})).
 */
export async function train(s: Session, opts: TrainOptions = {}): Promise<TrainResult> {
  const release = lockRunFolder(s.runDir);
  try {
    return await trainLocked(s, opts);
  } finally {
    release();
  }
}

function summaryOf(s: Session, data: TrainData, state: TrainState, diverged?: DivergedAt): TrainSummary {
  const rows = state.epochRows;
  return {
    profile: s.profile.name,
    epochs: state.epoch,
    finalValAccuracy: rows.length ? rows[rows.length - 1].val_accuracy : null,
    trainableByPhase: state.trainableByPhase,
    phases: s.profile.train.phases.map((p, i) => ({
      name: p.name,
      ran: state.decisions[i]?.run ?? false,
      reason: state.decisions[i]?.reason ?? 'not reached',
      epochs: rows.filter((r) => r.phase_index === i).length,
    })),
    wallSeconds: Math.round(state.wallSeconds * 10) / 10,
    backend: s.backend.choice,
    threads: s.backend.threads,
    machine: machineInfo(),
    // Cached features come from the inference engine (ONNX Runtime when it loads), not the training backend.
    ...(rows.some((r) => r.cached) ? { featureEngine: inferenceEngine({ quiet: true }).name } : {}),
    valSource: data.valSource,
    status: diverged ? 'diverged' : 'finished',
    ...(diverged ? { diverged } : {}),
    finished: new Date().toISOString(),
  };
}

async function trainLocked(s: Session, opts: TrainOptions): Promise<TrainResult> {
  const { profile, runDir } = s;
  const files = { history: path.join(runDir, HISTORY_FILES.epochsCsv), historyParquet: path.join(runDir, HISTORY_FILES.epochsParquet) };
  const last = opts.resume === false ? undefined : latestCheckpoint(runDir);
  const finished = readTrainSummary(runDir);
  if (last && finished && finished.status !== 'diverged' && readCheckpointState(last).done) {
    const progress = createProgress(opts.progress ?? 'auto', finished.epochs);
    progress.message(
      `run ${runDir} already finished (${finished.epochs} epochs, val accuracy ${finished.finalValAccuracy?.toFixed(4)}); ` +
        `nothing trained. For a new run: session({ newRun: true }) or the CLI without --resume.`,
    );
    progress.end();
    return { runDir, status: 'already-finished', epochs: finished.epochs, finalValAccuracy: finished.finalValAccuracy, summary: finished, ...files };
  }
  if (opts.resume === false) fs.rmSync(path.join(runDir, 'checkpoints'), { recursive: true, force: true });
  // A summary of an earlier attempt (diverged, or a run started over) is not this run's.
  fs.rmSync(path.join(runDir, SUMMARY_FILE), { force: true });

  const data = opts.data ?? (await loadTrainData(s));
  const numClasses = data.classes.length;
  const built = opts.built ?? (await buildTrainModel(profile, numClasses));
  const totalEpochs = profile.train.phases.reduce((n, p) => n + p.epochs, 0);
  const progress = createProgress(opts.progress ?? 'auto', totalEpochs);
  progress.message(
    `training '${profile.name}' in ${runDir} on ${s.backend.choice}: ${data.train.count} training images, ` +
      `${data.val.count} validation images (${data.valSource === 'test' ? 'the test set, as the article does' : 'held out from training'})`,
  );
  // Kernel -> Interrupt or Ctrl-C: stop after the current batch (./interrupt); the caller's signal too.
  const interrupt = new AbortController();
  const sigint = await stopOnInterrupt(() => {
    progress.message('interrupt: stopping after this batch');
    interrupt.abort();
  });
  const signal = opts.signal ? AbortSignal.any([opts.signal, interrupt.signal]) : interrupt.signal;
  let outcome;
  try {
    outcome = await runPhases({
      ...loopContext(s, data, built, progress, { imageBatches: opts.imageBatches, featureExtractor: opts.featureExtractor }),
      resume: opts.resume,
      stopAfterEpochs: opts.stopAfterEpochs,
      signal,
      onEpoch: opts.onEpoch,
      callbacks: opts.callbacks,
    });
  } catch (e) {
    if (e instanceof FeaturesInterruptedError) {
      progress.end();
      throw TrainingInterruptedError.during(e.what, latestCheckpoint(runDir) ?? undefined);
    }
    if (e instanceof TrainingDivergedError && e.at) {
      // The complete epochs before the divergence, and where it happened: predict and report read this.
      const state = e.state ?? (e.checkpoint ? readCheckpointState(e.checkpoint) : undefined);
      if (state) writeJsonAtomic(path.join(runDir, SUMMARY_FILE), summaryOf(s, data, state, e.at));
      progress.end();
    }
    throw e;
  } finally {
    sigint.dispose();
  }
  const { state } = outcome;
  const rows = state.epochRows;
  const finalValAccuracy = rows.length ? rows[rows.length - 1].val_accuracy : null;
  const at = outcome.stoppedAt;
  if (outcome.interrupted && interrupt.signal.aborted) {
    // A person interrupted: the cell (or command) ends with an error saying where, so queued cells do not run.
    const checkpoint = latestCheckpoint(runDir) ?? null;
    const from = checkpoint ? `from there (checkpoint ${path.basename(checkpoint)})` : '(no checkpoint yet: it starts over)';
    const err = new TrainingInterruptedError(at?.epoch ?? state.epoch + 1, at?.batch ?? 0, checkpoint, `${outcome.stopReason ?? 'interrupted'}: rerun to resume ${from}`);
    progress.message(err.message);
    progress.end();
    throw err;
  }
  if (outcome.interrupted) {
    const where = at ? `in epoch ${at.epoch} after batch ${at.batch} (a mid-epoch checkpoint)` : `after epoch ${state.epoch}`;
    progress.message(`stopped ${where}; resume with train() on the same run folder`);
    progress.end();
    return { runDir, status: 'interrupted', epochs: state.epoch, finalValAccuracy, built, resumedFrom: outcome.resumedFrom, skipped: outcome.skipped, ...files };
  }
  if (opts.saveModel !== false) await saveModel(built.model, path.join(runDir, 'model'));
  const summary = summaryOf(s, data, state);
  writeHistory(runDir, state.epochRows, state.batchRows);
  writeJsonAtomic(path.join(runDir, SUMMARY_FILE), summary);
  state.done = true;
  await saveCheckpoint(
    runDir,
    state,
    stableWeights(built.model).map((w) => ({ name: w.originalName ?? w.name, tensor: w.read() })),
    [],
    profile.train.checkpointsKept ?? 2,
  );
  writeTrainState(runDir, 'finished', { epoch: state.epoch });
  progress.message(`finished: ${state.epoch} epochs, val accuracy ${finalValAccuracy?.toFixed(4)}, ${summary.wallSeconds}s; model in ${path.join(runDir, 'model')}`);
  progress.end();
  return { runDir, status: 'finished', epochs: state.epoch, finalValAccuracy, summary, built, resumedFrom: outcome.resumedFrom, skipped: outcome.skipped, ...files };
}
