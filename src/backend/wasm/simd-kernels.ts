/**
 * The WebAssembly SIMD kernels of scripts/build-wasm-kernels.js, instantiated on tfjs-backend-wasm's
 * own memory, so they read and write tensors where they lie (byte offsets into the heap). JS has no
 * SIMD; these run loops of the training kernels that no shipped operator covers, or covers one
 * scalar element (or one kernel per operation) at a time.
 */
import { SIMD_KERNELS_WASM } from './simd-kernels-binary';

export interface SimdKernels {
  /** dst[j·dstStride + i] = src[i·srcStride + j] for i < rows, j < cols; 32-bit elements, byte pointers, strides in elements. */
  transpose2d(src: number, srcStride: number, dst: number, dstStride: number, rows: number, cols: number): void;
  /** The dot products of nine float32 rows (x0..x8) with one (d), n elements each, summed in float64 blocks. */
  dot9(x0: number, x1: number, x2: number, x3: number, x4: number, x5: number, x6: number, x7: number, x8: number, d: number, n: number): number[];
  /** FusedBatchNorm over `pixels` rows of `c` channels: out = offset + (x - mean)·scale / sqrt(variance + eps), as the shipped kernel; nf: scratch for c floats. */
  batchNorm(x: number, out: number, pixels: number, c: number, mean: number, variance: number, scale: number, offset: number, eps: number, nf: number): void;
  /** out = dy·(step(x) - step(x - 6)) over n floats (ReLU6's gradient as tfjs composes it). */
  relu6Grad(dy: number, x: number, out: number, n: number): void;
}

type EmscriptenModule = { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };

const instances = new WeakMap<WebAssembly.Memory, SimdKernels>();

/**
 * The kernels bound to `backend`'s heap (the threaded binary's shared memory or the single-threaded
 * one's exported memory), or undefined when that memory cannot be found (another tfjs-backend-wasm build).
 */
export function simdKernelsFor(backend: unknown): SimdKernels | undefined {
  const module = (backend as { wasm?: EmscriptenModule }).wasm;
  const memory = module?.wasmMemory ?? module?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return undefined;
  let kernels = instances.get(memory);
  if (!kernels) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const bytes = Buffer.from(shared ? SIMD_KERNELS_WASM.shared : SIMD_KERNELS_WASM.unshared, 'base64');
    // Small enough (< 2 KB) to compile synchronously.
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    kernels = instance.exports as unknown as SimdKernels;
    instances.set(memory, kernels);
  }
  return kernels;
}
