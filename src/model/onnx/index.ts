export { exportOnnx, samePads, SUPPORTED_LAYERS, OPSET } from './export';
export type { ExportOptions, OnnxExport } from './export';
export { readOnnxInfo, readOnnxFileInfo } from './read';
export type { OnnxFileInfo } from './read';
