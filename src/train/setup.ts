/** What training starts from: the profile's data split and its model (seeded), and the image batches. */
import type { Session } from '../session';
import type { Profile } from '../config';
import type { ImageSet, SkippedFile } from '../data/types';
import { loadDataset } from '../data';
import { batches, splitTrainVal } from '../preprocess';
import { stratifiedSplit } from '../preprocess/split';
import { buildModel } from '../model';
import { describeInitFrom, initFromTrained } from '../model/init-from';
import type { TrainableModel } from '../model/split';
import { Random } from '../random';
import { setBaseTrainable } from '../model/freeze';
import type { ImageBatchSource, LoopContext, LoopDeps } from './trainer';
import type { Progress } from './progress';
import { withSeededMathRandomAsync } from './seeded';

export interface TrainData {
  train: ImageSet;
  val: ImageSet;
  classes: string[];
  /** Where validation images come from: a held-out split of the training set, or the test set. */
  valSource: 'split' | 'test';
  /** How the held-out split was drawn: per class for image folders, one permutation for CIFAR-10. */
  valSplit?: 'stratified' | 'random';
  /** Image files left out as unreadable (data.skipUnreadable). */
  skipped?: SkippedFile[];
}


/** The profile's data: the training set split seeded into train/val, or the test set as validation when valFraction is 0. */
export async function loadTrainData(s: Session): Promise<TrainData> {
  const ds = await loadDataset(s.profile.data);
  for (const w of ds.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
  const extra = ds.skipped ? { skipped: ds.skipped } : {};
  if (s.profile.data.valFraction > 0) {
    const stratified = stratifiedSplit(s.profile.data);
    const { train, val } = splitTrainVal(ds.train, s.profile.data.valFraction, s.profile.train.seed, { stratified });
    if (val.count === 0 || train.count === 0) {
      const f = s.profile.data.valFraction;
      throw new Error(
        `${s.profile.data.dir ?? s.profile.data.source}: ${ds.train.count} training image(s) in ${ds.classes.length} class(es) leave ${train.count} to train on and ${val.count} to validate on ` +
          `(data.valFraction ${f}); expected at least ${Math.ceil(1 / Math.min(f, 1 - f))} images, or a test set with data.valFraction 0`,
      );
    }
    return { train, val, classes: ds.classes, valSource: 'split', valSplit: stratified ? 'stratified' : 'random', ...extra };
  }
  if (!ds.test) throw new Error(`profile '${s.profile.name}': data.valFraction is 0 but the data set has no test set to validate on`);
  return { train: ds.train, val: ds.test, classes: ds.classes, valSource: 'test', ...extra };
}

export function defaultImageBatches(built: TrainableModel, numClasses: number): ImageBatchSource {
  return (set, o) => batches(set, { ...o, mode: built.preprocess as never, numClasses });
}

/**
 * The profile's model, with seeded initialisers (tfjs draws their seeds from Math.random()); with
 * model.initFrom, every weight then comes from that trained model. `log` hears which one.
 */
export async function buildTrainModel(profile: Profile, numClasses: number, opts: { log?: (line: string) => void } = {}): Promise<TrainableModel> {
  const built = await withSeededMathRandomAsync(new Random(profile.train.seed + 1), () =>
    buildModel(profile.model, numClasses, { storedSize: profile.data.imageSize, quiet: true }),
  );
  if (profile.model.initFrom) {
    try {
      const report = await initFromTrained(built, profile.model.initFrom);
      opts.log?.(describeInitFrom(report));
    } catch (e) {
      built.model.dispose();
      throw e;
    }
  }
  return built;
}


/** What train() and lr-find hand the loop: the session's run and data, the model, and the default hooks. */
export function loopContext(
  s: Session,
  data: TrainData,
  built: TrainableModel,
  progress: Progress,
  hooks: { imageBatches?: ImageBatchSource; featureExtractor?: LoopDeps['featureExtractor'] } = {},
): LoopContext {
  const numClasses = data.classes.length;
  return {
    profile: s.profile,
    runDir: s.runDir,
    backend: s.backend,
    built,
    train: data.train,
    val: data.val,
    numClasses,
    progress,
    deps: { setTrainable: setBaseTrainable, imageBatches: hooks.imageBatches ?? defaultImageBatches(built, numClasses), featureExtractor: hooks.featureExtractor },
  };
}
