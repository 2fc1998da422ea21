/**
 * `npm run -s cli -- bench decode [--count 300] [--width 3000] [--height 2000] [--size 160] [--jpeg-js-count N] [--no-jpeg-js] [--json] [--keep]`
 *
 * Decode + resize of a folder of photos to the working size, side by side on the same files in one run:
 *   sharp    `data --images <folder> --json --size 160` as users run it (libvips, shrink-on-load, a pool of
 *            os.availableParallelism() images; a fresh cache folder, so every image is decoded)
 *   jpeg-js  the path before sharp: jpeg-js decode at full size, then 2x2 averaging and a bilinear resize
 *            in TF.js (the project's default backend, as before), one image at a time; on the first
 *            --jpeg-js-count files only when given (it is slow: its images/s is per image all the same)
 *   PIL      when /usr/bin/python3 has Pillow: open, convert('RGB'), resize((160, 160), BILINEAR) as Keras'
 *            load_img does, and the same with Image.draft() first (libjpeg's DCT scaling, as sharp does)
 * Each runs in its own child process; images/s is over its whole run (Node's start-up included, as a user
 * waits for it; PIL's timer starts after its imports), peak RSS is the child's own high-water mark (VmHWM). The photos
 * (3000x2000 JPEGs, quality 86-93, a smooth synthetic scene with mild noise) are written by sharp into
 * a temporary folder first.
 * Numbers depend on the CPU: its model and vector flags are printed with them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { defineCommand, parseCommand } from '../src/cli-options';
import sharp from 'sharp';
import { describeMachine, machineInfo } from '../src/backend/machine';

const projectRoot = path.resolve(__dirname, '..', '..');
const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');

export interface DecodeRate {
  decoder: string;
  images: number;
  seconds: number;
  imagesPerSecond: number;
  peakRssMB: number;
  error?: string;
}

/** `count` JPEGs of width x height in `dir`, two class folders (what `data --images` reads). */
async function writePhotos(dir: string, count: number, width: number, height: number): Promise<void> {
  // A smooth scene (gradients and a few discs) with mild noise: closer to a photo's entropy than pure noise.
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const d = Math.hypot(x - width * 0.6, y - height * 0.4) / width;
      raw[i] = (255 * x) / width;
      raw[i + 1] = 128 + 100 * Math.sin(d * 20);
      raw[i + 2] = (255 * y) / height;
    }
  }
  const base = await sharp(raw, { raw: { width, height, channels: 3 } })
    .composite([{ input: { create: { width, height, channels: 3, background: 'grey', noise: { type: 'gaussian', mean: 128, sigma: 12 } } }, blend: 'overlay' }])
    .removeAlpha()
    .raw()
    .toBuffer();
  for (let i = 0; i < count; i++) {
    const cls = path.join(dir, i % 2 ? 'b' : 'a');
    fs.mkdirSync(cls, { recursive: true });
    // Qualities 86..93: files differ (no two decodes of the same bytes), encoding stays fast (~0.1 s each).
    await sharp(base, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 86 + (i % 8) })
      .toFile(path.join(cls, `${String(i).padStart(4, '0')}.jpg`));
  }
}

/**
 * Peak RSS of the child itself: VmHWM from /proc/self/status (Linux). getrusage's maxRSS is not used: Linux
 * carries it across fork+exec, so a child's value starts at the parent's RSS (this bench process's ~300 MB).
 */
const PRELOAD = `const t = performance.now();
const peakKB = () => { try { return Number(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]); } catch { return process.resourceUsage().maxRSS; } };
process.on('exit', () => process.stderr.write('\\nMEASURE ' + JSON.stringify({ seconds: (performance.now() - t) / 1000, maxRssKB: peakKB() }) + '\\n'));
`;

function measured(decoder: string, images: number, r: ReturnType<typeof spawnSync>): DecodeRate {
  const stderr = String(r.stderr ?? '');
  const m = /MEASURE (.*)/.exec(stderr);
  if (r.status !== 0 || !m) return { decoder, images, seconds: NaN, imagesPerSecond: NaN, peakRssMB: NaN, error: stderr.trim().split('\n').slice(-3).join(' ') };
  const { seconds, maxRssKB } = JSON.parse(m[1]) as { seconds: number; maxRssKB: number };
  return { decoder, images, seconds: round(seconds), imagesPerSecond: round(images / seconds), peakRssMB: Math.round(maxRssKB / 1024) };
}

const round = (x: number) => Math.round(x * 100) / 100;

