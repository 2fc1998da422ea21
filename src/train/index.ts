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
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type pl from 'nodejs-polars';
import type { Session } from '../session';
import type { Profile } from '../config';
import { writeJsonAtomic } from '../session';
import type { Dataset, ImageSet } from '../data/types';
import { Random } from '../random';
import { createProgress, ProgressMode } from './progress';
import { HISTORY_FILES, readHistory, EpochRow, writeHistory } from './history';
import { latestCheckpoint, readCheckpointState, saveCheckpoint } from './checkpoint';
import { ImageBatchSource, LoopDeps, runPhases, stableWeights, TrainableModel } from './trainer';
import { withSeededMathRandomAsync } from './seeded';
import { stopOnInterrupt, TrainingInterruptedError } from './interrupt';

export * from './schedule';
export * from './optimizer';
export * from './history';
export * from './checkpoint';
export * from './feature-cache';
export * from './progress';
export * from './trainer';
export * from './training-mode';
export * from './interrupt';
export { trainCommand } from './command';

export interface TrainData {
  train: ImageSet;
  val: ImageSet;
  classes: string[];
  /** Where validation images come from: a held-out split of the training set, or the test set. */
  valSource: 'split' | 'test';
}

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
  /** Batches for the full model; default: the preprocess stage's batches(). */
  imageBatches?: ImageBatchSource;
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
  valSource: string;
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
}

export const SUMMARY_FILE = 'train-summary.json';

/** The run's training summary when it finished, else undefined. */
export function readTrainSummary(runDir: string): TrainSummary | undefined {
  const file = path.join(runDir, SUMMARY_FILE);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as TrainSummary) : undefined;
}

/** The epoch history of a run as a polars DataFrame. */
export function history(runDir: string, which: 'epochs' | 'batches' = 'epochs'): pl.DataFrame {
  return readHistory(runDir, which);
}

/** One row per phase of a profile: what trains, how, and for how long (for a table in the notebook). */
export function phasesTable(profile: Profile): Record<string, string | number>[] {
  return profile.train.phases.map((p, i) => ({
    phase: `${i + 1}. ${p.name}`,
    trains: p.trainable === 'all' ? 'whole model' : p.trainable === 'head' ? 'head only (base frozen)' : `base from ${p.trainable.from}, head`,
    batchNorm: p.batchNorm === 'frozen' || p.trainable === 'head' ? 'inference' : 'training',
    optimizer: `${p.optimizer}${p.momentum ? ` m=${p.momentum}` : ''}${p.weightDecay ? ` wd=${p.weightDecay}` : ''}`,
    lr: p.schedule?.kind === 'cosine' ? `${p.lr} cosine (warm-up ${p.schedule.warmupEpochs ?? 0} ep)` : String(p.lr),
    epochs: p.epochs,
    batch: p.batchSize ?? profile.train.batchSize,
    features: p.trainable === 'head' && profile.train.featureCache ? 'cached' : profile.train.augment ? 'augmented images' : 'images',
    when: p.runIf ? `native backend${p.runIf.maxEstimatedMinutes ? ` or < ${p.runIf.maxEstimatedMinutes} min measured` : ''}` : 'always',
  }));
}

/** Vega-Lite spec of a run's loss and accuracy curves (train and validation, phase boundaries marked). */
export function curvesSpec(runDir: string): Record<string, unknown> {
  const { readHistory: read, trainingCurvesSpec } = require('../results/charts') as typeof import('../results/charts');
  return trainingCurvesSpec(read(runDir));
}

/** The profile's data: the training set split seeded into train/val, or the test set as validation when valFraction is 0. */
export async function loadTrainData(s: Session): Promise<TrainData> {
  const { loadDataset } = require('../data') as typeof import('../data');
  const { splitTrainVal } = require('../preprocess') as typeof import('../preprocess');
  const ds: Dataset = await loadDataset(s.profile.data);
  if (s.profile.data.valFraction > 0) {
    const { train, val } = splitTrainVal(ds.train, s.profile.data.valFraction, s.profile.train.seed);
    return { train, val, classes: ds.classes, valSource: 'split' };
  }
  if (!ds.test) throw new Error(`profile '${s.profile.name}': data.valFraction is 0 but the data set has no test set to validate on`);
  return { train: ds.train, val: ds.test, classes: ds.classes, valSource: 'test' };
}

function defaultImageBatches(s: Session, built: TrainableModel, numClasses: number): ImageBatchSource {
  const { batches } = require('../preprocess') as typeof import('../preprocess');
  return (set, o) => batches(set, { ...o, mode: built.preprocess as never, numClasses });
}

function defaultSetTrainable(built: TrainableModel, spec: boolean | { from: string }): void {
  const { setBaseTrainable } = require('../model') as typeof import('../model');
  setBaseTrainable(built, spec);
}

/**
 * Trains the session's profile in its run folder. Resumes from the last checkpoint (each epoch
 * ends up in the history once, with the numbers of an uninterrupted run on the same backend);
 * a finished run reports itself and trains no further (start another with session({newRun: true})).
 */
