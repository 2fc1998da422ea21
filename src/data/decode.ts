/**
 * Decoding the user's images with sharp (libvips): JPEG, PNG, WebP, AVIF, GIF (first frame) and TIFF,
 * straight to the working size. The one resize rule, used by training (image folders), `data` and
 * `predict`, so that they all see the same pixels:
 *   EXIF orientation applied; CMYK, greyscale, palette and 16-bit turned into 8-bit sRGB; alpha
 *   flattened on white; then sharp's resize with fit 'fill' (the aspect ratio is not kept, as
 *   Keras' image_dataset_from_directory) and its default Lanczos-3 kernel (anti-aliased when
 *   shrinking). JPEGs shrink on load (libjpeg's DCT scaling), so a 12-megapixel photo never exists
 *   at full size in memory.
 * Images above a pixel limit are refused from their header, before any pixel buffer is allocated.
 */
import * as fs from 'node:fs';
import sharp from 'sharp';

/** Formats this build decodes (for messages). HEIC needs HEVC, which sharp's prebuilt libvips leaves out. */
export const READABLE_FORMATS = 'JPEG, PNG, WebP, AVIF, GIF or TIFF';

/** File names looked at in an image folder. .heic/.heif are listed so that they are reported, not ignored. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.avif', '.gif', '.tif', '.tiff', '.heic', '.heif'];

/**
 * Default width x height limit: Pillow's (2 x Image.MAX_IMAGE_PIXELS, where it raises
 * DecompressionBombError), far above any camera's 12-100 megapixels.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 178_956_970;

/** Transparent pixels become this colour (what a viewer shows on a white page). */
export const FLATTEN_BACKGROUND = { r: 255, g: 255, b: 255 };

export interface DecodeOptions {
  /** Refuse images whose width x height exceeds this (data.maxImagePixels). Default DEFAULT_MAX_IMAGE_PIXELS. */
  maxPixels?: number;
  /** Where the limit comes from, for the error message. Default 'data.maxImagePixels'. */
  limitName?: string;
}

/** An image decoded at size x size. */
export interface SizedImage {
  /** size x size x 3 bytes, RGB, row-major. */
  data: Uint8Array;
  /** The image's own size, as displayed (after EXIF orientation). */
  width: number;
  height: number;
  format: string;
}

// libvips' operation cache would keep recent images around; every file here is read once.
sharp.cache(false);

/** What a non-regular file is, for messages. */
function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function statFile(file: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

/**
 * Throws, naming the file, unless it is a regular file (symlinks followed): reading a FIFO or a
 * device would block or never end.
 */
export function assertRegularFile(file: string): void {
  const st = statFile(file);
  if (!st.isFile()) throw new Error(`${file}: ${fileKind(st)}, not an image file`);
}

/** A short reason for a libvips error message. */
function reason(message: string): string {
  if (/unsupported image format/i.test(message)) return `not an image in a format this build reads (${READABLE_FORMATS})`;
  if (/premature end|truncated|unexpected end|not enough data|short read/i.test(message)) return `truncated or damaged (${message})`;
  return `cannot decode (${message})`;
}

function megapixels(n: number): string {
  return `${(n / 1e6).toFixed(1)} megapixels`;
}

/**
 * Reads `file` and returns it at size x size (the module's resize rule). Every failure names the
 * file and says why: not a regular file, empty, not an image, truncated, above the pixel limit.
 */
export async function decodeImageAtSize(file: string, size: number, opts: DecodeOptions = {}): Promise<SizedImage> {
  if (!(Number.isInteger(size) && size > 0 && size <= 4096)) throw new Error(`image size should be an integer in 1..4096, got ${size}`);
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  const st = statFile(file);
  if (!st.isFile()) throw new Error(`${file}: ${fileKind(st)}, not an image file`);
  if (st.size === 0) throw new Error(`${file}: empty file (0 bytes)`);
  // failOn 'truncated': a cut-off file is an error; the minor warnings many cameras' JPEGs raise are not.
  // limitInputPixels is libvips' own guard; the header check below comes first and names our setting.
  const image = sharp(file, { failOn: 'truncated', limitInputPixels: false, sequentialRead: true, animated: false });
  let meta: sharp.Metadata;
  try {
    meta = await image.metadata();
  } catch (e) {
    throw new Error(`${file}: ${reason((e as Error).message)}`, { cause: e });
  }
  const width = meta.width;
  const height = meta.pageHeight ?? meta.height;
  if (width * height > maxPixels) {
    throw new Error(
      `${file}: ${width}x${height} pixels (${megapixels(width * height)}) is more than the limit of ${maxPixels} pixels ` +
        `(${megapixels(maxPixels)}, ${opts.limitName ?? 'data.maxImagePixels'}); refused before decoding (a decompression bomb, or raise the limit)`,
    );
  }
  try {
    const { data, info } = await image
      .rotate() // EXIF orientation
      .flatten({ background: FLATTEN_BACKGROUND })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill' })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size || info.channels !== 3 || data.length !== size * size * 3) {
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
    }
    const turned = (meta.orientation ?? 1) >= 5; // 5-8 swap width and height
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: turned ? height : width, height: turned ? width : height, format: meta.format ?? 'unknown' };
  } catch (e) {
    throw new Error(`${file}: ${reason((e as Error).message)}`, { cause: e });
  }
}

/** Runs `task` over `items` with at most `limit` at a time; results in input order. */
export async function mapPool<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await task(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
