/**
 * The results stage for one run folder: evaluate its saved model on the profile's test set and
 * record the numbers in <runDir>/evaluation.json, which the runs table and predict read back.
 */
import * as path from 'node:path';
import { PreprocessMode, Profile } from '../config';
import { writeJsonAtomic } from '../fsutil';
import { loadDataset } from '../data/dataset';
import { Dataset, ImageSet } from '../data/types';
import { loadModel } from '../model/io';
import { releaseModel } from '../model/engine';
import { splitTrainVal, stratifiedSplit } from '../preprocess/split';
import { readTrainSummary } from '../train/index';
import { live } from '../display';
import { evaluate, Evaluation, EvaluationSummary, summarize } from './evaluate';
import { runPreprocessMode } from './predict';

export interface RunEvaluation {
  dataset: Dataset;
  /** The images scored: the test set, or the validation split when the data has no test set. */
  test: ImageSet;
  testSource: 'test' | 'validation split';
  mode: PreprocessMode;
  evaluation: Evaluation;
  summary: EvaluationSummary;
}

export interface RunEvaluationOptions {
  /** Score horizontal-flip TTA too; default the profile's results.tta. */
  tta?: boolean;
  batchSize?: number;
  /** Show progress (a live line in a notebook, nothing elsewhere). Default true. */
  progress?: boolean;
}

/** Loads the run's data and model/ and evaluates it; the model is disposed afterwards. */
export async function evaluateRun(s: { profile: Profile; runDir: string }, opts: RunEvaluationOptions = {}): Promise<RunEvaluation> {
  const dataset = await loadDataset(s.profile.data);
  let test = dataset.test;
  let testSource: RunEvaluation['testSource'] = 'test';
  if (!test || test.count === 0) {
    // An image folder without test/: score the held-out validation images (never trained on).
    // The same split the training drew: per class when its summary says so (runs before it was recorded: one permutation).
    const trained = readTrainSummary(s.runDir);
    const stratified = trained ? trained.valSplit === 'stratified' : stratifiedSplit(s.profile.data);
    test = splitTrainVal(dataset.train, s.profile.data.valFraction, s.profile.train.seed, { stratified }).val;
    testSource = 'validation split';
    if (test.count === 0) throw new Error(`${s.profile.data.dir}: no test set and data.valFraction is 0, so there is nothing held out to evaluate on`);
  }
  const model = await loadModel(path.join(s.runDir, 'model'));
  const mode = runPreprocessMode(s.runDir, s.profile);
  const line = opts.progress === false ? null : live({ terminalText: false });
  try {
    const evaluation = await evaluate(model, test, {
      mode,
      tta: opts.tta ?? s.profile.results?.tta ?? false,
      batchSize: opts.batchSize ?? s.profile.train.batchSize,
      onProgress: (done, total) => line?.text(`evaluated ${done} / ${total} images`),
    });
    return { dataset, test, testSource, mode, evaluation, summary: summarize(evaluation, dataset.classes) };
  } finally {
    await releaseModel(model); // the ORT session exported from it, if any
    model.dispose();
  }
}

/** Writes <runDir>/evaluation.json (atomically) and returns its path. */
export function saveEvaluation(runDir: string, summary: EvaluationSummary): string {
  const file = path.join(runDir, 'evaluation.json');
  writeJsonAtomic(file, summary);
  return file;
}