function benchSharp(dir: string, count: number, size: number, work: string): DecodeRate {
  const preload = path.join(work, 'measure.js');
  fs.writeFileSync(preload, PRELOAD);
  const r = spawnSync(process.execPath, ['-r', preload, cli, 'data', '--json', '--quiet', '--images', dir, '--size', String(size)], {
    encoding: 'utf8',
    env: { ...process.env, TLWB_DATA_DIR: fs.mkdtempSync(path.join(work, 'cache-')) },
  });
  return measured('sharp (data --images)', count, r);
}

/** The pre-sharp path, kept here only to be measured against. */
const JPEG_JS_WORKER = `
const fs = require('node:fs'), path = require('node:path');
const jpeg = require('jpeg-js');
const { initBackend, tf } = require(process.argv[5]);
const [dir, size, limit] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
(async () => {
  const backend = await initBackend({ quiet: true });
  process.stderr.write('BACKEND ' + backend.choice + '\\n');
  let files = [];
  for (const c of fs.readdirSync(dir).sort()) for (const f of fs.readdirSync(path.join(dir, c)).sort()) files.push(path.join(dir, c, f));
  files = files.slice(0, limit);
  const out = new Uint8Array(files.length * size * size * 3);
  files.forEach((file, n) => {
    const img = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 2048 });
    const rgb = new Uint8Array(img.width * img.height * 3);
    for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) { rgb[j] = img.data[i]; rgb[j + 1] = img.data[i + 1]; rgb[j + 2] = img.data[i + 2]; }
    const px = tf.tidy(() => {
      let x = tf.tensor3d(rgb, [img.height, img.width, 3], 'int32').toFloat();
      while (x.shape[0] >= 2 * size && x.shape[1] >= 2 * size) {
        const h = x.shape[0] - (x.shape[0] % 2), w = x.shape[1] - (x.shape[1] % 2);
        x = tf.avgPool(x.slice([0, 0, 0], [h, w, 3]), 2, 2, 'valid');
      }
      if (x.shape[0] !== size || x.shape[1] !== size) x = tf.image.resizeBilinear(x, [size, size], false, true);
      return x.round().clipByValue(0, 255).dataSync();
    });
    out.set(px, n * size * size * 3);
  });
})();
`;

function benchJpegJs(dir: string, count: number, size: number, work: string): DecodeRate {
  const worker = path.join(work, 'jpeg-js-worker.js');
  fs.writeFileSync(worker, JPEG_JS_WORKER);
  const r = spawnSync(process.execPath, ['-r', path.join(work, 'measure.js'), worker, dir, String(size), String(count), path.join(projectRoot, 'dist', 'src', 'backend')], {
    encoding: 'utf8',
    cwd: projectRoot,
    env: { ...process.env, NODE_PATH: path.join(projectRoot, 'node_modules') },
  });
  const backend = /BACKEND (\S+)/.exec(String(r.stderr))?.[1] ?? '?';
  return measured(`jpeg-js + TF.js ${backend} resize (before)`, count, r);
}

const PIL_WORKER = `
import os, sys, time, resource, json
from PIL import Image
start = time.perf_counter()
d, size, draft = sys.argv[1], int(sys.argv[2]), sys.argv[3] == 'draft'
n = 0
for c in sorted(os.listdir(d)):
    for f in sorted(os.listdir(os.path.join(d, c))):
        with Image.open(os.path.join(d, c, f)) as im:
            if draft:
                im.draft('RGB', (size, size))
            im = im.convert('RGB').resize((size, size), Image.BILINEAR)
            im.tobytes()
        n += 1
def peak_kb():
    try:
        with open('/proc/self/status') as f:
            return int(next(l for l in f if l.startswith('VmHWM:')).split()[1])
    except Exception:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print('MEASURE ' + json.dumps({'seconds': time.perf_counter() - start, 'maxRssKB': peak_kb()}), file=sys.stderr)
`;

function benchPil(dir: string, count: number, size: number, work: string, draft: boolean): DecodeRate | undefined {
  const python = '/usr/bin/python3';
  if (!fs.existsSync(python) || spawnSync(python, ['-c', 'import PIL'], { encoding: 'utf8' }).status !== 0) return undefined;
  const script = path.join(work, 'pil_worker.py');
  fs.writeFileSync(script, PIL_WORKER);
  const version = spawnSync(python, ['-c', 'import PIL; print(PIL.__version__)'], { encoding: 'utf8' }).stdout.trim();
  const r = spawnSync(python, [script, dir, String(size), draft ? 'draft' : 'full'], { encoding: 'utf8' });
  return measured(`PIL ${version}${draft ? ' with draft() (DCT scaling)' : ' (Keras load_img: full decode, bilinear)'}`, count, r);
}

