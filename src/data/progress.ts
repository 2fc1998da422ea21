/**
 * Progress while an image folder is decoded (count, images/s, ETA): a cli-progress bar on a terminal,
 * a line every 10% when stderr is piped (after the first 2 s, so quick loads stay quiet), and in a
 * notebook one live line (display.live) replaced in place. All on stderr or the notebook, so that
 * `data --json` keeps stdout clean.
 */
import { Presets, SingleBar } from 'cli-progress';
import { inKernel, live } from '../display';
import type { DecodeProgress } from './imagefolder';

function formatEta(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  return t < 60 ? `${t}s` : t < 3600 ? `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s` : `${Math.floor(t / 3600)}h${String(Math.round((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** One line of progress text. */
export function decodeProgressLine(label: string, p: DecodeProgress): string {
  return `${label}: ${p.done}/${p.total} images, ${p.imagesPerSecond.toFixed(1)} images/s, ETA ${formatEta(p.etaSeconds)}`;
}

export interface DecodeProgressReporter {
  update: (p: DecodeProgress) => void;
  stop: () => void;
}

/** A reporter for loadImageFolder's onProgress, chosen for where the output goes. */
export function decodeProgressReporter(label: string): DecodeProgressReporter {
  if (inKernel()) {
    const line = live({ terminalText: false });
    return { update: (p) => line.text(decodeProgressLine(label, p)), stop: () => {} };
  }
  if (process.stderr.isTTY) {
    let bar: SingleBar | undefined;
    return {
      update: (p) => {
        if (!bar) {
          bar = new SingleBar({ format: `${label} [{bar}] {value}/{total} | {rate} images/s | ETA {eta}`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
          bar.start(p.total, 0, { rate: '-', eta: '?' });
        }
        bar.update(p.done, { rate: p.imagesPerSecond.toFixed(1), eta: formatEta(p.etaSeconds) });
      },
      stop: () => bar?.stop(),
    };
  }
  const started = Date.now();
  let lastDecile = -1;
  return {
    update: (p) => {
      const decile = Math.floor((10 * p.done) / p.total);
      if (Date.now() - started < 2000 || decile <= lastDecile) return;
      lastDecile = decile;
      process.stderr.write(`${decodeProgressLine(label, p)}\n`);
    },
    stop: () => {},
  };
}
