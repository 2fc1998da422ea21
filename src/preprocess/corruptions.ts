/**
 * Photo-like corruptions of RGB images (uint8, [height, width, 3]): JPEG re-encoding, Gaussian noise,
 * Gaussian and defocus blur, contrast, brightness, colour jitter. Two users: the robustness
 * evaluation (src/results/robustness.ts), which applies the named CORRUPTIONS at CIFAR-10-C's
 * severity-3 parameters, and the training augmentation (photoAugment below), which draws their
 * strengths at random from the seeded stream of the batches.
 *
 * The named corruptions follow Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to
 * Common Corruptions and Perturbations" (ICLR 2019), as their code makes CIFAR-10-C:
 * github.com/hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py (the per-severity lists `c`
 * in gaussian_noise, gaussian_blur, defocus_blur, contrast, brightness, jpeg_compression; entry 3).
 * Like that script (np.uint8 of a float array), float results are clipped to 0..255 and truncated.
 */
import * as jpeg from 'jpeg-js';
import type { CorruptionName, PhotoAugment } from '../config';
import { Random } from '../random';

/** One image: RGB bytes, row-major, 3 per pixel. */
export interface Rgb {
  data: Uint8Array;
  width: number;
  height: number;
}

function checkImage(img: Rgb): void {
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(`image: ${img.data.length} bytes for ${img.width}x${img.height} RGB (expected ${img.width * img.height * 3})`);
  }
}

