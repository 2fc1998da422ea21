import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { projectRoot } from '../../src/config';
import { decodeImageAtSize } from '../../src/data/decode';
import { imbalanceWarning, loadImageFolder } from '../../src/data/imagefolder';
import { declaredPng, tempDir } from './fixtures';

process.env.TLWB_DATA_DIR = tempDir('tlwb-cache-');
const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');

const RED = [200, 20, 20];
const BLUE = [20, 20, 200];
const near = (a: ArrayLike<number>, b: number[], tol: number) => b.every((v, i) => Math.abs(a[i] - v) <= tol);

/**
 * Runs the CLI in a child process; its wall time and peak RSS (process.resourceUsage().maxRSS) come back
 * too. Linux carries maxRSS across fork+exec, so it is at least this test process's RSS at the spawn: an
 * upper bound of the child's own peak (VmHWM, also returned where /proc exists), never an underestimate.
 */
function cliMeasured(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string; seconds: number; maxRssMB: number; ownPeakMB: number } {
  const preload = path.join(tempDir('tlwb-measure-'), 'measure.js');
  fs.writeFileSync(
    preload,
    `const t = performance.now();
process.on('exit', () => process.stderr.write('\\nMEASURE ' + JSON.stringify({ seconds: (performance.now() - t) / 1000, maxRssKB: process.resourceUsage().maxRSS, hwmKB: Number((/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8')) ?? [0, NaN])[1]) }) + '\\n'));\n`,
  );
  const r = spawnSync(process.execPath, ['-r', preload, cli, ...args], { encoding: 'utf8', env: { ...process.env, TLWB_BACKEND: 'cpu', ...env }, timeout: 120_000 });
  const m = /MEASURE (.*)/.exec(r.stderr);
  assert.ok(m, `no measurement in: ${r.stderr}`);
  const { seconds, maxRssKB, hwmKB } = JSON.parse(m[1]) as { seconds: number; maxRssKB: number; hwmKB: number };
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds, maxRssMB: maxRssKB / 1024, ownPeakMB: hwmKB / 1024 };
}

/** width x height RGB: left half red, right half blue. */
function halves(width: number, height: number): sharp.Sharp {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) raw.set(i % width < width / 2 ? RED : BLUE, i * 3);
  return sharp(raw, { raw: { width, height, channels: 3 } });
}

test('EXIF orientation is applied: a landscape JPEG tagged "rotate 90 CW" decodes as portrait, left half on top', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'turned.jpg');
  await halves(60, 40).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file);
  const img = await decodeImageAtSize(file, 8);
  assert.deepEqual([img.width, img.height], [40, 60], 'the size as displayed');
  // Orientation 6: the stored left edge becomes the top. Top row red, bottom row blue, across the width.
  for (const x of [0, 7]) {
    assert.ok(near(img.data.subarray(x * 3), RED, 12), `top row x=${x}: ${img.data.subarray(x * 3, x * 3 + 3)}`);
    assert.ok(near(img.data.subarray((7 * 8 + x) * 3), BLUE, 12), `bottom row x=${x}`);
  }
  // Without the tag the same pixels keep red on the left.
  const plain = path.join(dir, 'plain.jpg');
  await halves(60, 40).jpeg({ quality: 95 }).toFile(plain);
  const p = await decodeImageAtSize(plain, 8);
  assert.ok(near(p.data, RED, 12) && near(p.data.subarray(7 * 3), BLUE, 12));
});

test('CMYK JPEG, greyscale, 16-bit and palette PNG become 8-bit RGB; transparency is flattened on white', async () => {
  const dir = tempDir();
  const files = {
    cmyk: path.join(dir, 'cmyk.jpg'),
    grey: path.join(dir, 'grey.png'),
    deep: path.join(dir, 'deep.png'),
    palette: path.join(dir, 'palette.png'),
    alpha: path.join(dir, 'alpha.png'),
  };
  await halves(32, 16).jpeg({ quality: 95 }).toColourspace('cmyk').toFile(files.cmyk);
  await halves(32, 16).greyscale().png().toFile(files.grey);
  await halves(32, 16).toColourspace('rgb16').png().toFile(files.deep);
  await halves(32, 16).png({ palette: true }).toFile(files.palette);
  await sharp(Buffer.alloc(16 * 16 * 4), { raw: { width: 16, height: 16, channels: 4 } }).png().toFile(files.alpha);
  assert.equal((await sharp(files.cmyk).metadata()).space, 'cmyk');
  assert.equal((await sharp(files.deep).metadata()).depth, 'ushort');
  const at = async (f: string) => (await decodeImageAtSize(f, 4)).data;
  const cmyk = await at(files.cmyk);
  assert.ok(cmyk[0] > 150 && cmyk[2] < 90, `left reddish: ${cmyk.subarray(0, 3)}`);
  assert.ok(cmyk[3 * 3 + 2] > 100 && cmyk[3 * 3] < 90, `right bluish: ${cmyk.subarray(9, 12)}`);
  const grey = await at(files.grey);
  assert.equal(grey[0], grey[1]);
  assert.equal(grey[1], grey[2]);
  assert.ok(near(await at(files.deep), RED, 6), '16-bit scaled to 8-bit (Lanczos rings a little at the edge)');
  assert.ok(near(await at(files.palette), RED, 6));
  assert.deepEqual(Array.from((await at(files.alpha)).subarray(0, 3)), [255, 255, 255]);
});

