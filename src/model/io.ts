/**
 * Models on disk in the TF.js layers format (model.json + weights.bin), written atomically: into a
 * temporary folder beside the target, then renamed into place, so a reader never sees half a model.
 * Loading re-registers the workbench's custom layers and re-applies Keras BatchNormalization semantics.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { applyKerasBatchNormSemantics } from './freeze';
import './layers'; // registers ImageResize with tf.serialization
import { loadTfjsModel } from './tfjs-backbone';

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

/** An IOHandler that writes model.json + weights.bin into `dir` (which must exist). */
function folderWriter(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      const weights = concat(artifacts.weightData as ArrayBuffer | ArrayBuffer[] | undefined);
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        trainingConfig: artifacts.trainingConfig,
        userDefinedMetadata: artifacts.userDefinedMetadata,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
          weightSpecsBytes: JSON.stringify(artifacts.weightSpecs ?? []).length,
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
export async function saveModel(model: tf.LayersModel, dir: string, metadata?: Record<string, unknown>): Promise<string> {
  const target = path.resolve(dir);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    await model.save(folderWriter(tmp), { includeOptimizer: false });
    if (metadata) {
      const file = path.join(tmp, 'model.json');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      json.userDefinedMetadata = { ...(json.userDefinedMetadata ?? {}), ...metadata };
      fs.writeFileSync(file, JSON.stringify(json));
    }
    const old = `${target}.old-${process.pid}`;
    if (fs.existsSync(target)) fs.renameSync(target, old);
    fs.renameSync(tmp, target);
    fs.rmSync(old, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
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

/** The files of a saved model folder with their sizes. */
export function modelFolderFiles(dir: string): { file: string; bytes: number }[] {
  return fs
    .readdirSync(dir)
    .sort()
    .map((file) => ({ file, bytes: fs.statSync(path.join(dir, file)).size }));
}
