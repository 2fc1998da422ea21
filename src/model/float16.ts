/**
 * Half-precision storage: of weights, for published models (a MobileNet's 7 MB of float32 kernels
 * become 3.7 MB), and of cached features. Only storage: the values are widened back to float32 when loaded (TF.js decodes
 * `quantization: {dtype: 'float16'}` itself; the ONNX file casts), so the arithmetic is unchanged
 * and the predictions move by float16's rounding of the weights (relative 2^-11).
 */
import * as tf from '@tensorflow/tfjs';
import { Float16Array } from '@petamoriken/float16';

/** Weights with fewer values stay float32: they cost little and hold the precise statistics (batch-norm variances, biases). */
export const FLOAT16_MIN_VALUES = 1024;
const FLOAT16_MAX = 65504;

/** float16 bits of `values`, rounded to nearest even; beyond 65504 becomes infinity (storage of features, which stay small). */
export function float16Bits(values: Float32Array): Uint16Array {
  const half = new Float16Array(values);
  return new Uint16Array(half.buffer, half.byteOffset, half.length);
}

/** float32 values of float16 bits, decoded by tf.io (its table decoder: 20M values in about 0.15 s) a slice at a time. */
export function fromFloat16Bits(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const slice = 1 << 24; // bounded scratch on the backend's heap (wasm's is at most 4 GB)
  for (let start = 0; start < bits.length; start += slice) {
    const part = bits.slice(start, Math.min(bits.length, start + slice));
    const decoded = tf.io.decodeWeights(part.buffer, [{ name: 'half', shape: [part.length], dtype: 'float32', quantization: { dtype: 'float16' } }]);
    out.set(decoded.half.dataSync() as Float32Array, start);
    decoded.half.dispose();
  }
  return out;
}

/** `data` as float16 bits (round to nearest even), or undefined when a value is outside float16's finite range. */
export function toFloat16(data: Float32Array): Uint16Array | undefined {
  for (const v of data) if (!Number.isFinite(v) || Math.abs(v) > FLOAT16_MAX) return undefined;
  return float16Bits(data);
}

/** One entry of a TF.js weights manifest (tf.io.WeightsManifestEntry, as model.json stores it). */
export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string };
}

/**
 * A TF.js weight buffer with its large float32 weights stored as float16 (`quantization: {dtype:
 * 'float16'}` in the manifest, which tf.io decodes back to float32). The others are copied as they are.
 */
export function quantizeWeightsFloat16(specs: WeightSpec[], data: Uint8Array): { specs: WeightSpec[]; data: Uint8Array } {
  const parts: Uint8Array[] = [];
  const out: WeightSpec[] = [];
  let offset = 0;
  for (const spec of specs) {
    if (spec.quantization) throw new Error(`weight ${spec.name}: already quantized (${spec.quantization.dtype})`);
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const bytesPerValue = spec.dtype === 'float32' || spec.dtype === 'int32' ? 4 : spec.dtype === 'bool' ? 1 : NaN;
    if (Number.isNaN(bytesPerValue)) throw new Error(`weight ${spec.name}: dtype ${spec.dtype} cannot be stored as float16`);
    const bytes = data.slice(offset, offset + count * bytesPerValue);
    if (bytes.byteLength !== count * bytesPerValue) throw new Error(`weight ${spec.name}: the weight data ends before it (${data.byteLength} bytes)`);
    offset += bytes.byteLength;
    const half = spec.dtype === 'float32' && count >= FLOAT16_MIN_VALUES ? toFloat16(new Float32Array(bytes.buffer, 0, count)) : undefined;
    if (half) {
      parts.push(new Uint8Array(half.buffer, half.byteOffset, half.byteLength));
      out.push({ ...spec, quantization: { dtype: 'float16' } });
    } else {
      parts.push(bytes);
      out.push(spec);
    }
  }
  if (offset !== data.byteLength) throw new Error(`weight data: ${data.byteLength - offset} bytes beyond the last weight of the manifest`);
  const joined = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.byteLength;
  }
  return { specs: out, data: joined };
}
