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
import { evaluateRobustness, robustnessNames } from './robustness';
import type { CorruptionName } from '../config';

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
  /** Also score the corrupted copies of the test set (true: every corruption); default the profile's results.robustness. */
  robustness?: boolean | CorruptionName[];
  /** Progress lines (e.g. the terminal's stderr) besides the notebook's live line. */
  onProgress?: (text: string) => void;
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
  const show = (text: string) => {
    line?.text(text);
    opts.onProgress?.(text);
  };
  const tta = opts.tta ?? s.profile.results?.tta ?? false;
  const batchSize = opts.batchSize ?? s.profile.train.batchSize;
  try {
    const evaluation = await evaluate(model, test, { mode, tta, batchSize, onProgress: (done, total) => show(`evaluated ${done} / ${total} images`) });
    const summary = summarize(evaluation, dataset.classes);
    const names = robustnessNames(opts.robustness ?? s.profile.results?.robustness);
    if (names.length) {
      summary.robustness = await evaluateRobustness(model, test, {
        mode,
        names,
        tta,
        batchSize,
        clean: { accuracy: evaluation.accuracy, ttaAccuracy: evaluation.tta?.accuracy ?? null },
        onProgress: (name, done, total) => show(`robustness (${name}): ${done} / ${total} images`),
      });
    }
    return { dataset, test, testSource, mode, evaluation, summary };
  } finally {
    await releaseModel(model); // the ORT session exported from it, if any
    model.dispose();
  }
}

/** One sentence for an evaluateRun result: what was scored, how, and in how long (notebook 05's cell). */
export function describeRunEvaluation(r: Pick<RunEvaluation, 'test' | 'testSource' | 'mode' | 'evaluation'>): string {
  const tta = r.evaluation.tta ? ', with and without flip TTA' : '';
  return `scored ${r.test.count.toLocaleString('en-US')} images of the ${r.testSource} ('${r.mode}' preprocessing${tta}) in ${r.evaluation.seconds.toFixed(1)} s`;
}

/** Writes <runDir>/evaluation.json (atomically) and returns its path. */
export function saveEvaluation(runDir: string, summary: EvaluationSummary): string {
  const file = path.join(runDir, 'evaluation.json');
  writeJsonAtomic(file, summary);
  return file;
}
