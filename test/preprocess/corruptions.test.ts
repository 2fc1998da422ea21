import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../../src/backend';
import { ImageSet } from '../../src/data/types';
import { Random } from '../../src/random';
import { batches } from '../../src/preprocess/batches';
import {
  CORRUPTIONS, Rgb, brightness, channelMeans, colorJitter, contrast, defocusBlur, defocusKernel, gaussianBlur, gaussianKernel1d, gaussianNoise, jpegRoundTrip, jpegRoundTripMany, photoAugmentBatch, toBytes,
} from '../../src/preprocess/corruptions';
import { CORRUPTION_NAMES } from '../../src/config';
import * as jpeg from 'jpeg-js';

before(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

/** A 32x32 photo-like image: smooth colour gradients, an edge and some texture (seeded). */
function photo(seed = 1, side = 32): Rgb {
  const rng = new Random(seed);
  const data = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const edge = x + y > side ? 60 : 0;
      const t = rng.int(24);
      data.set([40 + 5 * x + t, 30 + 4 * y + edge, 200 - 3 * x - 2 * y + t], (y * side + x) * 3);
    }
  }
  return { data, width: side, height: side };
}

const meanAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
};
const std = (xs: ArrayLike<number>, mean: number) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i] - mean) ** 2;
  return Math.sqrt(s / xs.length);
};

test('the named corruptions are the profile schema\'s names, with CIFAR-10-C severity-3 parameters', () => {
  assert.deepEqual(Object.keys(CORRUPTIONS), [...CORRUPTION_NAMES]);
  // make_cifar_c.py, entry 3 of each list
  assert.deepEqual(CORRUPTIONS['gaussian-noise'].params, { std: 0.08 });
  assert.deepEqual(CORRUPTIONS['gaussian-blur'].params, { sigma: 0.7 });
  assert.deepEqual(CORRUPTIONS['defocus-blur'].params, { radius: 0.5, aliasBlur: 0.6 });
  assert.deepEqual(CORRUPTIONS.contrast.params, { factor: 0.4 });
  assert.deepEqual(CORRUPTIONS.brightness.params, { add: 0.15 });
  assert.deepEqual([90, 75, 50].map((q) => CORRUPTIONS[`jpeg-${q}` as 'jpeg-90'].params.quality), [90, 75, 50]);
});

test('JPEG: a lower quality changes the pixels more; the same input gives the same output', () => {
  const img = photo();
  const diff = (q: number) => meanAbsDiff(jpegRoundTrip(img, q), img.data);
  const [d95, d90, d75, d50, d20] = [95, 90, 75, 50, 20].map(diff);
  assert.ok(d90 > 0, 'quality 90 is lossy');
  assert.ok(d95 < d90 && d90 < d75 && d75 < d50 && d50 < d20, `error grows as quality falls: ${[d95, d90, d75, d50, d20].map((d) => d.toFixed(2))}`);
  assert.ok(d90 < 8, `quality 90 stays close on a textured image (${d90.toFixed(2)} levels on average)`);
  assert.deepEqual(jpegRoundTrip(img, 50), jpegRoundTrip(img, 50));
  assert.throws(() => jpegRoundTrip(img, 0), /quality should be an integer 1\.\.100/);
  assert.throws(() => jpegRoundTrip({ ...img, width: 31 }, 50), /bytes for 31x32 RGB/);
});

/** One image through jpeg-js alone, as the reference for the mosaic. */
function alone(img: Rgb, quality: number): Uint8Array {
  const rgba = new Uint8Array(img.width * img.height * 4).fill(255);
  for (let p = 0; p < img.width * img.height; p++) rgba.set(img.data.subarray(p * 3, p * 3 + 3), p * 4);
  return jpeg.decode(jpeg.encode({ data: rgba, width: img.width, height: img.height }, quality).data, { useTArray: true, formatAsRGBA: false }).data;
}

test('JPEG mosaic: images encoded together come back exactly as encoded one by one (8-aligned and not)', () => {
  for (const side of [32, 13]) {
    const imgs = [1, 2, 3, 4, 5].map((seed) => photo(seed, side));
    const block = new Uint8Array(imgs.length * side * side * 3);
    imgs.forEach((im, k) => block.set(im.data, k * side * side * 3));
    const together = jpegRoundTripMany(block, imgs.length, side, side, 58);
    imgs.forEach((im, k) => assert.deepEqual(together.subarray(k * side * side * 3, (k + 1) * side * side * 3), alone(im, 58), `image ${k} at ${side}x${side}`));
  }
});