export async function train(s: Session, opts: TrainOptions = {}): Promise<TrainResult> {
  const { profile, runDir } = s;
  const files = { history: path.join(runDir, HISTORY_FILES.epochsCsv), historyParquet: path.join(runDir, HISTORY_FILES.epochsParquet) };
  const last = opts.resume === false ? undefined : latestCheckpoint(runDir);
  const finished = readTrainSummary(runDir);
  if (last && finished && readCheckpointState(last).done) {
    const progress = createProgress(opts.progress ?? 'auto', finished.epochs);
    progress.message(
      `run ${runDir} already finished (${finished.epochs} epochs, val accuracy ${finished.finalValAccuracy?.toFixed(4)}); ` +
        `nothing trained. For a new run: session({ newRun: true }) or the CLI without --resume.`,
    );
    progress.end();
    return { runDir, status: 'already-finished', epochs: finished.epochs, finalValAccuracy: finished.finalValAccuracy, summary: finished, ...files };
  }
  if (opts.resume === false) fs.rmSync(path.join(runDir, 'checkpoints'), { recursive: true, force: true });

  const data = opts.data ?? (await loadTrainData(s));
  const numClasses = data.classes.length;
  let built = opts.built;
  if (!built) {
    const { buildModel } = require('../model') as typeof import('../model');
    // Seeded initialisers: tfjs draws their seeds from Math.random().
    built = await withSeededMathRandomAsync(new Random(profile.train.seed + 1), () =>
      buildModel(profile.model, numClasses, { storedSize: profile.data.imageSize, quiet: true }),
    );
  }
  const totalEpochs = profile.train.phases.reduce((n, p) => n + p.epochs, 0);
  const progress = createProgress(opts.progress ?? 'auto', totalEpochs);
  const deps: LoopDeps = {
    setTrainable: defaultSetTrainable,
    imageBatches: opts.imageBatches ?? defaultImageBatches(s, built, numClasses),
  };
  progress.message(
    `training '${profile.name}' in ${runDir} on ${s.backend.choice}: ${data.train.count} training images, ` +
      `${data.val.count} validation images (${data.valSource === 'test' ? 'the test set, as the article does' : 'held out from training'})`,
  );
  // Kernel -> Interrupt or Ctrl-C: stop after the current batch with a checkpoint (./interrupt).
  const stop = await stopOnInterrupt(() => progress.message('interrupt: stopping after this batch and writing a checkpoint'));
  const outcome = await runPhases({
    profile,
    runDir,
    backend: s.backend,
    built,
    train: data.train,
    val: data.val,
    numClasses,
    progress,
    deps,
    resume: opts.resume,
    stopAfterEpochs: opts.stopAfterEpochs,
    onEpoch: opts.onEpoch,
    shouldStop: () => stop.requested,
  }).finally(() => stop.dispose());
  const { state } = outcome;
  const rows = state.epochRows;
  const finalValAccuracy = rows.length ? rows[rows.length - 1].val_accuracy : null;
  if (outcome.stoppedAt) {
    const err = new TrainingInterruptedError(outcome.stoppedAt.epoch, outcome.stoppedAt.batch, outcome.stoppedAt.checkpoint);
    progress.message(err.message);
    progress.end();
    throw err;
  }
  if (outcome.interrupted) {
    progress.message(`stopped after epoch ${state.epoch}; resume with train() on the same run folder`);
    progress.end();
    return { runDir, status: 'interrupted', epochs: state.epoch, finalValAccuracy, built, resumedFrom: outcome.resumedFrom, ...files };
  }
  if (opts.saveModel !== false) {
    const { saveModel } = require('../model') as typeof import('../model');
    await saveModel(built.model, path.join(runDir, 'model'));
  }
  const summary: TrainSummary = {
    profile: profile.name,
    epochs: state.epoch,
    finalValAccuracy,
    trainableByPhase: state.trainableByPhase,
    phases: profile.train.phases.map((p, i) => ({
      name: p.name,
      ran: state.decisions[i]?.run ?? false,
      reason: state.decisions[i]?.reason ?? 'not reached',
      epochs: rows.filter((r) => r.phase_index === i).length,
    })),
    wallSeconds: Math.round(state.wallSeconds * 10) / 10,
    backend: s.backend.choice,
    threads: s.backend.threads,
    valSource: data.valSource,
    finished: new Date().toISOString(),
  };
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
  writeJsonAtomic(path.join(runDir, 'train-state.json'), { status: 'finished', updated: new Date().toISOString(), epoch: state.epoch });
  progress.message(`finished: ${state.epoch} epochs, val accuracy ${finalValAccuracy?.toFixed(4)}, ${summary.wallSeconds}s; model in ${path.join(runDir, 'model')}`);
  progress.end();
  void tf;
  return { runDir, status: 'finished', epochs: state.epoch, finalValAccuracy, summary, built, resumedFrom: outcome.resumedFrom, ...files };
}
