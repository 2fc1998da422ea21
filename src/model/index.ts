/** Stage 03: backbones (Keras ResNets with .h5 weights, any TF.js layers model), heads, freezing, model files. */
export * from './resnet';
export * from './layers';
export * from './weights-h5';
export { h5wasm, checkHdf5File } from './h5';
export * from './tfjs-backbone';
export * from './presets';
export * from './heads';
export * from './build';
export * from './freeze';
export * from './io';
export * from './summary';
export * from './imagenet';
export { modelCommand } from './command';
export * from './inspect';
export * from './split';
export * from './training-mode';
export * from './onnx';
export * from './engine';