test('Gaussian noise: zero mean, the documented std (a fraction of 255), deterministic for a seed', () => {
  const grey = { data: new Uint8Array(64 * 64 * 3).fill(128), width: 64, height: 64 };
  const a = gaussianNoise(grey, 0.08, new Random(5));
  const delta = Array.from(a, (v) => v - 128);
  const m = delta.reduce((s, v) => s + v, 0) / delta.length;
  assert.ok(Math.abs(m) < 0.5, `mean ${m}`);
  assert.ok(Math.abs(std(delta, m) - 0.08 * 255) < 0.4, `std ${std(delta, m)} vs ${0.08 * 255}`);
  assert.deepEqual(gaussianNoise(grey, 0.08, new Random(5)), a, 'same seed, same noise');
  assert.notDeepEqual(gaussianNoise(grey, 0.08, new Random(6)), a, 'another seed, other noise');
  const named = CORRUPTIONS['gaussian-noise'].apply(grey, new Random(5));
  assert.deepEqual(named, toBytes(a), 'the named corruption clips and truncates like np.uint8');
});

test('Gaussian blur: scipy\'s kernel (radius int(4 sigma + 0.5), sums to 1), constants kept, an impulse spread by it', () => {
  const k = gaussianKernel1d(0.7);
  assert.equal(k.length, 7, 'radius 3 at sigma 0.7');
  assert.ok(Math.abs(k.reduce((s, v) => s + v, 0) - 1) < 1e-12);
  assert.ok(Math.abs(k[2] / k[3] - Math.exp(-0.5 / 0.49)) < 1e-12, 'exp(-x^2 / 2 sigma^2)');
  const flat = { data: new Uint8Array(8 * 8 * 3).fill(77), width: 8, height: 8 };
  for (const v of gaussianBlur(flat, 0.7)) assert.ok(Math.abs(v - 77) < 1e-9, 'a flat image stays flat (edges repeated)');
  const impulse = { data: new Uint8Array(16 * 16 * 3), width: 16, height: 16 };
  impulse.data[(8 * 16 + 8) * 3] = 255;
  const out = gaussianBlur(impulse, 0.7);
  assert.ok(Math.abs(out[(8 * 16 + 8) * 3] - 255 * k[3] * k[3]) < 1e-9);
  assert.ok(Math.abs(out[(8 * 16 + 9) * 3] - 255 * k[3] * k[4]) < 1e-9);
  assert.equal(out[(8 * 16 + 8) * 3 + 1], 0, 'channels are blurred apart');
  const img = photo();
  assert.ok(meanAbsDiff(toBytes(gaussianBlur(img, 1.0)), img.data) > meanAbsDiff(toBytes(gaussianBlur(img, 0.4)), img.data), 'a wider sigma blurs more');
});

test('defocus blur at severity 3: a disk of one pixel anti-aliased by a 3x3 Gaussian of sigma 0.6 (OpenCV weights)', () => {
  const { size, weights } = defocusKernel(0.5, 0.6);
  assert.equal(size, 3);
  const g = Math.exp(-1 / (2 * 0.36));
  const centre = 1 / (1 + 2 * g);
  assert.ok(Math.abs(weights[4] - centre * centre) < 1e-12);
  assert.ok(Math.abs(weights[1] - centre * centre * g) < 1e-12);
  assert.ok(Math.abs(weights.reduce((s, v) => s + v, 0) - 1) < 1e-12);
  const wider = defocusKernel(1.5, 0.1);
  assert.equal(wider.size, 5, 'radius 1.5 covers a 5x5 square');
  const flat = { data: new Uint8Array(6 * 6 * 3).fill(90), width: 6, height: 6 };
  for (const v of defocusBlur(flat, 0.5, 0.6)) assert.ok(Math.abs(v - 90) < 1e-9);
  const img = photo();
  assert.ok(meanAbsDiff(toBytes(defocusBlur(img, 0.5, 0.6)), img.data) > 1, 'it blurs');
});

test('contrast keeps each channel\'s mean and scales its spread; brightness adds to HSV value, keeping hue', () => {
  const img = photo();
  const before = channelMeans(img.data);
  const c = contrast(img, 0.4);
  const after = channelMeans(c);
  for (let ch = 0; ch < 3; ch++) assert.ok(Math.abs(after[ch] - before[ch]) < 1e-9, `channel ${ch} mean kept`);
  const bytes = CORRUPTIONS.contrast.apply(img, new Random(0));
  const truncated = channelMeans(bytes);
  for (let ch = 0; ch < 3; ch++) assert.ok(before[ch] - truncated[ch] >= 0 && before[ch] - truncated[ch] < 1, 'truncation lowers a mean by under one level');
  const red = Array.from({ length: 1024 }, (_, p) => img.data[p * 3]);
  const redC = Array.from({ length: 1024 }, (_, p) => c[p * 3]);
  assert.ok(Math.abs(std(redC, after[0]) / std(red, before[0]) - 0.4) < 1e-9);

  const px = (r: number, g: number, b: number) => ({ data: Uint8Array.of(r, g, b), width: 1, height: 1 });
  const b = brightness(px(100, 50, 25), 0.15);
  const v2 = 100 + 0.15 * 255;
  assert.deepEqual(Array.from(b, (v) => +v.toFixed(9)), [v2, v2 / 2, v2 / 4].map((v) => +v.toFixed(9)), 'V up by 0.15, hue and saturation kept');
  assert.deepEqual(Array.from(brightness(px(0, 0, 0), 0.15)), [0.15 * 255, 0.15 * 255, 0.15 * 255], 'black becomes grey');
  assert.deepEqual(Array.from(brightness(px(250, 10, 10), 0.15)), [255, 10.2, 10.2], 'V clipped at 1');
});

