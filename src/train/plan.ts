/**
 * What a phase trains, on what input, in which batch-norm mode and at which rate: decided once here
 * from the profile, and read by the trainer (which layers train, whether it runs on cached features),
 * the notebook's phase table and the report. Before this, each re-derived it and the notebook said
 * that quick's finetune-top trained on augmented images while the trainer trained it on cached maps.
 */
import type { Phase, Profile } from '../config';

export interface PhasePlan {
  /** 0-based position in profile.train.phases. */
  index: number;
  name: string;
  /** 'whole model', 'head only (base frozen)' or 'base from <layer>, head'. */
  trains: string;
  /** The phase trains on the frozen part's cached output instead of running the base on images. */
  cached: boolean;
  /** Where a partly trainable phase cuts the network for its cache (its first trainable layer). */
  cutAt?: string;
  /** What a training step reads. */
  input: 'cached features' | 'augmented images' | 'images';
  /** BatchNormalization in the trained part: batch statistics ('training') or moving averages ('inference'). */
  batchNorm: 'inference' | 'training';
  optimizer: string;
  /** The rate and its schedule, e.g. "0.0001 cosine (warm-up 1 ep)". */
  rate: string;
  epochs: number;
  batchSize: number;
  /** When the phase runs: always, or only where it is affordable. */
  when: string;
}

function rateText(p: Phase): string {
  if (p.schedule?.kind === 'cosine') return `${p.lr} cosine (warm-up ${p.schedule.warmupEpochs ?? 0} ep)`;
  if (p.schedule?.kind === 'one-cycle') return `${p.lr} one-cycle`;
  return String(p.lr);
}

export function phasePlan(profile: Profile, index: number): PhasePlan {
  const p = profile.train.phases[index];
  if (!p) throw new Error(`phase ${index}: the profile has ${profile.train.phases.length} phases (0-based)`);
  const t = p.trainable;
  const cutAt = typeof t === 'object' && p.featureCache ? t.from : undefined;
  const cached = (t === 'head' && !!profile.train.featureCache) || cutAt !== undefined;
  return {
    index,
    name: p.name,
    trains: t === 'all' ? 'whole model' : t === 'head' ? 'head only (base frozen)' : `base from ${t.from}, head`,
    cached,
    ...(cutAt ? { cutAt } : {}),
    input: cached ? 'cached features' : profile.train.augment || profile.train.photoAugment ? 'augmented images' : 'images',
    // A frozen base (head phases) runs its BatchNormalization on moving averages, as Keras does since TF 2.
    batchNorm: p.batchNorm === 'frozen' || t === 'head' ? 'inference' : 'training',
    optimizer: `${p.optimizer}${p.momentum ? ` m=${p.momentum}` : ''}${p.weightDecay ? ` wd=${p.weightDecay}` : ''}`,
    rate: rateText(p),
    epochs: p.epochs,
    batchSize: p.batchSize ?? profile.train.batchSize,
    when: p.runIf ? `native backend${p.runIf.maxEstimatedMinutes ? ` or < ${p.runIf.maxEstimatedMinutes} min measured` : ''}` : 'always',
  };
}

/** Every phase's plan, in order. */
export function phasePlans(profile: Profile): PhasePlan[] {
  return profile.train.phases.map((_, i) => phasePlan(profile, i));
}
