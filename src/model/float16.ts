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

/**
 * The engine's own Float16Array where it has one (Node 24: a native conversion, many times faster on
 * quick's 864M cached values), else the library's; both round to nearest even (tested against each other).
 */
const Half: typeof Float16Array = (globalThis as { Float16Array?: typeof Float16Array }).Float16Array ?? Float16Array;

/** float16 bits of `values`, rounded to nearest even; beyond 65504 becomes infinity (storage of features, which stay small). */
export function float16Bits(values: Float32Array): Uint16Array {
  const half = new Half(values);
  return new Uint16Array(half.buffer, half.byteOffset, half.length);
}

let table: Float32Array | undefined;

/** The float32 value of every float16 bit pattern, decoded once by tf.io's decoder (the one TF.js loads weights with). */
function float16Table(): Float32Array {
  if (!table) {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const decoded = tf.io.decodeWeights(all.buffer, [{ name: 'half', shape: [65536], dtype: 'float32', quantization: { dtype: 'float16' } }]);
    table = decoded.half.dataSync() as Float32Array;
    decoded.half.dispose();
  }
  return table;
}

/** float32 values of float16 bits: a lookup in tf.io's decoded table (the same bits, 2.6x faster than decoding through tensors). */
export function fromFloat16Bits(bits: Uint16Array): Float32Array {
  const values = float16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = values[bits[i]];
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