test('colour jitter with factors 1 is the identity; saturation 0 gives grey', () => {
  const img = photo();
  assert.deepEqual(toBytes(colorJitter(img, { brightness: 1, contrast: 1, saturation: 1 }), 'round'), img.data);
  const g = colorJitter(img, { brightness: 1, contrast: 1, saturation: 0 });
  for (let p = 0; p < 1024; p++) assert.ok(Math.abs(g[p * 3] - g[p * 3 + 2]) < 1e-9 && Math.abs(g[p * 3] - g[p * 3 + 1]) < 1e-9);
});

const AUGMENT = { colorJitter: { probability: 0.8, brightness: 0.3, contrast: 0.3, saturation: 0.3 }, blur: { probability: 0.3, sigma: [0.3, 1] as [number, number] }, noise: { probability: 0.3, std: [0.01, 0.08] as [number, number] }, jpeg: { probability: 0.5, quality: [30, 95] as [number, number] } };

test('photoAugmentBatch: deterministic for a seed, changes images, and probability 0 changes nothing', () => {
  const n = 6;
  const originals = () => {
    const block = new Uint8Array(n * 32 * 32 * 3);
    for (let i = 0; i < n; i++) block.set(photo(i + 10).data, i * 32 * 32 * 3);
    return block;
  };
  const run = (seed: number, cfg = AUGMENT) => {
    const block = originals();
    photoAugmentBatch(block, n, 32, 32, cfg, new Random(seed));
    return block;
  };
  assert.deepEqual(run(3), run(3));
  assert.notDeepEqual(run(3), run(4));
  const a = run(3);
  const o = originals();
  const changed = Array.from({ length: n }, (_, i) => meanAbsDiff(a.subarray(i * 3072, (i + 1) * 3072), o.subarray(i * 3072, (i + 1) * 3072)) > 0).filter(Boolean).length;
  assert.ok(changed >= 4, `${changed} of ${n} images changed`);
  const off = { colorJitter: { ...AUGMENT.colorJitter, probability: 0 }, jpeg: { ...AUGMENT.jpeg, probability: 0 } };
  assert.deepEqual(run(1, off as typeof AUGMENT), originals());
  // JPEG alone at probability 1 and a one-value range: every image is exactly its quality-40 copy
  const jpegOnly = run(1, { jpeg: { probability: 1, quality: [40, 40] } } as unknown as typeof AUGMENT);
  assert.deepEqual(jpegOnly, jpegRoundTripMany(originals(), n, 32, 32, 40));
});

test('batches with photoAugment resume exactly from a saved rng state (checkpoint-safe)', () => {
  const n = 12;
  const set: ImageSet = { images: new Uint8Array(n * 32 * 32 * 3), labels: new Uint8Array(n), count: n, height: 32, width: 32 };
  for (let i = 0; i < n; i++) set.images.set(photo(i).data, i * 32 * 32 * 3);
  const opts = { batchSize: 4, shuffle: true, augment: true, photo: AUGMENT, mode: 'unit' as const, numClasses: 2 };
  const take = (rng: Random) => {
    const out: number[][] = [];
    for (const b of batches(set, { ...opts, rng })) {
      out.push(Array.from(b.xs.dataSync()));
      b.xs.dispose();
      b.ys.dispose();
    }
    return out;
  };
  const rng = new Random(42);
  take(rng); // epoch 1
  const saved = rng.state;
  const epoch2 = take(rng);
  assert.deepEqual(take(new Random(saved)), epoch2, 'epoch 2 again from the state saved after epoch 1');
  const plain = take(new Random(saved));
  assert.deepEqual(plain, epoch2);
  // without photoAugment the same rng gives other pixels: the corruptions really happen in the stream
  const noPhoto: number[][] = [];
  for (const b of batches(set, { ...opts, photo: undefined, rng: new Random(saved) })) {
    noPhoto.push(Array.from(b.xs.dataSync()));
    b.xs.dispose();
    b.ys.dispose();
  }
  assert.notDeepEqual(noPhoto, epoch2);
});
