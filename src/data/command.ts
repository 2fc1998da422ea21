/**
 * `npm run -s cli -- data [--json] [--images <folder>] [--dir <cifar folder>] [--profile <name>] [--size N] [--skip-unreadable] [--max-image-pixels N]`
 * Describes a data set: class names, images per split and per class, the first labels, the source.
 * Without --profile the whole data set is described (no limits); with it, the profile's data section.
 */
import { defineCommand, parseCommand } from '../cli-options';
import { loadProfile, DataConfig } from '../config';
import { loadDataset } from './dataset';
import { describeDataset, formatDescription } from './summary';

export const DATA_COMMAND = defineCommand({
  name: 'data',
  usage: ['npm run -s cli -- data [options]'],
  options: {
    json: { type: 'boolean', default: false, help: 'print one JSON object {classes, train, test, source[, skipped][, warnings]}' },
    images: { type: 'string', value: '<folder>', help: 'an image folder (one subfolder per class; train/ and test/ if split)' },
    size: { type: 'string', value: '<n>', help: "side the folder's images are resized to (default 32)" },
    'skip-unreadable': { type: 'boolean', default: false, help: 'leave out image files that cannot be read (listed) instead of refusing the folder' },
    'max-image-pixels': { type: 'string', value: '<n>', help: 'refuse images above n pixels, from their header (default 178956970)' },
    dir: { type: 'string', value: '<folder>', help: 'a local extracted cifar-10-batches-bin (default CIFAR10_DIR, else download)' },
    profile: { type: 'string', value: '<name>', help: "describe that profile's data (with its limits)" },
    set: { type: 'string', value: '<a.b=v>', multiple: true, help: 'profile override (repeatable)' },
    quiet: { type: 'boolean', default: false, help: 'no download or decoding progress' },
  },
});

/** The largest side --size stores images at (a 1024 x 1024 x 3 image is 3 MB; networks here see at most 224). */
const MAX_STORED_SIZE = 1024;

export async function dataCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(DATA_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  let cfg: DataConfig = values.profile
    ? loadProfile(values.profile, values.set ?? []).data
    : { source: 'cifar10', valFraction: 0, imageSize: 32 };
  if (values.dir) cfg = { ...cfg, source: 'cifar10', dir: values.dir };
  if (values.images) cfg = { ...cfg, source: 'folder', dir: values.images, imageSize: cfg.source === 'folder' ? cfg.imageSize : 32 };
  if (values.size !== undefined) {
    const size = Number(values.size);
    // Every image is stored at size x size x 3 bytes: 100000 would ask for 30 GB per image.
    if (!(Number.isInteger(size) && size > 0 && size <= MAX_STORED_SIZE)) throw new Error(`--size: expected an integer from 1 to ${MAX_STORED_SIZE} (the side images are stored at), got '${values.size}'`);
    cfg = { ...cfg, imageSize: size };
  }
  if (values['skip-unreadable']) cfg = { ...cfg, skipUnreadable: true };
  if (values['max-image-pixels'] !== undefined) {
    const n = Number(values['max-image-pixels']);
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`--max-image-pixels: expected a positive integer, got '${values['max-image-pixels']}'`);
    cfg = { ...cfg, maxImagePixels: n };
  }
  const started = performance.now();
  const dataset = await loadDataset(cfg, { quiet: values.quiet });
  const seconds = (performance.now() - started) / 1000;
  const description = describeDataset(dataset);
  // Unusual but accepted (a partial CIFAR-10 copy): said on stderr, so --json stays one clean object.
  for (const w of dataset.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
  if (values.json && dataset.skipped?.length) process.stderr.write(`warning: ${dataset.skipped.length} unreadable image files skipped (listed in "skipped")\n`);
  if (values.json) process.stdout.write(JSON.stringify(description) + '\n');
  else process.stdout.write(formatDescription(description, seconds, dataset.train.height));
}
