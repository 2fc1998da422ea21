/** One entry point for the configured data: CIFAR-10 (local copy or download) or an image folder. */
import { DataConfig } from '../config';
import { FetchOptions, loadCifar10, resolveCifar10Dir } from './cifar10';
import { DecodeProgress, loadImageFolder } from './imagefolder';
import { decodeProgressReporter } from './progress';
import { Dataset } from './types';

/** Loads the data a profile describes, with its trainLimit/testLimit applied. */
export async function loadDataset(cfg: DataConfig, opts: FetchOptions & { onProgress?: (p: DecodeProgress) => void } = {}): Promise<Dataset> {
  const limits = { trainLimit: cfg.trainLimit, testLimit: cfg.testLimit };
  if (cfg.source === 'folder') {
    if (!cfg.dir) throw new Error("data.dir: a folder of images is needed when data.source is 'folder'");
    // Progress on stderr or in the notebook unless quiet or the caller reports it itself.
    const reporter = opts.onProgress || opts.quiet ? undefined : decodeProgressReporter(`decoding ${cfg.dir}`);
    try {
      return await loadImageFolder(cfg.dir, cfg.imageSize, {
        ...limits,
        skipUnreadable: cfg.skipUnreadable,
        maxImagePixels: cfg.maxImagePixels,
        onProgress: opts.onProgress ?? reporter?.update,
      });
    } finally {
      reporter?.stop();
    }
  }
  if (cfg.source !== 'cifar10') throw new Error(`data.source: expected 'cifar10' or 'folder', got ${JSON.stringify(cfg.source)}`);
  if (cfg.imageSize !== 32) throw new Error(`data.imageSize: CIFAR-10 images are stored at 32, got ${cfg.imageSize}`);
  return loadCifar10(await resolveCifar10Dir(cfg.dir, opts), limits);
}