/** Float pixels (any range) back to bytes: clipped to 0..255, then truncated (make_cifar_c.py's np.uint8) or rounded. */
export function toBytes(values: ArrayLike<number>, rounding: 'truncate' | 'round' = 'truncate'): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] < 0 ? 0 : values[i] > 255 ? 255 : values[i];
    out[i] = rounding === 'round' ? Math.round(v) : Math.floor(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The codec: the one place that encodes and decodes JPEG, so another codec (sharp, libjpeg) can
// replace jpeg-js here alone.

/** Images per JPEG mosaic: bounds the mosaic (and its decoded copy) to a few tens of MB. */
const MOSAIC_IMAGES = 1024;

/**
 * `count` images of width x height (RGB, one after another in `images`) each saved as a baseline
 * JPEG at `quality` (1..100) and decoded again, in memory.
 *
 * jpeg-js builds its tables anew for every encode (about 80 ms on a loaded 2-core machine even for
 * a 32x32 image), so the images are encoded together as one mosaic: each padded to a multiple of 8
 * pixels by repeating its edge (what the encoder does at an image's border), so that every 8x8 block
 * holds one image's pixels. jpeg-js writes every channel at full resolution (4:4:4), so no block
 * mixes images and each comes back exactly as if encoded alone (tested). libjpeg's and PIL's
 * default, 4:2:0, also halves the colour resolution: their files of the same quality lose more.
 */
export function jpegRoundTripMany(images: Uint8Array, count: number, width: number, height: number, quality: number): Uint8Array {
  if (!(Number.isInteger(quality) && quality >= 1 && quality <= 100)) throw new Error(`jpegRoundTrip: quality should be an integer 1..100, got ${quality}`);
  const size = width * height * 3;
  if (images.length !== count * size) throw new Error(`jpegRoundTrip: ${images.length} bytes for ${count} images of ${width}x${height} RGB (expected ${count * size})`);
  const out = new Uint8Array(images.length);
  const tw = Math.ceil(width / 8) * 8;
  const th = Math.ceil(height / 8) * 8;
  for (let first = 0; first < count; first += MOSAIC_IMAGES) {
    const n = Math.min(MOSAIC_IMAGES, count - first);
    const columns = Math.max(1, Math.min(n, Math.floor(4096 / tw)));
    const rows = Math.ceil(n / columns);
    const mw = columns * tw;
    const mh = rows * th;
    const rgba = new Uint8Array(mw * mh * 4).fill(255);
    for (let k = 0; k < n; k++) {
      const ox = (k % columns) * tw;
      const oy = Math.floor(k / columns) * th;
      const src = (first + k) * size;
      for (let y = 0; y < th; y++) {
        const sy = Math.min(y, height - 1);
        for (let x = 0; x < tw; x++) {
          const s = src + (sy * width + Math.min(x, width - 1)) * 3;
          const d = ((oy + y) * mw + ox + x) * 4;
          rgba[d] = images[s];
          rgba[d + 1] = images[s + 1];
          rgba[d + 2] = images[s + 2];
        }
      }
    }
    const encoded = jpeg.encode({ data: rgba, width: mw, height: mh }, quality);
    const decoded = jpeg.decode(encoded.data, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
    if (decoded.width !== mw || decoded.height !== mh) throw new Error(`jpegRoundTrip: decoded ${decoded.width}x${decoded.height} from ${mw}x${mh}`);
    for (let k = 0; k < n; k++) {
      const ox = (k % columns) * tw;
      const oy = Math.floor(k / columns) * th;
      const dst = (first + k) * size;
      for (let y = 0; y < height; y++) {
        const row = ((oy + y) * mw + ox) * 3;
        out.set(decoded.data.subarray(row, row + width * 3), dst + y * width * 3);
      }
    }
  }
  return out;
}

/** One image saved as a JPEG at `quality` and decoded again (jpegRoundTripMany of one). */
export function jpegRoundTrip(img: Rgb, quality: number): Uint8Array {
  checkImage(img);
  return jpegRoundTripMany(img.data, 1, img.width, img.height, quality);
}

// ---------------------------------------------------------------------------------------------
// Noise

/** A standard normal draw (Box-Muller; two uniforms per draw, so the count of draws is fixed). */
export function normal(rng: Random): number {
  const u = 1 - rng.next(); // (0, 1]: log(0) never happens
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** x + N(0, (std * 255)^2) per pixel and channel (make_cifar_c.py gaussian_noise: std is a fraction of 255). */
export function gaussianNoise(img: Rgb, std: number, rng: Random): Float64Array {
  checkImage(img);
  const out = new Float64Array(img.data.length);
  const s = std * 255;
  for (let i = 0; i < out.length; i++) out[i] = img.data[i] + s * normal(rng);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Blur

/** Edge handling of a filter: 'nearest' repeats the edge pixel (scipy/skimage), 'reflect101' mirrors without it (OpenCV's default). */
type Border = 'nearest' | 'reflect101';

function borderIndex(i: number, n: number, border: Border): number {
  if (n === 1) return 0;
  if (border === 'nearest') return i < 0 ? 0 : i >= n ? n - 1 : i;
  let j = i;
  while (j < 0 || j >= n) j = j < 0 ? -j : 2 * (n - 1) - j;
  return j;
}

/** scipy.ndimage's 1-D Gaussian weights: radius int(truncate * sigma + 0.5), normalised to sum 1. */
export function gaussianKernel1d(sigma: number, truncate = 4): Float64Array {
  if (!(sigma > 0)) return Float64Array.of(1);
  const radius = Math.floor(truncate * sigma + 0.5);
  const k = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += k[i + radius] = Math.exp((-0.5 * i * i) / (sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Separable correlation of every channel with `k` along x then y. */
function separable(values: ArrayLike<number>, width: number, height: number, k: Float64Array, border: Border): Float64Array {
  const r = (k.length - 1) / 2;
  const tmp = new Float64Array(values.length);
  const out = new Float64Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let t = -r; t <= r; t++) s += k[t + r] * values[(y * width + borderIndex(x + t, width, border)) * 3 + c];
        tmp[(y * width + x) * 3 + c] = s;
      }
    }
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let t = -r; t <= r; t++) s += k[t + r] * tmp[(borderIndex(y + t, height, border) * width + x) * 3 + c];
        out[(y * width + x) * 3 + c] = s;
      }
    }
  }
  return out;
}

/**
 * skimage.filters.gaussian(x, sigma, multichannel=True) as make_cifar_c.py's gaussian_blur calls it:
 * each channel blurred, the edge pixel repeated ('nearest'), the kernel cut at 4 sigma.
 */
