/**
 * Backbone presets as plain data (as timm keeps its pretrained configs): architecture, input size,
 * preprocessing, where the ImageNet weights come from, and where the 'gap' head cuts the backbone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig, PreprocessMode } from '../config';
import { projectRoot } from '../config';
import { RESNET_WEIGHTS, WeightsFile } from './resnet';

export interface KerasResNetPreset {
  kind: 'keras-resnet';
  arch: 'resnet50' | 'resnet101' | 'resnet152';
  inputSize: number;
  preprocess: PreprocessMode;
  /** Official Keras files: with the 1000-way top, and without it. */
  weights: { top: WeightsFile; notop: WeightsFile };
  /** Environment variable naming a local copy of the with-top .h5 (the no-top one: <NAME>_NOTOP). */
  weightsEnv: string;
  /** The full model ends in softmax probabilities. */
  output: 'probabilities';
  /** ImageNet class order of the 1000 outputs. */
  classOrder: 'keras';
}

export interface TfjsPreset {
  kind: 'tfjs';
  arch: string;
  inputSize: number;
  preprocess: PreprocessMode;
  /** Where the TF.js model comes from: a local folder (option/env/default) or the upstream URL. */
  source: { env: string; defaultDir?: string; url: string };
  /** The 'gap' head's cut point: the last layer kept in the base. */
  cutLayer: string;
  /** The full model's output: raw logits (a softmax gives probabilities). */
  output: 'logits' | 'probabilities';
  classOrder: 'darknet' | 'keras' | 'unknown';
  /**
   * What head 'none' keeps: 'full' the whole model with its ImageNet classifier (Darknet-Tiny, whose
   * classifier is its last convolution), 'cut' the backbone up to `cutLayer`, unpooled (Keras'
   * include_top=False; MobileNet, whose classifier is a separate top). The ImageNet check always uses 'full'.
   */
  bareBackbone?: 'full' | 'cut';
  /** A file beside model.json naming the 1000 classes (`{"labels": [...]}`), read offline. */
  labelsFile?: string;
  /** Smallest input side the topology runs at (its total stride). */
  minInputSize?: number;
}

/** An ONNX image classifier imported as a trainable backbone (onnx/import.ts). */
export interface OnnxPreset {
  kind: 'onnx';
  arch: string;
  inputSize: number;
  preprocess: PreprocessMode;
  /** A local .onnx, or a URL (downloaded into data/downloads, sha256-checked when known). */
  source: { file?: string; url?: string; sha256?: string };
  /** The ONNX node the 'gap' head cuts at; absent: the importer's last spatial feature map. */
  cut?: string;
  output: 'logits';
  classOrder: 'keras' | 'unknown';
  /** What the preset's file is, for the README and `model` output. */
  about?: string;
}

export type Preset = KerasResNetPreset | TfjsPreset | OnnxPreset;

/**
 * ONNX model zoo files (github.com/onnx/models, Computer_Vision/: torchvision and timm models
 * exported with torch.onnx.export at opset 17 by the zoo's turnkey tool, 224 px, BatchNormalization
 * folded into the convolutions). The sha256 is the one the zoo publishes in each file's Git LFS pointer.
 */
const ZOO = 'https://github.com/onnx/models/raw/main/Computer_Vision';
const zooPreset = (arch: string, dir: string, file: string, sha256: string, about: string): OnnxPreset => ({
  kind: 'onnx',
  arch,
  inputSize: 224,
  preprocess: 'torch',
  source: { url: `${ZOO}/${dir}/${file}`, sha256 },
  output: 'logits',
  classOrder: 'keras',
  about,
});

export const ONNX_PRESETS: Record<string, OnnxPreset> = {
  'onnx-resnet50': zooPreset('onnx-resnet50', 'resnet50_Opset17_torch_hub', 'resnet50_Opset17.onnx', 'eb6eabe74f278fb55336e49e639b2367dda69f6f3b0d86dea7ffa9d55e6a0939', 'torchvision ResNet-50 (v1.5: stride in the 3x3 convolution)'),
  'onnx-mobilenet-v2': zooPreset('onnx-mobilenet-v2', 'mobilenet_v2_Opset17_torch_hub', 'mobilenet_v2_Opset17.onnx', '1acdc7323ff91c6e47866b8507af26514b1c2d94f765afc0d210277ea084eb47', 'torchvision MobileNetV2'),
  'onnx-mobilenet-v3-large': zooPreset('onnx-mobilenet-v3-large', 'mobilenetv3_large_100_Opset17_timm', 'mobilenetv3_large_100_Opset17.onnx', 'b0b785f44a068dee4ff35bd88b114d4fd17a8bd635816f8f0ee46fa8b196c29f', 'timm mobilenetv3_large_100'),
  'onnx-efficientnet-b0': zooPreset('onnx-efficientnet-b0', 'efficientnet_b0_Opset17_timm', 'efficientnet_b0_Opset17.onnx', 'e76596a2b9e27c7c734c38550859105b43fec926f13447a84dad175eb994068a', 'timm efficientnet_b0'),
  'onnx-convnext-tiny': zooPreset('onnx-convnext-tiny', 'convnext_tiny_Opset17_torch_hub', 'convnext_tiny_Opset17.onnx', '66ce90ae0aaba2d7df6fac5354a26f58fba8a4e4e104d1404491ffdcfddbb8b1', 'torchvision ConvNeXt-T'),
};

const resnetPreset = (arch: KerasResNetPreset['arch']): KerasResNetPreset => ({
  kind: 'keras-resnet',
  arch,
  inputSize: 224,
  preprocess: 'caffe',
  weights: RESNET_WEIGHTS[arch],
  weightsEnv: `${arch.toUpperCase()}_WEIGHTS`,
  output: 'probabilities',
  classOrder: 'keras',
});

