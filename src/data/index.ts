/** Stage 01: getting images into memory (CIFAR-10 download/parse, image folders) and describing them. */
export * from './types';
export * from './cifar10';
export * from './download';
export * from './archive';
export * from './imagefolder';
export * from './dataset';
export * from './summary';
export { dataCommand } from './command';
