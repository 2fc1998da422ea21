/** One entry point for the configured data: CIFAR-10 (local copy or download) or an image folder. */
import { DataConfig } from '../config';
import { FetchOptions, loadCifar10, resolveCifar10Dir } from './cifar10';
import { loadImageFolder } from './imagefolder';
import { Dataset } from './types';

/** Loads the data a profile describes, with its trainLimit/testLimit applied. */
export async function loadDataset(cfg: DataConfig, opts: FetchOptions = {}): Promise<Dataset> {
  const limits = { trainLimit: cfg.trainLimit, testLimit: cfg.testLimit };
  if (cfg.source === 'folder') {
    if (!cfg.dir) throw new Error("data.dir: a folder of images is needed when data.source is 'folder'");
    return loadImageFolder(cfg.dir, cfg.imageSize, limits);
  }
  if (cfg.source !== 'cifar10') throw new Error(`data.source: expected 'cifar10' or 'folder', got ${JSON.stringify(cfg.source)}`);
  if (cfg.imageSize !== 32) throw new Error(`data.imageSize: CIFAR-10 images are stored at 32, got ${cfg.imageSize}`);
  return loadCifar10(await resolveCifar10Dir(cfg.dir, opts), limits);
}
