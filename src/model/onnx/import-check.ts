/**
 * What `model --onnx FILE` prints: the imported graph's summary and the largest difference between
 * the imported TF.js model and ONNX Runtime running the file itself on the same random input.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { createSession } from '../engine';
import { countParams } from '../freeze';
import { Random } from '../../random';
import { CutCandidate, importOnnx, ImportedOnnx } from './import';

export interface OrtDifference {
  /** Largest |TF.js - ORT| over the outputs. */
  maxAbsDiff: number;
  /** Largest |ORT| (the scale the difference is judged against). */
  maxAbs: number;
  /** maxAbsDiff / maxAbs. */
  relative: number;
  /** Input shape fed to ORT (NCHW as the file takes it). */
  input: number[];
}

/**
 * Runs the file in ORT and the imported model on the same uniform random input in [-2, 2]
 * (batch of 2, or the file's fixed batch), compares the first outputs.
 */
export async function compareWithOrt(bytes: Uint8Array, imported: ImportedOnnx, seed = 1): Promise<OrtDifference> {
  const { graph, inputSize: s } = imported;
  const batch = typeof graph.input.shape[0] === 'number' && graph.input.shape[0] > 0 ? graph.input.shape[0] : 2;
  const channelsLast = graph.input.shape[3] === 3 && graph.input.shape[1] !== 3;
  const rng = new Random(seed);
  const data = Float32Array.from({ length: batch * 3 * s * s }, () => rng.next() * 4 - 2);
  const shape = channelsLast ? [batch, s, s, 3] : [batch, 3, s, s];
  const session = await createSession(bytes);
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  let want: Float32Array;
  try {
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data, shape) });
    want = Float32Array.from(result[session.outputNames[0]].data as Float32Array);
  } finally {
    await session.release();
  }
  const got = tf.tidy(() => {
    const x = tf.tensor(data, shape);
    return imported.model.predict(channelsLast ? x : tf.transpose(x, [0, 2, 3, 1])) as tf.Tensor;
  });
  const have = got.dataSync() as Float32Array;
  got.dispose();
  if (have.length !== want.length) throw new Error(`imported model gives ${have.length} outputs, ONNX Runtime ${want.length}`);
  let maxAbsDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < have.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(have[i] - want[i]));
    maxAbs = Math.max(maxAbs, Math.abs(want[i]));
  }
  return { maxAbsDiff, maxAbs, relative: maxAbs > 0 ? maxAbsDiff / maxAbs : maxAbsDiff, input: shape };
}

export interface OnnxImportSummary {
  file: string;
  opset: number;
  producer: string;
  nodes: number;
  ops: Record<string, number>;
  inputSize: number;
  layers: number;
  trainableParams: number;
  nonTrainableParams: number;
  outputShape: (number | null)[];
  cutCandidates: CutCandidate[];
  ort?: OrtDifference;
}

/** Imports `file` and summarises it; `compare` also runs the ORT check (seconds for large graphs). */
export async function onnxImportSummary(file: string, opts: { inputSize?: number; compare?: boolean } = {}): Promise<OnnxImportSummary> {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such ONNX file`);
  const bytes = fs.readFileSync(file);
  const imported = importOnnx(bytes, { origin: file, inputSize: opts.inputSize });
  try {
    const counts = countParams(imported.model);
    return {
      file,
      opset: imported.graph.opset,
      producer: imported.graph.producer,
      nodes: imported.graph.nodes.length,
      ops: imported.ops,
      inputSize: imported.inputSize,
      layers: imported.model.layers.length - 1,
      trainableParams: counts.trainableParams,
      nonTrainableParams: counts.nonTrainableParams,
      outputShape: imported.model.outputs[0].shape.slice(1),
      cutCandidates: imported.cutCandidates,
      ort: opts.compare === false ? undefined : await compareWithOrt(bytes, imported),
    };
  } finally {
    imported.model.dispose();
  }
}