/** Width multipliers of the TF.js MobileNet v1 family (as named in its upstream URLs). */
export const MOBILENET_V1_ALPHAS = ['0.25', '0.50', '0.75', '1.0'] as const;

/**
 * MobileNet v1 at width `alpha` (Keras 2.1 topology served by TensorFlow.js): inputs in [-1, 1], the
 * 'gap' cut at the last pointwise block's ReLU6 (7x7x(1024·alpha) at 224, 1x1 at 32). Found in
 * MOBILENET_V1_<alpha with _ for .>_DIR, then ../shared/data/mobilenet-v1-<alpha>, then upstream.
 */
export function mobilenetV1Preset(alpha: (typeof MOBILENET_V1_ALPHAS)[number]): TfjsPreset {
  return {
    kind: 'tfjs',
    arch: `mobilenet-v1-${alpha}`,
    inputSize: 224,
    preprocess: 'tf',
    source: {
      env: `MOBILENET_V1_${alpha.replace('.', '_')}_DIR`,
      defaultDir: path.resolve(projectRoot, `../shared/data/mobilenet-v1-${alpha}`),
      url: `https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_${alpha}_224/model.json`,
    },
    cutLayer: 'conv_pw_13_relu',
    output: 'probabilities',
    classOrder: 'keras',
    bareBackbone: 'cut',
    labelsFile: 'metadata.json',
    minInputSize: 32,
  };
}

export const PRESETS: Record<string, Preset> = {
  resnet50: resnetPreset('resnet50'),
  resnet101: resnetPreset('resnet101'),
  resnet152: resnetPreset('resnet152'),
  'darknet-tiny': {
    kind: 'tfjs',
    arch: 'darknet-tiny',
    inputSize: 224,
    // ml5's darknet.js: pixels / 255, bilinear resize to 224, softmax over the 1000 outputs.
    preprocess: 'unit',
    source: {
      env: 'DARKNET_TINY_DIR',
      defaultDir: path.resolve(projectRoot, '../shared/data/darknet-tiny'),
      url: 'https://cdn.jsdelivr.net/gh/ml5js/ml5-data-and-models@master/models/darknetclassifier/darknettiny/model.json',
    },
    // The last 128-channel LeakyReLU before the 1x1 conv to 1000 classes (see notebook 03).
    cutLayer: 'leaky_re_lu_15',
    output: 'logits',
    classOrder: 'darknet',
  },
  ...Object.fromEntries(MOBILENET_V1_ALPHAS.map((alpha) => [`mobilenet-v1-${alpha}`, mobilenetV1Preset(alpha)])),
  ...ONNX_PRESETS,
};

/** The environment variables through which a preset finds local weights (no download). */
export function presetEnv(preset: Preset): string[] {
  if (preset.kind === 'keras-resnet') return [preset.weightsEnv, `${preset.weightsEnv}_NOTOP`];
  if (preset.kind === 'onnx') return [];
  return preset.source.env ? [preset.source.env] : [];
}

/** The preset for an arch name, or a generic TF.js preset for a model.json folder/path/URL. */
export function presetFor(arch: string): Preset {
  const preset = PRESETS[arch];
  if (preset) return preset;
  if (/^https?:\/\//.test(arch) || fs.existsSync(arch)) {
    return {
      kind: 'tfjs',
      arch,
      inputSize: 224,
      preprocess: 'unit',
      source: { env: '', url: arch },
      cutLayer: '',
      output: 'probabilities',
      classOrder: 'unknown',
    };
  }
  throw new Error(`model.arch '${arch}': not a preset (${Object.keys(PRESETS).join(', ')}) nor a TF.js model.json folder, file or URL`);
}

/**
 * The preset a model section builds: model.onnx (over an ONNX preset named by model.arch, if any),
 * else the preset of model.arch.
 */
export function presetForModel(cfg: Pick<ModelConfig, 'arch' | 'onnx'>): Preset {
  const onnx = cfg.onnx;
  const named = PRESETS[cfg.arch];
  if (!onnx) return presetFor(cfg.arch);
  const base = named?.kind === 'onnx' ? named : undefined;
  const source = onnx.file ? { file: onnx.file } : onnx.url ? { url: onnx.url, sha256: onnx.sha256 } : base?.source;
  if (!source) throw new Error(`model.onnx: give file or url (or set model.arch to an ONNX preset: ${Object.keys(ONNX_PRESETS).join(', ')})`);
  const where = source.file ?? new URL(source.url!).pathname;
  return {
    kind: 'onnx',
    arch: base && source === base.source ? base.arch : `onnx:${path.basename(where).replace(/\.onnx$/i, '')}`,
    inputSize: onnx.inputSize ?? base?.inputSize ?? 224,
    preprocess: onnx.preprocess ?? base?.preprocess ?? 'torch',
    source,
    cut: onnx.cut ?? base?.cut,
    output: 'logits',
    classOrder: base?.classOrder ?? 'unknown',
  };
}

/** Where a TF.js preset loads from: explicit option, then its environment variable, then its default folder, then its URL. */
export function tfjsSource(preset: TfjsPreset, explicit?: string): string {
  if (explicit) return explicit;
  const fromEnv = preset.source.env ? process.env[preset.source.env] : undefined;
  if (fromEnv) {
    if (!fs.existsSync(fromEnv)) throw new Error(`${preset.source.env}=${fromEnv}: no such folder or file`);
    return fromEnv;
  }
  if (preset.source.defaultDir && fs.existsSync(path.join(preset.source.defaultDir, 'model.json'))) return preset.source.defaultDir;
  return preset.source.url;
}
