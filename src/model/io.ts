/**
 * Models on disk in the TF.js layers format (model.json + weights.bin), written atomically: into a
 * temporary folder beside the target, then renamed into place, so a reader never sees half a model.
 * Loading re-registers the workbench's custom layers and re-applies Keras BatchNormalization semantics.
 * checksums.json (size and sha256 of model.json and weights.bin) is written last; loading verifies it,
 * so an edited or damaged file is refused by name before its numbers are used.
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
import { checksumsOf, readJsonFile, replaceFolderAtomic, verifyChecksums, writeJsonAtomic } from '../fsutil';

/** A saved model folder's checksums (size and sha256 of model.json and weights.bin), written last by saveModel. */
export const MODEL_CHECKSUMS = 'checksums.json';

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
      const json = readJsonFile<{ userDefinedMetadata?: Record<string, unknown> }>(file, 'the model.json TF.js just wrote');
      json.userDefinedMetadata = { ...(json.userDefinedMetadata ?? {}), ...metadata };
      fs.writeFileSync(file, JSON.stringify(json));
    }
    writeJsonAtomic(path.join(tmp, MODEL_CHECKSUMS), checksumsOf(tmp, ['model.json', 'weights.bin']));
  });
  return target;
}

const BYTES_PER_VALUE: Record<string, number> = { float32: 4, int32: 4, bool: 1, float16: 2, uint8: 1, uint16: 2, int8: 1, int16: 2 };

/**
 * Checks a model folder before TF.js reads it: the files checksums.json lists are unchanged; a folder
 * saved before checksums existed at least has a weights.bin of the size its model.json's manifest says.
 */
export function verifyModelFolder(dir: string): void {
  const sums = path.join(dir, MODEL_CHECKSUMS);
  if (fs.existsSync(sums)) {
    verifyChecksums(dir, readJsonFile(sums, 'the model checksums'), sums);
    return;
  }
  const file = path.join(dir, 'model.json');
  const json = readJsonFile<{ weightsManifest?: { paths: string[]; weights: WeightSpec[] }[] }>(file, 'the model description');
  const groups = json.weightsManifest ?? [];
  if (groups.length !== 1 || groups[0].paths.length !== 1) return; // sharded folders (downloaded backbones): TF.js checks them
  const want = groups[0].weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1) * (BYTES_PER_VALUE[w.quantization?.dtype ?? w.dtype] ?? NaN), 0);
  const weights = path.join(dir, groups[0].paths[0]);
  const got = fs.existsSync(weights) ? fs.statSync(weights).size : -1;
  if (got < 0) throw new Error(`${weights}: missing (expected the weights ${file} lists)`);
  if (Number.isFinite(want) && got !== want) throw new Error(`${weights}: ${got} bytes, expected ${want} for the ${groups[0].weights.length} weights ${file} lists (truncated or replaced)`);
}

/** Loads a model saved by saveModel (or any TF.js layers model folder). */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const file = path.join(path.resolve(dir), 'model.json');
  if (!fs.existsSync(file)) throw new Error(`${dir}: no model.json (expected a folder written by saveModel)`);
  verifyModelFolder(path.resolve(dir));
  let model: tf.LayersModel;
  try {
    model = await loadTfjsModel(dir);
  } catch (e) {
    // TF.js says "Shape mismatch: [128,7] vs. [128,10]" without saying which files disagree.
    throw new Error(`${file}: cannot load the model (${(e as Error).message}); expected model.json and the weights it lists as saveModel wrote them`, { cause: e });
  }
  applyKerasBatchNormSemantics(model);
  return model;
}

/** userDefinedMetadata of a saved model folder (e.g. arch, preprocess, classes). */
export function readModelMetadata(dir: string): Record<string, unknown> {
  const file = path.join(path.resolve(dir), 'model.json');
  if (!fs.existsSync(file)) throw new Error(`${dir}: no model.json`);
  return (readJsonFile<{ userDefinedMetadata?: Record<string, unknown> }>(file, 'a TF.js model.json').userDefinedMetadata ?? {});
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
