/** In-memory image data: compact uint8 arrays, converted to float tensors only per batch. */

/** A block of same-size RGB images with one class index each. */
export interface ImageSet {
  /** count x height x width x 3 bytes, NHWC, RGB, row-major. */
  images: Uint8Array;
  /** One class index per image. */
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
}

/** A file left out of a data set because it could not be read (data.skipUnreadable), and why. */
export interface SkippedFile {
  file: string;
  reason: string;
}

/** A labelled data set: class names, a training set and (usually) a test set. */
export interface Dataset {
  name: string;
  classes: string[];
  train: ImageSet;
  test?: ImageSet;
  /** Where it came from: a folder or a URL. */
  source: string;
  /** What is unusual about it but not wrong (e.g. a partial CIFAR-10 copy), for the data summary. */
  warnings?: string[];
  /** Image files left out as unreadable (only with data.skipUnreadable; otherwise they refuse the folder). */
  skipped?: SkippedFile[];
}

/** Bytes of one image in an ImageSet. */
export function imageBytes(set: Pick<ImageSet, 'height' | 'width'>): number {
  return set.height * set.width * 3;
}

/** A new ImageSet holding copies of the images at `indices`, in that order. */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const size = imageBytes(set);
  const images = new Uint8Array(indices.length * size);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!(j >= 0 && j < set.count)) throw new Error(`subset: index ${j} outside 0..${set.count - 1}`);
    images.set(set.images.subarray(j * size, (j + 1) * size), i * size);
    labels[i] = set.labels[j];
  }
  return { images, labels, count: indices.length, height: set.height, width: set.width };
}

/** Images per class, index = class. */
export function countPerClass(set: ImageSet, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < set.count; i++) counts[set.labels[i]]++;
  return counts;
}
