/**
 * Progress with ETA, three ways: a cli-progress bar in a terminal, one line per epoch when output is
 * piped (CI logs), and in a notebook a live display (src/display.ts) holding the status line and the
 * loss/accuracy curves, replaced in place after each epoch. Everything goes to stderr in a terminal so
 * that `--json` output on stdout stays clean.
 */
import * as cliProgress from 'cli-progress';
import { chartSvg, escapeHtml, inKernel, live } from '../display';
import type { EpochRow } from './history';
import { trainingCurvesSpec } from './curves';

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'live' | 'none';

export interface PhaseInfo {
  phase: string;
  phaseIndex: number;
  phases: number;
  epochs: number;
  startEpoch: number;
  stepsPerEpoch: number;
  cached: boolean;
}

export interface Progress {
  phaseStart(info: PhaseInfo): void;
  epochStart(phaseEpoch: number): void;
  batch(step: number, loss: number, accuracy: number, lr: number): void;
  epochEnd(row: EpochRow, all: EpochRow[]): Promise<void>;
  /** A task with a known number of items (e.g. feature extraction). */
  task(label: string, total: number): { tick(n: number): void; done(): void };
  message(text: string): void;
  /** Training stopped at an interrupt; text says where and how to go on. */
  interrupted(text: string): void;
  end(): void;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  const m = Math.round(t / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Tracks step times within a phase for the ETA of the phase. */
class Eta {
  private started = Date.now();
  private steps = 0;
  constructor(private readonly remainingSteps: number) {}
  reset(): void {
    this.started = Date.now();
    this.steps = 0;
  }
  step(): void {
    this.steps++;
  }
  /** Seconds left in the phase (training steps; validation rides on the same rate). */
  secondsLeft(): number {
    if (this.steps === 0) return NaN;
    const perStep = (Date.now() - this.started) / 1000 / this.steps;
    return perStep * (this.remainingSteps - this.steps);
  }
}

function epochLine(row: EpochRow, total: number): string {
  const f = (x: number | null) => (x !== null && Number.isFinite(x) ? x.toFixed(4) : String(x));
  return (
    `[${row.phase} ${row.phase_epoch}] epoch ${row.epoch}/${total}: loss ${f(row.loss)} acc ${f(row.accuracy)} ` +
    `val_loss ${f(row.val_loss)} val_acc ${f(row.val_accuracy)} lr ${row.lr?.toExponential(2)} ${row.seconds?.toFixed(1)}s` +
    (row.cached ? ' (cached features)' : '')
  );
}

abstract class Base implements Progress {
  protected info?: PhaseInfo;
  protected eta = new Eta(0);
  constructor(protected readonly totalEpochs: number) {}
  phaseStart(info: PhaseInfo): void {
    this.info = info;
    this.eta = new Eta((info.epochs - info.startEpoch) * info.stepsPerEpoch);
    this.message(
      `phase ${info.phaseIndex + 1}/${info.phases} '${info.phase}': epochs ${info.startEpoch + 1}..${info.epochs}, ` +
        `${info.stepsPerEpoch} steps each${info.cached ? ', on cached features' : ''}`,
    );
  }
  epochStart(_phaseEpoch: number): void {}
  batch(_step: number, _loss: number, _accuracy: number, _lr: number): void {
    this.eta.step();
  }
  async epochEnd(row: EpochRow, _all: EpochRow[]): Promise<void> {
    this.message(`${epochLine(row, this.totalEpochs)}; phase ETA ${formatSeconds(this.eta.secondsLeft())}`);
  }
  task(label: string, total: number): { tick(n: number): void; done(): void } {
    const start = Date.now();
    let done = 0;
    let lastLog = 0;
    return {
      tick: (n) => {
        done += n;
        if (Date.now() - lastLog > 10000) {
          lastLog = Date.now();
          const rate = done / ((Date.now() - start) / 1000);
          this.message(`${label}: ${done}/${total}, ETA ${formatSeconds((total - done) / rate)}`);
        }
      },
      done: () => this.message(`${label}: ${total} in ${formatSeconds((Date.now() - start) / 1000)}`),
    };
  }
  abstract message(text: string): void;
  interrupted(text: string): void {
    this.message(text);
  }
  end(): void {}
}

class Lines extends Base {
  message(text: string): void {
    process.stderr.write(`${text}\n`);
  }
}

class Silent extends Base {
  message(_text: string): void {}
}

class Bar extends Base {
  private bar?: cliProgress.SingleBar;
  epochStart(phaseEpoch: number): void {
    if (!this.info) return;
    this.bar?.stop();
    this.bar = new cliProgress.SingleBar(
      {
        format: `${this.info.phase} ${phaseEpoch + 1}/${this.info.epochs} [{bar}] {value}/{total} loss {loss} acc {acc} lr {lr} | epoch ETA {eta_formatted} | phase ETA {phaseEta}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(this.info.stepsPerEpoch, 0, { loss: '-', acc: '-', lr: '-', phaseEta: '?' });
  }
  batch(step: number, loss: number, accuracy: number, lr: number): void {
    super.batch(step, loss, accuracy, lr);
    this.bar?.update(step, {
      loss: loss.toFixed(4),
      acc: accuracy.toFixed(3),
      lr: lr.toExponential(1),
      phaseEta: formatSeconds(this.eta.secondsLeft()),
    });
  }
  async epochEnd(row: EpochRow, all: EpochRow[]): Promise<void> {
    this.bar?.stop();
    this.bar = undefined;
    await super.epochEnd(row, all);
  }
  task(label: string, total: number): { tick(n: number): void; done(): void } {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {value}/{total} | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    let done = 0;
    return {
      tick: (n) => bar.update((done += n)),
      done: () => bar.stop(),
    };
  }
  message(text: string): void {
    process.stderr.write(`${text}\n`);
  }
  end(): void {
    this.bar?.stop();
  }
}

/** In a tslab kernel: one live output with the status, the epoch table so far and the curves. */
class Live extends Base {
  private status = '';
  private lastDraw = 0;
  private chartSvg = '';
  private log: string[] = [];
  private stoppedByInterrupt = false;
  private readonly out = live();

  private draw(force = false): void {
    if (!force && Date.now() - this.lastDraw < 500) return;
    this.lastDraw = Date.now();
    const lines = (ls: string[]) => ls.map((l) => escapeHtml(l)).join('<br>');
    // The last lines in view; the whole log one click away (and kept whole in the report).
    const all = this.log.length > 8 ? `<details><summary>whole log (${this.log.length} lines)</summary>${lines(this.log)}</details>` : '';
    const html = `<div style="font-family:monospace"><b>${escapeHtml(this.status)}</b><br>${lines(this.log.slice(-8))}${all}</div>${this.chartSvg}`;
    // text/plain: status, then every log line; the headless runner relays the new lines to the terminal.
    this.out.html(html, [this.status, ...this.log].join('\n'));
  }
  batch(step: number, loss: number, accuracy: number, lr: number): void {
    super.batch(step, loss, accuracy, lr);
    if (!this.info) return;
    this.status =
      `${this.info.phase}: step ${step}/${this.info.stepsPerEpoch} loss ${loss.toFixed(4)} acc ${accuracy.toFixed(3)} ` +
      `lr ${lr.toExponential(1)} | phase ETA ${formatSeconds(this.eta.secondsLeft())}`;
    this.draw();
  }
  async epochEnd(row: EpochRow, all: EpochRow[]): Promise<void> {
    this.log.push(`${epochLine(row, this.totalEpochs)}; phase ETA ${formatSeconds(this.eta.secondsLeft())}`);
    try {
      const spec = trainingCurvesSpec(all);
      this.chartSvg = await chartSvg(spec);
    } catch (e) {
      this.chartSvg = `<pre>chart unavailable: ${(e as Error).message}</pre>`;
    }
    this.draw(true);
  }
  message(text: string): void {
    this.log.push(text);
    this.draw(true);
  }
  /** In a notebook the cell ends with the interrupt's error, said once there: not repeated in the display. */
  interrupted(_text: string): void {
    this.stoppedByInterrupt = true;
  }
  end(): void {
    this.status = this.stoppedByInterrupt ? 'stopped by the interrupt' : this.log.length ? this.log[this.log.length - 1] : 'done';
    this.chartSvg = ''; // the curves were live while training; 05-results draws them once for good
    this.draw(true);
  }
}

export function createProgress(mode: ProgressMode, totalEpochs: number): Progress {
  let m = mode;
  if (m === 'auto') {
    m = inKernel() ? 'live' : process.stderr.isTTY ? 'bar' : 'lines';
  }
  switch (m) {
    case 'bar':
      return new Bar(totalEpochs);
    case 'lines':
      return new Lines(totalEpochs);
    case 'live':
      return new Live(totalEpochs);
    case 'none':
      return new Silent(totalEpochs);
    default:
      throw new Error(`progress: expected auto, bar, lines, live or none, got ${JSON.stringify(mode)}`);
  }
}
