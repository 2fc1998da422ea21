/**
 * Keep and restore the best weights of a phase by a monitored metric (Keras restore_best_weights):
 * a copy of the weights at the best epoch so far; when the phase ends (all its epochs, or early
 * stopping) the model gets them back before the phase's last checkpoint, so the next phase, the
 * saved model and a resume all start from them. The copy rides in the checkpoint (best.bin), the
 * best epoch and value in its state under `best`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Callback, CallbackState, FitState, PhaseRun } from '../loop';
import type { EpochRow } from '../history';
import type { NamedTensor } from '../optimizer';
import type { Progress } from '../progress';
import { snapshotWeights, type WeightsSnapshot } from '../../model/split';
import { improves, type Monitor } from './early-stopping';

/** The best monitored value of the phase so far and its epoch (over all phases). */
export interface BestSoFar {
  value: number | null;
  epoch: number;
}

export class BestWeights implements Callback {
  readonly stateKey = 'best';
  private copy?: WeightsSnapshot;
  /** Kept after the phase ends (the copy is not): the checkpoint says which epoch's weights the phase ended with. */
  private best?: BestSoFar;

  constructor(
    private readonly monitor: Monitor,
    private readonly weights: () => tf.LayerVariable[],
    private readonly progress: Progress,
  ) {}

  /** The best epoch so far and the copy, named as the weights (none once the phase has ended). */
  state(): CallbackState {
    const ws = this.weights();
    const tensors: NamedTensor[] | undefined = this.copy?.tensors.map((tensor, i) => ({ name: ws[i].originalName ?? ws[i].name, tensor }));
    return { json: this.best, ...(tensors ? { tensors } : {}) };
  }

  /** Takes over a checkpoint's best epoch and copy (ownership of the tensors passes to this callback). */
  restore(json: unknown, tensors: tf.Tensor[] | undefined): void {
    this.dispose();
    this.best = json as BestSoFar | undefined;
    this.copy = tensors && snapshotWeights(this.weights(), tensors);
  }

  onRunEnd(): void {
    this.dispose();
  }

  dispose(): void {
    this.copy?.dispose();
    this.copy = undefined;
  }

  onPhaseBegin(_run: PhaseRun, s: FitState): void {
    if (s.train.phaseEpoch === 0) {
      this.dispose();
      this.best = { value: null, epoch: 0 };
    }
  }

  onEpochEnd(run: PhaseRun, s: FitState, row: EpochRow): void {
    const value = row[this.monitor];
    if (improves(this.monitor, value, this.best?.value ?? null)) {
      this.dispose();
      this.copy = snapshotWeights(this.weights());
      this.best = { value, epoch: row.epoch };
    }
    const ending = s.train.phaseFinished;
    if (ending && this.copy && this.best && this.best.epoch !== row.epoch) {
      this.copy.restore();
      this.progress.message(`phase '${run.phase.name}': restored the weights of epoch ${this.best.epoch} (best ${this.monitor} ${this.best.value})`);
    }
    if (ending) this.dispose();
  }
}