export const BENCH_DECODE_COMMAND = defineCommand({
  name: 'bench decode',
  usage: ['npm run -s cli -- bench decode [--count 300] [--width 3000] [--height 2000] [--size 160] [--jpeg-js-count N] [--no-jpeg-js] [--json] [--keep]'],
  about: '  Decode + resize of a folder of synthetic photos to the working size: sharp (as `data --images` runs), jpeg-js\n  and PIL when /usr/bin/python3 has Pillow, side by side on the same files (images/s and peak RSS each).',
  options: {
    count: { type: 'string', value: 'N', default: '300', help: 'photos to write and decode' },
    width: { type: 'string', value: 'PX', default: '3000', help: "the photos' width" },
    height: { type: 'string', value: 'PX', default: '2000', help: "the photos' height" },
    size: { type: 'string', value: 'PX', default: '160', help: 'the side they are resized to' },
    json: { type: 'boolean', default: false, help: 'print the results as JSON' },
    keep: { type: 'boolean', default: false, help: 'keep the temporary folder of photos' },
    'no-jpeg-js': { type: 'boolean', default: false, help: 'skip jpeg-js (slow)' },
    'jpeg-js-count': { type: 'string', value: 'N', help: 'decode only the first N files with jpeg-js (default: all)' },
  },
});

export async function benchDecodeCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(BENCH_DECODE_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  const [count, width, height, size] = [values.count, values.width, values.height, values.size].map(Number);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-bench-decode-'));
  const dir = path.join(work, 'photos');
  try {
    const t = performance.now();
    await writePhotos(dir, count, width, height);
    const bytes = fs.readdirSync(dir).flatMap((c) => fs.readdirSync(path.join(dir, c)).map((f) => fs.statSync(path.join(dir, c, f)).size));
    const log = (s: string) => values.json || process.stderr.write(`${s}\n`);
    log(`${count} JPEGs of ${width}x${height} written in ${((performance.now() - t) / 1000).toFixed(1)} s (${(bytes.reduce((a, b) => a + b, 0) / bytes.length / 1e6).toFixed(2)} MB each) in ${dir}`);
    const results: DecodeRate[] = [];
    const add = (r: DecodeRate | undefined) => {
      if (!r) return;
      results.push(r);
      log(`${r.decoder}: ${r.error ?? `${r.imagesPerSecond} images/s, ${r.seconds} s, peak RSS ${r.peakRssMB} MB`}`);
    };
    add(benchSharp(dir, count, size, work));
    if (!values['no-jpeg-js']) add(benchJpegJs(dir, Math.min(count, Number(values['jpeg-js-count'] ?? count)), size, work));
    add(benchPil(dir, count, size, work, false));
    add(benchPil(dir, count, size, work, true));
    const machine = machineInfo();
    const sharpRate = results[0].imagesPerSecond;
    const jpegJs = results.find((r) => r.decoder.startsWith('jpeg-js'));
    const report = {
      command: `npm run -s cli -- bench decode ${argv.join(' ')}`.trim(),
      photos: { count, width, height, meanBytes: Math.round(bytes.reduce((a, b) => a + b, 0) / bytes.length) },
      size,
      results,
      sharpSpeedupVsJpegJs: jpegJs ? round(sharpRate / jpegJs.imagesPerSecond) : null,
      sharp: sharp.versions,
      machine,
      date: new Date().toISOString(),
    };
    if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else {
      const w = Math.max(...results.map((r) => r.decoder.length));
      process.stdout.write(
        [
          `decode + resize to ${size}x${size} of ${count} JPEGs of ${width}x${height} on ${describeMachine(machine)}`,
          `${'decoder'.padEnd(w)}  images  images/s  seconds  peak RSS`,
          ...results.map((r) => `${r.decoder.padEnd(w)}  ${String(r.images).padStart(6)}  ${String(r.imagesPerSecond).padStart(8)}  ${String(r.seconds).padStart(7)}  ${String(r.peakRssMB).padStart(5)} MB${r.error ? `  (${r.error})` : ''}`),
          jpegJs ? `sharp is ${report.sharpSpeedupVsJpegJs}x the jpeg-js path` : '',
        ].join('\n') + '\n',
      );
    }
  } finally {
    if (!values.keep) fs.rmSync(work, { recursive: true, force: true });
  }
}
