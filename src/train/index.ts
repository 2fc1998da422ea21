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
import { resolveInitFrom } from '../model/init-from';
import { stableWeights, type TrainableModel } from '../model/split';
import { createProgress, ProgressMode } from './progress';
import { HISTORY_FILES, historyTable, EpochRow, writeHistory } from './history';
import { latestCheckpoint, readCheckpointState, saveCheckpoint, type TrainState } from './checkpoint';
import { ImageBatchSource, LoopDeps, runPhases } from './trainer';
import { balancedClassWeights, type Callback } from './loop';
import { countPerClass, type SkippedFile } from '../data/types';
import { TrainingDivergedError } from './callbacks/divergence';
import { lockRunFolder, readTrainState, writeTrainState, type DivergedAt } from './run-state';
import { buildTrainModel, loadTrainData, loopContext, type TrainData } from './setup';
import { stopOnInterrupt, TrainingInterruptedError } from './interrupt';
import { inferenceEngine } from '../model/engine';
import { inKernel } from '../display';
import { FeaturesInterruptedError } from './feature-cache';
import { phasePlans } from './plan';

// What notebooks and users call (wb.train.*); the stage's internals are imported by path (tests too).
export { lrFind, lrFindSpec, describeLrFind, type LrFindResult, type LrFindOptions } from './lr-find';
export { phasePlan, phasePlans, type PhasePlan } from './plan';
export { learningRateAt } from './schedule';
export { historyTable, HISTORY_FILES, type EpochRow } from './history';
export { trainingCurvesSpec } from './curves';
export { latestCheckpoint, readCheckpointState } from './checkpoint';
export { TrainingInterruptedError } from './interrupt';
export { TrainingDivergedError } from './callbacks/divergence';
export { readTrainState, RunFolderBusyError, TRAIN_STATE_FILE, LOCK_FILE } from './run-state';
export type { Callback } from './loop';
export type { ProgressMode } from './progress';

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
  /** How the validation images were held out: per class (image folders) or one permutation; absent in older runs (random). */
  valSplit?: 'stratified' | 'random';
  /** Training images per class (after the validation split): the imbalance the report shows. */
  trainPerClass?: number[];
  /** The loss weight of each class when train.classWeights was set. */
  classWeights?: number[];
  /** Image files left out as unreadable (data.skipUnreadable), each with the reason. */
  unreadableFiles?: SkippedFile[];
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

/** One sentence for a train() result: how it ended, the epochs and the last validation accuracy. */
export function describeResult(r: Pick<TrainResult, 'status' | 'epochs' | 'finalValAccuracy' | 'history'>): string {
  const val = r.finalValAccuracy === null ? 'no validation accuracy' : `validation accuracy ${(100 * r.finalValAccuracy).toFixed(2)}%`;
  return `${r.status}: ${r.epochs} epochs, ${val}; history ${r.history}`;
}

/** The vector extension that matters most for speed, from the CPU flags (the full list stays in train-summary.json). */
function widestVector(flags: string[]): string {
  if (flags.some((f) => f.startsWith('avx512'))) return 'AVX-512';
  if (flags.includes('avx2')) return 'AVX2';
  if (flags.includes('avx')) return 'AVX';
  return flags.some((f) => f.startsWith('asimd') || f === 'neon') ? 'NEON' : flags.length ? 'SSE' : 'unknown';
}

/** train-summary.json of a run as a small two-column table (what notebook 04 ends with). */
export function summaryTable(runDir: string): Record<string, string | number>[] {
  const s = readTrainSummary(runDir);
  if (!s) return [{ field: 'status', value: 'not trained yet (no train-summary.json)' }];
  const rows: Record<string, string | number>[] = [
    { field: 'status', value: s.status + (s.diverged ? ` (${JSON.stringify(s.diverged)})` : '') },
    { field: 'epochs', value: s.epochs },
    { field: 'validation accuracy', value: s.finalValAccuracy === null ? '-' : `${(100 * s.finalValAccuracy).toFixed(2)}% (${s.valSource})` },
    { field: 'phases', value: s.phases.map((p) => (p.ran ? `${p.name} ${p.epochs}` : `${p.name} skipped (${p.reason})`)).join(', ') },
    { field: 'training time', value: `${(s.wallSeconds / 60).toFixed(1)} min` },
    { field: 'backend', value: `${s.backend}${s.threads > 1 ? `, ${s.threads} threads` : ''}${s.featureEngine ? `; cached features on ${s.featureEngine}` : ''}` },
  ];
  if (s.machine) {
    rows.push({ field: 'machine', value: `${s.machine.cpuModel ?? 'CPU'}, ${s.machine.cpus} cores, ${widestVector(s.machine.cpuFlags)}, ${s.machine.memoryGiB} GiB` });
  }
  return rows;
}