export function gaussianBlur(img: Rgb, sigma: number): Float64Array {
  checkImage(img);
  return separable(img.data, img.width, img.height, gaussianKernel1d(sigma), 'nearest');
}

/**
 * make_cifar_c.py's disk(radius, alias_blur): the pixels within `radius` of the centre (on a 17x17
 * grid up to radius 8), normalised, then smoothed by cv2.GaussianBlur with a 3x3 kernel (5x5 above
 * radius 8) of sigma alias_blur. Returned trimmed to its non-zero square (odd side, centred).
 */
export function defocusKernel(radius: number, aliasBlur: number): { size: number; weights: Float64Array } {
  const half = radius <= 8 ? 8 : Math.ceil(radius);
  const ksize = radius <= 8 ? 3 : 5;
  const n = 2 * half + 1;
  const disk = new Float64Array(n * n);
  let total = 0;
  for (let y = -half; y <= half; y++) {
    for (let x = -half; x <= half; x++) {
      if (x * x + y * y <= radius * radius) {
        disk[(y + half) * n + x + half] = 1;
        total++;
      }
    }
  }
  for (let i = 0; i < disk.length; i++) disk[i] /= total;
  // cv2.getGaussianKernel(ksize, sigma): exp(-(i - (ksize-1)/2)^2 / (2 sigma^2)), normalised
  const g = new Float64Array(ksize);
  let gs = 0;
  for (let i = 0; i < ksize; i++) gs += g[i] = Math.exp(-((i - (ksize - 1) / 2) ** 2) / (2 * aliasBlur * aliasBlur));
  for (let i = 0; i < ksize; i++) g[i] /= gs;
  const smoothed = separable(Float64Array.from({ length: n * n * 3 }, (_, i) => disk[Math.floor(i / 3)]), n, n, g, 'reflect101');
  const full = Float64Array.from({ length: n * n }, (_, i) => smoothed[i * 3]);
  // trim the zero border symmetrically, so the kernel stays centred (a 17x17 kernel on 32x32 images costs 30x a 3x3)
  let trim = 0;
  const rowColZero = (t: number) => {
    for (let i = 0; i < n; i++) {
      if (full[t * n + i] !== 0 || full[(n - 1 - t) * n + i] !== 0 || full[i * n + t] !== 0 || full[i * n + n - 1 - t] !== 0) return false;
    }
    return true;
  };
  while (trim < half && rowColZero(trim)) trim++;
  const size = n - 2 * trim;
  const weights = new Float64Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) weights[y * size + x] = full[(y + trim) * n + x + trim];
  return { size, weights };
}

/**
 * make_cifar_c.py's defocus_blur: each channel correlated (cv2.filter2D, edges mirrored without the
 * edge pixel) with the disk kernel of `radius`, anti-aliased by `aliasBlur`.
 */
export function defocusBlur(img: Rgb, radius: number, aliasBlur: number): Float64Array {
  checkImage(img);
  const { size, weights } = defocusKernel(radius, aliasBlur);
  const r = (size - 1) / 2;
  const { width: W, height: H, data } = img;
  const out = new Float64Array(data.length);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let ky = -r; ky <= r; ky++) {
          const sy = borderIndex(y + ky, H, 'reflect101');
          for (let kx = -r; kx <= r; kx++) s += weights[(ky + r) * size + kx + r] * data[(sy * W + borderIndex(x + kx, W, 'reflect101')) * 3 + c];
        }
        out[(y * W + x) * 3 + c] = s;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Colour

/** Mean of each channel over the image. */
export function channelMeans(values: ArrayLike<number>): [number, number, number] {
  const m: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < values.length; i++) m[i % 3] += values[i];
  const n = values.length / 3;
  return [m[0] / n, m[1] / n, m[2] / n];
}

/** make_cifar_c.py's contrast: each channel's distance to its own mean over the image scaled by `factor`. */
export function contrast(img: Rgb, factor: number): Float64Array {
  checkImage(img);
  const means = channelMeans(img.data);
  const out = new Float64Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = (img.data[i] - means[i % 3]) * factor + means[i % 3];
  return out;
}

