/** Per-channel statistics of images before and after preprocessing (what notebook 02 tabulates). */
import { tf } from '../backend';
import { PreprocessMode } from '../config';
import { ImageSet } from '../data/types';
import { imagesToTensor } from './batches';
import { channelNames, preprocess } from './preprocess';

export interface ChannelStat {
  stage: string;
  channel: string;
  mean: number;
  std: number;
  min: number;
  max: number;
}

/** Mean, std, min and max of each channel of an NHWC tensor. */
export async function channelStats(x: tf.Tensor4D, names: string[] = ['R', 'G', 'B'], stage = ''): Promise<ChannelStat[]> {
  const packed = tf.tidy(() => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return tf.stack([mean, tf.sqrt(variance), tf.min(x, [0, 1, 2]), tf.max(x, [0, 1, 2])]);
  });
  const v = await packed.data();
  packed.dispose();
  const c = x.shape[3];
  return names.slice(0, c).map((channel, i) => ({ stage, channel, mean: v[i], std: v[c + i], min: v[2 * c + i], max: v[3 * c + i] }));
}

/** The first `count` images of a set as float 0..255 and as the backbone sees them. */
export async function preprocessStats(set: ImageSet, mode: PreprocessMode, count = 1000): Promise<ChannelStat[]> {
  const n = Math.min(count, set.count);
  const indices = Uint32Array.from({ length: n }, (_, i) => i);
  const raw = imagesToTensor(set, indices);
  const after = preprocess(raw, mode);
  try {
    return [...(await channelStats(raw, ['R', 'G', 'B'], 'raw 0..255')), ...(await channelStats(after, channelNames(mode), `after ${mode}`))];
  } finally {
    raw.dispose();
    after.dispose();
  }
}