/** One row per phase of a profile: what trains, on what, how, and for how long (the notebook's table). */
export function phasesTable(profile: Profile): Record<string, string | number>[] {
  return phasePlans(profile).map((p) => ({
    phase: `${p.index + 1}. ${p.name}`,
    trains: p.trains,
    input: p.input,
    batchNorm: p.batchNorm,
    optimizer: p.optimizer,
    lr: p.rate,
    epochs: p.epochs,
    batch: p.batchSize,
    when: p.when,
  }));
}

/**
 * Trains the session's profile in its run folder. Resumes from the last checkpoint (each epoch
 * ends up in the history once, with the numbers of an uninterrupted run on the same backend);
 * a finished run reports itself and trains no further (start another with session({newRun: true})).
 */
export async function train(s: Session, opts: TrainOptions = {}): Promise<TrainResult> {
  // A model.initFrom that names nothing is refused before a new run's folder is made.
  if (s.profile.model.initFrom && !opts.built) resolveInitFrom(s.profile.model.initFrom);
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
    ...(data.valSplit ? { valSplit: data.valSplit } : {}),
    trainPerClass: countPerClass(data.train, data.classes.length),
    ...(s.profile.train.classWeights === 'balanced' ? { classWeights: balancedClassWeights(countPerClass(data.train, data.classes.length)) } : {}),
    ...(data.skipped ? { unreadableFiles: data.skipped } : {}),
    status: diverged ? 'diverged' : 'finished',
    ...(diverged ? { diverged } : {}),
    finished: new Date().toISOString(),
  };
}

async function trainLocked(s: Session, opts: TrainOptions): Promise<TrainResult> {
  const { profile, runDir } = s;
  const files = { history: path.join(runDir, HISTORY_FILES.epochsCsv), historyParquet: path.join(runDir, HISTORY_FILES.epochsParquet) };
  // Whether the run finished is train-state.json's to say (run-state owns the status); a run from
  // before that file has only its summary. No checkpoint is read (or hashed) here: the resume does that once.
  const status = opts.resume === false ? undefined : (readTrainState(runDir)?.status ?? readTrainSummary(runDir)?.status);
  const finished = status === 'finished' ? readTrainSummary(runDir) : undefined;
  if (finished) {
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
  const startLines: string[] = [];
  // model.initFrom says which trained weights the model starts from, after the line naming the run.
  const built = opts.built ?? (await buildTrainModel(profile, numClasses, { log: (line) => startLines.push(line) }));
  const totalEpochs = profile.train.phases.reduce((n, p) => n + p.epochs, 0);
  const progress = createProgress(opts.progress ?? 'auto', totalEpochs);
  progress.message(
    `training '${profile.name}' in ${runDir} on ${s.backend.choice}: ${data.train.count} training images, ` +
      `${data.val.count} validation images (${data.valSource === 'test' ? 'the test set, as the article does' : 'held out from training'})`,
  );
  for (const line of startLines) progress.message(line);
  // Kernel -> Interrupt or Ctrl-C: stop after the current batch (./interrupt); the caller's signal too.
  const interrupt = new AbortController();
  const sigint = await stopOnInterrupt(() => {
    progress.message('interrupt received: finishing the current batch, then writing a checkpoint');
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
    const rerun = inKernel() ? 'rerun this cell to resume' : 'rerun to resume';
    const err = new TrainingInterruptedError(at?.epoch ?? state.epoch + 1, at?.batch ?? 0, checkpoint, `${outcome.stopReason ?? 'interrupted'}: ${rerun} ${from}`);
    progress.interrupted(err.message);
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
  // The final weights (best ones restored) as the last checkpoint; "finished" itself is train-state.json's.
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
