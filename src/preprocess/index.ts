/** Stage 02: preprocessing as the backbones expect it, one-hot labels, the split, lazy batches. */
export * from './preprocess';
export * from './split';
export * from './batches';
export * from './stats';
export * from './summary';
export * as corruptions from './corruptions';
