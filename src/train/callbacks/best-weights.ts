/**
 * Keep and restore the best weights of a phase by a monitored metric (Keras restore_best_weights):
 * a copy of the weights at the best epoch so far; when the phase ends (all its epochs, or early
 * stopping) the model gets them back before the phase's last checkpoint, so the next phase, the
 * saved model and a resume all start from them. The copy rides in the checkpoint (best.bin).
 */
import * as tf from '@tensorflow/tfjs';
import type { Callback, FitState, PhaseRun } from '../loop';
import type { EpochRow } from '../history';
import type { NamedTensor } from '../optimizer';
import type { Progress } from '../progress';
import { snapshotWeights, type WeightsSnapshot } from '../../model/split';
import { improves, type Monitor } from './early-stopping';

export class BestWeights implements Callback {
  private copy?: WeightsSnapshot;

  constructor(
    private readonly monitor: Monitor,
    private readonly weights: () => tf.LayerVariable[],
    private readonly progress: Progress,
  ) {}

  /** The copy for the checkpoint, named as the weights. */
  tensors(): NamedTensor[] | undefined {
    const ws = this.weights();
    return this.copy?.tensors.map((tensor, i) => ({ name: ws[i].originalName ?? ws[i].name, tensor }));
  }

  /** Takes over a checkpoint's copy (ownership passes to this callback). */
  restoreCopy(tensors: tf.Tensor[] | undefined): void {
    this.dispose();
    this.copy = tensors && snapshotWeights(this.weights(), tensors);
  }

  dispose(): void {
    this.copy?.dispose();
    this.copy = undefined;
  }

  onPhaseBegin(_run: PhaseRun, s: FitState): void {
    if (s.train.phaseEpoch === 0) {
      this.dispose();
      s.train.best = { value: null, epoch: 0 };
    }
  }

  onEpochEnd(run: PhaseRun, s: FitState, row: EpochRow): void {
    const best = s.train.best ?? { value: null, epoch: 0 };
    const value = row[this.monitor];
    if (improves(this.monitor, value, best.value)) {
      this.dispose();
      this.copy = snapshotWeights(this.weights());
      s.train.best = { value, epoch: row.epoch };
    }
    const ending = s.train.phaseFinished;
    if (ending && this.copy && s.train.best && s.train.best.epoch !== row.epoch) {
      this.copy.restore();
      this.progress.message(`phase '${run.phase.name}': restored the weights of epoch ${s.train.best.epoch} (best ${this.monitor} ${s.train.best.value})`);
    }
    if (ending) this.dispose();
  }
}