test('a declared 60000x60000 PNG is refused by its header, naming the file and the limit', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'bomb.png');
  fs.writeFileSync(file, declaredPng(60000, 60000));
  assert.ok(fs.statSync(file).size < 1000, 'a tiny file');
  const started = performance.now();
  await assert.rejects(
    decodeImageAtSize(file, 32),
    (e: Error) => e.message.startsWith(`${file}: 60000x60000 pixels (3600.0 megapixels) is more than the limit of 178956970 pixels`) && /data\.maxImagePixels/.test(e.message),
  );
  assert.ok(performance.now() - started < 2000);
  // The limit is configurable: a small one refuses an ordinary image.
  const small = path.join(dir, 'small.png');
  await halves(40, 30).png().toFile(small);
  await assert.rejects(decodeImageAtSize(small, 8, { maxPixels: 1000 }), /40x30 pixels .* limit of 1000 pixels/);
  assert.equal((await decodeImageAtSize(small, 8, { maxPixels: 1200 })).width, 40);
});

test('issue 25 case 3: a PNG bomb given to `data --images` is refused by name within 2 s and 500 MB', () => {
  const root = tempDir();
  fs.mkdirSync(path.join(root, 'a'));
  fs.mkdirSync(path.join(root, 'b'));
  // 20000x20000, as in the issue; the IDAT holds one row (the header is what is judged).
  fs.writeFileSync(path.join(root, 'a', 'bomb.png'), declaredPng(20000, 20000));
  fs.writeFileSync(path.join(root, 'b', 'ok.png'), declaredPng(4, 4));
  const r = cliMeasured(['data', '--json', '--images', root]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`${path.join(root, 'a', 'bomb.png').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 20000x20000 pixels \\(400\\.0 megapixels\\) is more than the limit`));
  const m = r;
  assert.ok(m.seconds < 2, `${m.seconds} s`);
  assert.ok(m.maxRssMB < 500, `${m.maxRssMB} MB`);
});
test('bad files: zero bytes, a truncated JPEG, a text file named .jpg, a bomb - all listed at once; --skip-unreadable lists them in the JSON', async () => {
  const root = tempDir();
  fs.mkdirSync(path.join(root, 'cats'));
  fs.mkdirSync(path.join(root, 'dogs'));
  await halves(64, 48).jpeg().toFile(path.join(root, 'cats', 'good1.jpg'));
  await halves(64, 48).png().toFile(path.join(root, 'dogs', 'good2.png'));
  await halves(64, 48).webp().toFile(path.join(root, 'dogs', 'good3.webp'));
  const big = await halves(600, 400).jpeg({ quality: 90 }).toBuffer();
  const bad = {
    empty: path.join(root, 'cats', 'empty.jpg'),
    truncated: path.join(root, 'cats', 'truncated.jpg'),
    text: path.join(root, 'dogs', 'notes.jpg'),
    bomb: path.join(root, 'dogs', 'bomb.png'),
  };
  fs.writeFileSync(bad.empty, '');
  fs.writeFileSync(bad.truncated, big.subarray(0, Math.floor(big.length / 2)));
  fs.writeFileSync(bad.text, 'this is not a photo\n');
  fs.writeFileSync(bad.bomb, declaredPng(60000, 60000));
  await assert.rejects(loadImageFolder(root, 16), (e: Error) => {
    assert.match(e.message, new RegExp(`^${root.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 4 of 7 image files cannot be read`));
    assert.match(e.message, /skipUnreadable: true \/ --skip-unreadable/);
    assert.ok(e.message.includes(`${bad.empty}: empty file (0 bytes)`), e.message);
    assert.ok(e.message.includes(`${bad.truncated}: truncated or damaged`), e.message);
    assert.ok(e.message.includes(`${bad.text}: not an image in a format this build reads`), e.message);
    assert.ok(e.message.includes(`${bad.bomb}: 60000x60000 pixels`), e.message);
    return true;
  });
  const r = spawnSync(process.execPath, [cli, 'data', '--json', '--skip-unreadable', '--images', root], { encoding: 'utf8', env: { ...process.env, TLWB_BACKEND: 'cpu' } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.train.perClass, [1, 2]);
  assert.deepEqual(
    out.skipped.map((s: { file: string }) => s.file),
    [bad.empty, bad.bomb, bad.truncated, bad.text],
    'every bad file, in the interleaved file order (cats, dogs, cats, ...)',
  );
  assert.match(out.skipped[0].reason, /^empty file/);
  assert.match(r.stderr, /4 unreadable image files skipped/);
  // --max-image-pixels: the limit named on the command line refuses the ordinary images too.
  const tight = spawnSync(process.execPath, [cli, 'data', '--json', '--skip-unreadable', '--max-image-pixels', '1000', '--images', root], { encoding: 'utf8', env: { ...process.env, TLWB_BACKEND: 'cpu' } });
  assert.notEqual(tight.status, 0);
  assert.match(tight.stderr, /no readable images/);
  // Cached: the second load refuses (or skips) exactly as the first.
  await assert.rejects(loadImageFolder(root, 16), /4 of 7 image files cannot be read/);
  assert.equal((await loadImageFolder(root, 16, { skipUnreadable: true })).skipped?.length, 4);
});

test('`data --images <folder> --json` reads JPEG, PNG, WebP, AVIF, TIFF and GIF', async () => {
  const root = tempDir();
  const formats = ['jpeg', 'png', 'webp', 'avif', 'tiff', 'gif'] as const;
  for (const [i, f] of formats.entries()) {
    const dir = path.join(root, i % 2 ? 'blue' : 'red');
    fs.mkdirSync(dir, { recursive: true });
    const raw = Buffer.alloc(30 * 20 * 3);
    for (let p = 0; p < 600; p++) raw.set(i % 2 ? BLUE : RED, p * 3);
    await sharp(raw, { raw: { width: 30, height: 20, channels: 3 } }).toFormat(f).toFile(path.join(dir, `img.${f === 'jpeg' ? 'jpg' : f === 'tiff' ? 'tif' : f}`));
  }
  const r = spawnSync(process.execPath, [cli, 'data', '--json', '--images', root, '--size', '8'], { encoding: 'utf8', env: { ...process.env, TLWB_BACKEND: 'cpu' } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.classes, ['blue', 'red']);
  assert.deepEqual(out.train.perClass, [3, 3]);
  assert.equal(out.skipped, undefined);
  const ds = await loadImageFolder(root, 8);
  for (let n = 0; n < ds.train.count; n++) {
    const px = ds.train.images.subarray(n * 192 + 100 * 0, n * 192 + 3);
    assert.ok(near(px, ds.train.labels[n] === 0 ? BLUE : RED, 40), `image ${n}: ${px}`);
  }
});

test('imbalance: a warning when the largest class is more than 5x the smallest', async () => {
  assert.equal(imbalanceWarning(['a', 'b'], [50, 10], 'x'), undefined);
  assert.match(imbalanceWarning(['a', 'b', 'c'], [51, 10, 30], 'x') ?? '', /^x: imbalanced classes, 'a' has 51 images and 'b' 10 \(5\.1x, more than 5x\).*train\.classWeights: "balanced"/);
  const root = tempDir();
  for (const [c, n] of [['many', 6], ['few', 1]] as const) {
    fs.mkdirSync(path.join(root, c));
    for (let i = 0; i < n; i++) await halves(8, 8).png().toFile(path.join(root, c, `${i}.png`));
  }
  const ds = await loadImageFolder(root, 8);
  assert.match(ds.warnings?.[0] ?? '', /'many' has 6 images and 'few' 1/);
});

test('peak memory of decoding a folder of large photos stays bounded (child process maxRSS)', async () => {
  // 24 JPEGs of 3000x2000 (6 megapixels: 18 MB each decoded at full size, 430 MB for all) to 64 px.
  const root = tempDir();
  const photo = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: 'grey', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg({ quality: 85 }).toBuffer();
  for (const c of ['a', 'b']) {
    fs.mkdirSync(path.join(root, c));
    for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(root, c, `${i}.jpg`), photo);
  }
  const r = cliMeasured(['data', '--json', '--images', root, '--size', '64'], { TLWB_DATA_DIR: tempDir('tlwb-cache-') });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).train.count, 24);
  const maxRssMB = r.maxRssMB;
  // Node + TF.js + sharp start near 150 MB; decoding at full size one at a time would add 18 MB each and
  // the whole folder 430 MB (measured: 97 MB). 250 MB leaves room for the pool's images in flight, not for the folder.
  assert.ok(maxRssMB < 250, `peak RSS ${maxRssMB.toFixed(0)} MB`);
  process.stderr.write(`data --images over 24 photos of 3000x2000: maxRSS ${maxRssMB.toFixed(0)} MB, own peak (VmHWM) ${r.ownPeakMB.toFixed(0)} MB\n`);
});