/**
 * make_cifar_c.py's brightness: `add` (a fraction of 255) added to HSV value, clipped to 1, back to
 * RGB. With hue and saturation fixed, RGB is proportional to V, so each pixel is scaled by V'/V
 * (a black pixel, whose saturation skimage sets to 0, becomes grey V').
 */
export function brightness(img: Rgb, add: number): Float64Array {
  checkImage(img);
  const out = new Float64Array(img.data.length);
  for (let p = 0; p < out.length; p += 3) {
    const v = Math.max(img.data[p], img.data[p + 1], img.data[p + 2]) / 255;
    const v2 = Math.min(1, v + add);
    for (let c = 0; c < 3; c++) out[p + c] = v > 0 ? img.data[p + c] * (v2 / v) : v2 * 255;
  }
  return out;
}

/** ITU-R 601 luma, the grey of torchvision's rgb_to_grayscale. */
function grey(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

/**
 * Colour jitter with given factors (1 = unchanged), in torchvision's sense: brightness scales every
 * pixel, contrast scales the distance to the image's mean grey, saturation the distance of each
 * pixel to its own grey. Applied in that order.
 */
export function colorJitter(img: Rgb, f: { brightness: number; contrast: number; saturation: number }): Float64Array {
  checkImage(img);
  const n = img.width * img.height;
  const out = new Float64Array(img.data.length);
  let meanGrey = 0;
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) out[p * 3 + c] = Math.min(255, img.data[p * 3 + c] * f.brightness);
    meanGrey += grey(out[p * 3], out[p * 3 + 1], out[p * 3 + 2]);
  }
  meanGrey /= n;
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.max(0, (out[i] - meanGrey) * f.contrast + meanGrey));
  for (let p = 0; p < n; p++) {
    const gy = grey(out[p * 3], out[p * 3 + 1], out[p * 3 + 2]);
    for (let c = 0; c < 3; c++) out[p * 3 + c] = (out[p * 3 + c] - gy) * f.saturation + gy;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The named corruptions (evaluation)

export interface Corruption {
  name: CorruptionName;
  /** What it does, with its parameters, for tables and charts. */
  label: string;
  /** The parameters, as evaluation.json records them. */
  params: Record<string, number>;
  /** Where the parameters come from. */
  source: string;
  /** The corrupted image; `rng` is drawn from only by random corruptions (noise). */
  apply: (img: Rgb, rng: Random) => Uint8Array;
  /** The same for `count` images at once, when that is much faster (JPEG); same result as apply one by one. */
  applyMany?: (images: Uint8Array, count: number, width: number, height: number) => Uint8Array;
}

const CIFAR_C = 'CIFAR-10-C severity 3 (hendrycks/robustness make_cifar_c.py)';

function jpegCorruption(name: CorruptionName, quality: number): Corruption {
  return {
    name,
    label: `JPEG quality ${quality}`,
    params: { quality },
    source: `quality asked for in issue 23 (CIFAR-10-C uses 80/65/58/50/40; severity 3 is 58); codec jpeg-js, 4:4:4`,
    apply: (img) => jpegRoundTrip(img, quality),
    applyMany: (images, count, width, height) => jpegRoundTripMany(images, count, width, height, quality),
  };
}

/** Every named corruption, in the order tables list them. */
export const CORRUPTIONS: Record<CorruptionName, Corruption> = {
  'jpeg-90': jpegCorruption('jpeg-90', 90),
  'jpeg-75': jpegCorruption('jpeg-75', 75),
  'jpeg-50': jpegCorruption('jpeg-50', 50),
  'gaussian-noise': {
    name: 'gaussian-noise',
    label: 'Gaussian noise σ 0.08',
    params: { std: 0.08 },
    source: CIFAR_C,
    apply: (img, rng) => toBytes(gaussianNoise(img, 0.08, rng)),
  },
  'gaussian-blur': {
    name: 'gaussian-blur',
    label: 'Gaussian blur σ 0.7 px',
    params: { sigma: 0.7 },
    source: CIFAR_C,
    apply: (img) => toBytes(gaussianBlur(img, 0.7)),
  },
  'defocus-blur': {
    name: 'defocus-blur',
    label: 'defocus blur r 0.5, alias σ 0.6',
    params: { radius: 0.5, aliasBlur: 0.6 },
    source: CIFAR_C,
    apply: (img) => toBytes(defocusBlur(img, 0.5, 0.6)),
  },
  contrast: {
    name: 'contrast',
    label: 'contrast ×0.4',
    params: { factor: 0.4 },
    source: CIFAR_C,
    apply: (img) => toBytes(contrast(img, 0.4)),
  },
  brightness: {
    name: 'brightness',
    label: 'brightness +0.15 V',
    params: { add: 0.15 },
    source: CIFAR_C,
    apply: (img) => toBytes(brightness(img, 0.15)),
  },
};

// ---------------------------------------------------------------------------------------------
// Training augmentation

const uniform = (rng: Random, lo: number, hi: number) => lo + (hi - lo) * rng.next();

/**
 * `img` with photoAugment's per-image steps applied in place, in order colour jitter, blur, noise.
 * Each step draws one number to decide, and its strength only when it applies. Returns whether the
 * image is to be re-encoded as JPEG (one more draw when cfg.jpeg is set): photoAugmentBatch encodes
 * the chosen images of a batch together.
 */
export function photoAugmentImage(img: Rgb, cfg: PhotoAugment, rng: Random): boolean {
  checkImage(img);
  let data = img.data;
  const current = (): Rgb => ({ data, width: img.width, height: img.height });
  if (cfg.colorJitter && rng.next() < cfg.colorJitter.probability) {
    const j = cfg.colorJitter;
    const factors = { brightness: uniform(rng, 1 - j.brightness, 1 + j.brightness), contrast: uniform(rng, 1 - j.contrast, 1 + j.contrast), saturation: uniform(rng, 1 - j.saturation, 1 + j.saturation) };
    data = toBytes(colorJitter(current(), factors), 'round');
  }
  if (cfg.blur && rng.next() < cfg.blur.probability) data = toBytes(gaussianBlur(current(), uniform(rng, cfg.blur.sigma[0], cfg.blur.sigma[1])), 'round');
  if (cfg.noise && rng.next() < cfg.noise.probability) data = toBytes(gaussianNoise(current(), uniform(rng, cfg.noise.std[0], cfg.noise.std[1]), rng), 'round');
  if (data !== img.data) img.data.set(data);
  return !!cfg.jpeg && rng.next() < cfg.jpeg.probability;
}

/**
 * The photoAugment settings applied in place to a batch of `count` images (RGB, one after another):
 * colour jitter, blur and noise image by image, then JPEG last (a camera's image, then its
 * compression) - one quality drawn per batch from the range, for the images that drew it, encoded
 * together (one jpeg-js encode per batch instead of one per image). Every draw comes from `rng`,
 * so a checkpoint that saves rng.state resumes the same images. `before(i)` runs first on image i
 * (the crop + flip), so its draws interleave as the pipeline makes them.
 */
export function photoAugmentBatch(images: Uint8Array, count: number, width: number, height: number, cfg: PhotoAugment, rng: Random, before?: (i: number) => void): void {
  const size = width * height * 3;
  const chosen: number[] = [];
  for (let i = 0; i < count; i++) {
    before?.(i);
    if (photoAugmentImage({ data: images.subarray(i * size, (i + 1) * size), width, height }, cfg, rng)) chosen.push(i);
  }
  if (!chosen.length || !cfg.jpeg) return;
  const [lo, hi] = cfg.jpeg.quality;
  const quality = lo + rng.int(hi - lo + 1);
  const block = new Uint8Array(chosen.length * size);
  chosen.forEach((i, k) => block.set(images.subarray(i * size, (i + 1) * size), k * size));
  const encoded = jpegRoundTripMany(block, chosen.length, width, height, quality);
  chosen.forEach((i, k) => images.set(encoded.subarray(k * size, (k + 1) * size), i * size));
}
