/**
 * `npm run -s cli -- data [--json] [--images <folder>] [--dir <cifar folder>] [--profile <name>] [--size N] [--skip-unreadable] [--max-image-pixels N]`
 * Describes a data set: class names, images per split and per class, the first labels, the source.
 * Without --profile the whole data set is described (no limits); with it, the profile's data section.
 */
import { parseArgs } from 'node:util';
import { loadProfile, DataConfig } from '../config';
import { loadDataset } from './dataset';
import { describeDataset, formatDescription } from './summary';

const HELP = `usage: npm run -s cli -- data [options]
  --json              print one JSON object {classes, train, test, source[, skipped][, warnings]}
  --images <folder>   an image folder (one subfolder per class; train/ and test/ if split)
  --size <n>          side the folder's images are resized to (default 32)
  --skip-unreadable   leave out image files that cannot be read (listed) instead of refusing the folder
  --max-image-pixels <n>
                      refuse images above n pixels, from their header (default 178956970)
  --dir <folder>      a local extracted cifar-10-batches-bin (default CIFAR10_DIR, else download)
  --profile <name>    describe that profile's data (with its limits)
  --set <a.b=v>       profile override (repeatable)
  --quiet             no download or decoding progress
  -h, --help          this text
`;

/** The largest side --size stores images at (a 1024 x 1024 x 3 image is 3 MB; networks here see at most 224). */
const MAX_STORED_SIZE = 1024;

export async function dataCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      images: { type: 'string' },
      size: { type: 'string' },
      'skip-unreadable': { type: 'boolean', default: false },
      'max-image-pixels': { type: 'string' },
      dir: { type: 'string' },
      profile: { type: 'string' },
      set: { type: 'string', multiple: true },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
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
