/**
 * Models on disk in the TF.js layers format (model.json + weights.bin), written atomically: into a
 * temporary folder beside the target, then renamed into place, so a reader never sees half a model.
 * Loading re-registers the workbench's custom layers and re-applies Keras BatchNormalization semantics.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { applyKerasBatchNormSemantics } from './freeze';
import './layers'; // registers ImageResize with tf.serialization
import './onnx/import-layers'; // and the ONNX importer's layers
import { loadTfjsModel } from './tfjs-backbone';
import { quantizeWeightsFloat16, WeightSpec } from './float16';
import { replaceFolderAtomic } from '../fsutil';

function concat(data: ArrayBuffer | ArrayBuffer[] | undefined): Uint8Array {
  if (!data) return new Uint8Array(0);
  const parts = Array.isArray(data) ? data : [data];
  const out = new Uint8Array(parts.reduce((s, b) => s + b.byteLength, 0));
  let offset = 0;
  for (const b of parts) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out;
}

export interface SaveOptions {
  /** Store the large weights as float16 (half the size; loaded back as float32). Default false. */
  float16?: boolean;
}

/** An IOHandler that writes model.json + weights.bin into `dir` (which must exist). */
function folderWriter(dir: string, opts: SaveOptions): tf.io.IOHandler {
  return {
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      let weights = concat(artifacts.weightData as ArrayBuffer | ArrayBuffer[] | undefined);
      let weightSpecs = (artifacts.weightSpecs ?? []) as WeightSpec[];
      if (opts.float16) ({ specs: weightSpecs, data: weights } = quantizeWeightsFloat16(weightSpecs, weights));
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        trainingConfig: artifacts.trainingConfig,
        userDefinedMetadata: artifacts.userDefinedMetadata,
        weightsManifest: [{ paths: ['weights.bin'], weights: weightSpecs }],
      };
      fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
          weightSpecsBytes: JSON.stringify(weightSpecs).length,
          weightDataBytes: weights.byteLength,
        },
      };
    },
  };
}

/**
 * Saves `model` into `dir` (model.json + weights.bin). The folder appears complete or not at all;
 * an existing folder is replaced. `metadata` lands in model.json's userDefinedMetadata.
 */
export async function saveModel(model: tf.LayersModel, dir: string, metadata?: Record<string, unknown>, opts: SaveOptions = {}): Promise<string> {
  const target = path.resolve(dir);
  await replaceFolderAtomic(target, async (tmp) => {
    await model.save(folderWriter(tmp, opts), { includeOptimizer: false });
    if (metadata) {
      const file = path.join(tmp, 'model.json');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      json.userDefinedMetadata = { ...(json.userDefinedMetadata ?? {}), ...metadata };
      fs.writeFileSync(file, JSON.stringify(json));
    }
  });
  return target;
}

/** Loads a model saved by saveModel (or any TF.js layers model folder). */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const file = path.join(path.resolve(dir), 'model.json');
  if (!fs.existsSync(file)) throw new Error(`${dir}: no model.json (expected a folder written by saveModel)`);
  const model = await loadTfjsModel(dir);
  applyKerasBatchNormSemantics(model);
  return model;
}

/** userDefinedMetadata of a saved model folder (e.g. arch, preprocess, classes). */
export function readModelMetadata(dir: string): Record<string, unknown> {
  const file = path.join(path.resolve(dir), 'model.json');
  if (!fs.existsSync(file)) throw new Error(`${dir}: no model.json`);
  return (JSON.parse(fs.readFileSync(file, 'utf8')).userDefinedMetadata ?? {}) as Record<string, unknown>;
}

/** sha256 of a model folder's weights.bin: an exported file names the weights it was made from. */
export function tfjsWeightsSha256(modelDir: string): string {
  return createHash('sha256').update(fs.readFileSync(path.join(modelDir, 'weights.bin'))).digest('hex');
}

/** The files of a saved model folder with their sizes. */
export function modelFolderFiles(dir: string): { file: string; bytes: number }[] {
  return fs
    .readdirSync(dir)
    .sort()
    .map((file) => ({ file, bytes: fs.statSync(path.join(dir, file)).size }));
}
