/**
 * Training kernels for the wasm backend, composed from the fast XNNPACK operations it already has.
 *
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter (so nothing with a convolution can train on it)
 * and a naive Conv2DBackpropInput (about a quarter of the forward convolution's speed). Both are
 * rebuilt here from Conv2D, BatchMatMul (XNNPACK fully-connected when neither side is transposed),
 * Transpose, Slice, PadV2 and Concat, called through their registered kernel functions, plus a few
 * copies in JS on the wasm heap, so no tensor leaves wasm memory.
 *
 * Filter gradient: dW[i, j] = X(i, j)ᵀ · dY over the output pixels. With the padded input's pixels as
 * matrix columns, X(i, j)ᵀ is Xᵀ shifted by i·Wp + j columns (see filterGradStride1), so all taps form
 * one transposed im2col of whole-row copies and one matmul; strides become phases.
 *
 * Input gradient: a forward convolution of dY (zero-upsampled when strided) with the filter's taps
 * reversed and channel axes swapped, or col2im from W · dYᵀ when the output is small; 1x1 kernels are
 * one matmul. XNNPACK packs the right-hand operand on every call (~10-30 ns a float), so each kernel
 * picks the formulation that packs less.
 *
 * Tile, Identity and leading-axis Sum/Mean are replaced too: tfjs' batch-norm gradient runs them on
 * whole activations, where the shipped kernels were the slowest part of a training step.
 *
 * For MobileNet: the depthwise convolution's two gradients (none ship with wasm), and leaner gradients
 * for ReLU6 and FusedBatchNorm while wasm is the backend (gradients are registered for all backends).
 */
import * as tf from '@tensorflow/tfjs';
import { simdKernelsFor, type SimdKernels } from './wasm/simd-kernels';

type TensorInfo = tf.TensorInfo;
type Attrs = Record<string, unknown>;
type Backend = { disposeData(dataId: object): void };
/** The parts of tfjs-backend-wasm's BackendWasm used to fill a tensor in place. */
type WasmBackend = Backend & {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
};
type KernelArgs = { inputs: Record<string, TensorInfo> | TensorInfo[]; backend: Backend; attrs?: Attrs };

const BACKEND = 'wasm';
const MARK = Symbol.for('tlwb.wasmTrainingKernel');

/** Runs a kernel registered for wasm by name; it must exist (they all ship with tfjs-backend-wasm). */
function run(backend: Backend, name: string, inputs: KernelArgs['inputs'], attrs: Attrs = {}): TensorInfo {
  const kernel = tf.getKernel(name, BACKEND);
  if (!kernel) throw new Error(`wasm training kernels: the wasm backend has no '${name}' kernel`);
  const out = kernel.kernelFunc({ inputs, backend, attrs } as never);
  return (Array.isArray(out) ? out[0] : out) as TensorInfo;
}

/** Collects intermediates so each kernel frees them on every path, including errors. */
class Scratch {
  private readonly infos: TensorInfo[] = [];
  constructor(readonly backend: Backend) {}
  run(name: string, inputs: KernelArgs['inputs'], attrs: Attrs = {}): TensorInfo {
    const out = run(this.backend, name, inputs, attrs);
    this.infos.push(out);
    return out;
  }
  /** Takes ownership of a tensor made outside run(). */
  adopt(info: TensorInfo): TensorInfo {
    this.infos.push(info);
    return info;
  }
  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }
  /** Zero padding (negative amounts crop). */
  padCrop(x: TensorInfo, amounts: [number, number][]): TensorInfo {
    let cur = x;
    if (amounts.some(([a, b]) => a > 0 || b > 0)) {
      cur = this.run('PadV2', { x: cur }, { paddings: amounts.map(([a, b]) => [Math.max(a, 0), Math.max(b, 0)]), constantValue: 0 });
    }
    if (amounts.some(([a, b]) => a < 0 || b < 0)) {
      const begin = amounts.map(([a]) => Math.max(-a, 0));
      const size = cur.shape.map((d, i) => d - begin[i] - Math.max(-amounts[i][1], 0));
      cur = this.run('Slice', { x: cur }, { begin, size });
    }
    return cur;
  }
  /** Result handed to the caller: taken out of the scratch list. */
  keep(out: TensorInfo): TensorInfo {
    const i = this.infos.lastIndexOf(out);
    if (i >= 0) this.infos.splice(i, 1);
    return out;
  }
  dispose(): void {
    for (const info of this.infos) this.backend.disposeData(info.dataId);
    this.infos.length = 0;
  }
}

/** computeConv2DInfo of a Conv2D or (depthwise) DepthwiseConv2dNative: NHWC only; depthwise needs dilation 1. */
function convInfoOf(xShape: number[], filterShape: number[], attrs: Attrs, depthwise = false): tf.backend_util.Conv2DInfo {
  const dataFormat = tf.backend_util.convertConv2DDataFormat((attrs.dataFormat as 'NHWC' | 'NCHW') ?? 'NHWC');
  if (dataFormat !== 'channelsLast') throw new Error(`wasm training kernels: only NHWC convolutions are supported, got dataFormat '${String(attrs.dataFormat)}'`);
  const dilations = (attrs.dilations as number[] | number | undefined) ?? 1;
  if (depthwise && !(dilations === 1 || (Array.isArray(dilations) && dilations.every((d) => d === 1)))) {
    throw new Error(`wasm training kernels: depthwise gradients need dilation 1, got ${JSON.stringify(dilations)}`);
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as [number, number] | number,
    1,
    attrs.pad as 'same' | 'valid' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    depthwise, // filter [KH, KW, C, multiplier]
    dataFormat,
  );
}

/** [N, H, W, C] with zeros inserted so pixel (i, j) lands at (i·sh, j·sw): [N, H·sh, W·sw, C]. */
function zeroUpsample(s: Scratch, x: TensorInfo, sh: number, sw: number): TensorInfo {
  if (sh === 1 && sw === 1) return x;
  const [n, h, w, c] = x.shape;
  const spread = s.reshape(x, [n, h, 1, w, 1, c]);
  const padded = s.run('PadV2', { x: spread }, { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 });
  return s.reshape(padded, [n, h * sh, w * sw, c]);
}

/** Formulation overrides, for tests and measurements ('auto' picks by estimated cost). */
export const wasmKernelOptions: {
  inputGrad: 'auto' | 'conv' | 'col2im';
  depthwiseFilterGrad: 'auto' | 'phased' | 'direct';
  /** FusedBatchNorm's gradient with moving statistics: 'lazy' computes each per-channel sum only in the derivative that needs it; 'eager' all up front. */
  batchNormGrad: 'lazy' | 'eager';
  /** Mean's gradient: dy / size tiled by block copies ('tile'), or tfjs-core's broadcasting multiply by ones ('core'). */
  meanGrad: 'tile' | 'core';
  /** Transpose, FusedBatchNorm, ReLU6's gradient and the 3x3 depthwise filter gradient's dot products by the SIMD kernels (true), or tfjs-backend-wasm's kernels and JS loops (false). */
  simd: boolean;
} = { inputGrad: 'auto', depthwiseFilterGrad: 'auto', batchNormGrad: 'lazy', meanGrad: 'tile', simd: true };

/** Largest transposed-im2col block built at once (floats); bigger problems run in offset groups. */
const IM2COL_BLOCK_FLOATS = 16 * 1024 * 1024;

/**
 * Unstrided filter gradient over an input already padded so that every tap of every output pixel is
 * inside it: xp [N, Hp, Wp, C] with Hp >= OH + KH - 1, Wp >= OW + KW - 1. With the pixels of xp as
 * columns (n, h, w), tap (i, j) of output pixel (n, h, w) is column (n, h, w) + i·Wp + j, so
 *   dW[i, j] = Xᵀ[:, shifted by i·Wp + j] · dY placed at (n, h, w)
 * where dY is zero-padded to [N, Hp, Wp, Cout]: the shifted reads that wrap into the next row or image
 * meet zeros. Every shifted block is a contiguous copy of whole rows of Xᵀ (the transposed im2col), and
 * all offsets (in groups bounded by IM2COL_BLOCK_FLOATS) share one XNNPACK matmul and its packed dY.
 */
function filterGradStride1(s: Scratch, xp: TensorInfo, dy: TensorInfo, kh: number, kw: number): TensorInfo {
  const backend = s.backend as WasmBackend;
  const [n, hp, wp, cin] = xp.shape;
  const [, oh, ow, cout] = dy.shape;
  const columns = n * hp * wp;
  const tail = (kh - 1) * wp + (kw - 1);
  const xFlat = s.padCrop(s.reshape(xp, [columns, cin]), [[0, tail], [0, 0]]);
  const xT = s.run('Transpose', { x: xFlat }, { perm: [1, 0] }); // [C, columns + tail]
  const dyPlaced = s.padCrop(dy, [[0, 0], [0, hp - oh], [0, wp - ow], [0, 0]]);
  const dyMatrix = s.reshape(dyPlaced, [1, columns, cout]);
  const offsets: number[] = [];
  for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) offsets.push(i * wp + j);
  const perGroup = Math.max(1, Math.floor(IM2COL_BLOCK_FLOATS / (cin * columns)));
  const parts: TensorInfo[] = [];
  for (let g = 0; g < offsets.length; g += perGroup) {
    const group = offsets.slice(g, g + perGroup);
    const im2colT = s.adopt(backend.makeOutput([1, group.length * cin, columns], 'float32'));
    // Views taken after the allocation: growing wasm memory detaches older ones.
    const src = backend.typedArrayFromHeap(xT);
    const dst = backend.typedArrayFromHeap(im2colT);
    const srcRow = columns + tail;
    for (let o = 0; o < group.length; o++) {
      for (let c = 0; c < cin; c++) {
        const from = c * srcRow + group[o];
        dst.set(src.subarray(from, from + columns), (o * cin + c) * columns);
      }
    }
    const product = s.run('BatchMatMul', { a: im2colT, b: dyMatrix }, { transposeA: false, transposeB: false });
    parts.push(s.reshape(product, [group.length * cin, cout]));
  }
  const stacked = parts.length === 1 ? parts[0] : s.run('Concat', parts, { axis: 0 });
  return s.reshape(stacked, [kh, kw, cin, cout]);
}

function conv2DBackpropFilter(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs ?? {};
  const info = convInfoOf(x.shape, attrs.filterShape as number[], attrs);
  const { batchSize: n, inChannels: cin, outChannels: cout, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const s = new Scratch(backend);
  try {
    if (kh === 1 && kw === 1) {
      // dW = X(strided)ᵀ · dY: subsample first, so a strided 1x1 costs no more than an unstrided one.
      let xs = s.padCrop(x, [[0, 0], [-top, oh * sh - x.shape[1] + top], [-left, ow * sw - x.shape[2] + left], [0, 0]]);
      if (sh > 1 || sw > 1) {
        const grid = s.reshape(xs, [n * oh, sh, ow, sw * cin]);
        xs = s.run('Slice', { x: grid }, { begin: [0, 0, 0, 0], size: [n * oh, 1, ow, cin] });
      }
      const rows = n * oh * ow;
      const xMatrix = s.reshape(xs, [rows, cin]);
      const dyMatrix = s.reshape(dy, [rows, cout]);
      // XNNPACK repacks the right-hand operand on every call (~30 ns a float, as much as ~100 rows of
      // multiply-adds): pack X instead of dY when that saves more than transposing the result costs.
      if (27 * rows * (cout - cin) > 30 * cin * cout) {
        const dyT = s.run('Transpose', { x: dyMatrix }, { perm: [1, 0] });
        const product = s.run('BatchMatMul', { a: s.reshape(dyT, [1, cout, rows]), b: s.reshape(xMatrix, [1, rows, cin]) }, { transposeA: false, transposeB: false });
        const dW = s.run('Transpose', { x: s.reshape(product, [cout, cin]) }, { perm: [1, 0] });
        return s.keep(s.reshape(dW, [1, 1, cin, cout]));
      }
      const xT = s.run('Transpose', { x: xMatrix }, { perm: [1, 0] });
      const product = s.run('BatchMatMul', { a: s.reshape(xT, [1, cin, rows]), b: s.reshape(dyMatrix, [1, rows, cout]) }, { transposeA: false, transposeB: false });
      return s.keep(s.reshape(product, [1, 1, cin, cout]));
    }
    if (sh === 1 && sw === 1) {
      const hp = Math.max(oh + kh - 1, x.shape[1] + top);
      const wp = Math.max(ow + kw - 1, x.shape[2] + left);
      const xp = s.padCrop(x, [[0, 0], [top, hp - x.shape[1] - top], [left, wp - x.shape[2] - left], [0, 0]]);
      return s.keep(filterGradStride1(s, xp, dy, kh, kw));
    }
    // Strided: split the padded input into its sh row phases, with the sw column phases moved into
    // channels. Each row phase is then an unstrided problem with kernel ceil(KH/sh) x ceil(KW/sw) over
    // sw·Cin channels, whose taps map back to (qh·sh + ph, qw·sw + pw).
    const khq = Math.ceil(kh / sh);
    const kwq = Math.ceil(kw / sw);
    const hq = oh + khq - 1;
    const wq = ow + kwq - 1;
    const hp = Math.max(hq * sh, x.shape[1] + top);
    const wpad = Math.max(wq * sw, x.shape[2] + left);
    const xp = s.padCrop(x, [[0, 0], [top, Math.ceil(hp / sh) * sh - x.shape[1] - top], [left, Math.ceil(wpad / sw) * sw - x.shape[2] - left], [0, 0]]);
    const hAll = xp.shape[1] / sh;
    const wAll = xp.shape[2] / sw;
    const phased = s.run('Transpose', { x: s.reshape(xp, [n * hAll, sh, wAll, sw * cin]) }, { perm: [1, 0, 2, 3] });
    const phaseBlock = n * hAll * wAll * sw * cin;
    const flatPhases = s.reshape(phased, [sh, phaseBlock]);
    const perPhase: TensorInfo[] = [];
    for (let ph = 0; ph < sh; ph++) {
      const rows = Math.ceil((kh - ph) / sh);
      const block = s.run('Slice', { x: flatPhases }, { begin: [ph, 0], size: [1, phaseBlock] });
      const image = s.padCrop(s.reshape(block, [n, hAll, wAll, sw * cin]), [[0, 0], [0, hq - hAll], [0, wq - wAll], [0, 0]]);
      let grad = filterGradStride1(s, image, dy, rows, kwq); // [rows, kwq, sw·Cin, Cout]
      if (rows < khq) grad = s.padCrop(grad, [[0, khq - rows], [0, 0], [0, 0], [0, 0]]);
      perPhase.push(s.reshape(grad, [khq, 1, kwq * sw * cin * cout]));
    }
    const interleaved = sh === 1 ? perPhase[0] : s.run('Concat', perPhase, { axis: 1 }); // [khq, sh, kwq·sw·Cin·Cout]
    const full = s.reshape(interleaved, [khq * sh, kwq * sw, cin, cout]);
    return s.keep(s.run('Slice', { x: full }, { begin: [0, 0, 0, 0], size: [kh, kw, cin, cout] }));
  } finally {
    s.dispose();
  }
}

/** The filter with its taps in reverse order (a 180° rotation): whole [Cin, Cout] blocks copied in JS (wasm's Reverse is elementwise and slow). */
function reverseTaps(s: Scratch, filter: TensorInfo): TensorInfo {
  const backend = s.backend as WasmBackend;
  const [kh, kw, cin, cout] = filter.shape;
  const out = s.adopt(backend.makeOutput(filter.shape, 'float32'));
  const src = backend.typedArrayFromHeap(filter);
  const dst = backend.typedArrayFromHeap(out);
  const block = cin * cout;
  const taps = kh * kw;
  for (let t = 0; t < taps; t++) dst.set(src.subarray(t * block, (t + 1) * block), (taps - 1 - t) * block);
  return out;
}

/**
 * Input gradient as col2im, for small outputs: Gᵀ = W [KH·KW·Cin, Cout] · dYᵀ [Cout, P] packs only dYᵀ
 * (the filter is used as it lies), then each column of Gᵀ is added into dX at the pixel its tap reads.
 */
function inputGradCol2im(s: Scratch, dy: TensorInfo, filter: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const backend = s.backend as WasmBackend;
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: cin, outChannels: cout, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const rows = n * oh * ow;
  const dyT = s.run('Transpose', { x: s.reshape(dy, [rows, cout]) }, { perm: [1, 0] });
  const gT = s.run('BatchMatMul', { a: s.reshape(filter, [1, kh * kw * cin, cout]), b: s.reshape(dyT, [1, cout, rows]) }, { transposeA: false, transposeB: false });
  const dx = backend.makeOutput([n, h, w, cin], 'float32');
  const g = backend.typedArrayFromHeap(gT);
  const out = backend.typedArrayFromHeap(dx);
  out.fill(0);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      for (let c = 0; c < cin; c++) {
        let p = ((i * kw + j) * cin + c) * rows;
        for (let b = 0; b < n; b++) {
          for (let y = 0; y < oh; y++) {
            const hi = y * sh + i - top;
            if (hi < 0 || hi >= h) {
              p += ow;
              continue;
            }
            const rowBase = (b * h + hi) * w;
            for (let x = 0; x < ow; x++, p++) {
              const wi = x * sw + j - left;
              if (wi >= 0 && wi < w) out[(rowBase + wi) * cin + c] += g[p];
            }
          }
        }
      }
    }
  }
  return dx;
}

function conv2DBackpropInput(args: KernelArgs): TensorInfo {
  const { backend } = args;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs ?? {};
  const inputShape = attrs.inputShape as number[];
  const info = convInfoOf(inputShape, filter.shape, attrs);
  const { inChannels: cin, outChannels: cout, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, inHeight: h, inWidth: w } = info;
  const { top, left } = info.padInfo;
  const s = new Scratch(backend);
  try {
    let upsampled: TensorInfo;
    if (kh === 1 && kw === 1) {
      // dX = dY · Wᵀ at the strided positions, zeros elsewhere. The matmul packs its right operand on
      // every call: Wᵀ (Cout x Cin), or dYᵀ (Cout x P) via dXᵀ = W · dYᵀ when that is cheaper.
      const [n, oh, ow] = dy.shape;
      const rows = n * oh * ow;
      let product: TensorInfo;
      if (rows * (33 * cout + 3 * cin) < 33 * cout * cin) {
        const dyT = s.run('Transpose', { x: s.reshape(dy, [rows, cout]) }, { perm: [1, 0] });
        const dxT = s.run('BatchMatMul', { a: s.reshape(filter, [1, cin, cout]), b: s.reshape(dyT, [1, cout, rows]) }, { transposeA: false, transposeB: false });
        product = s.reshape(s.run('Transpose', { x: s.reshape(dxT, [cin, rows]) }, { perm: [1, 0] }), [n, oh, ow, cin]);
      } else {
        const wT = s.run('Transpose', { x: s.reshape(filter, [cin, cout]) }, { perm: [1, 0] });
        product = s.reshape(s.run('BatchMatMul', { a: s.reshape(dy, [1, rows, cout]), b: s.reshape(wT, [1, cout, cin]) }, { transposeA: false, transposeB: false }), [n, oh, ow, cin]);
      }
      upsampled = zeroUpsample(s, product, sh, sw);
      // Row r of `upsampled` is padded-input row r, i.e. input row r - top.
      const out = s.padCrop(upsampled, [[0, 0], [-top, h + top - upsampled.shape[1]], [-left, w + left - upsampled.shape[2]], [0, 0]]);
      return s.keep(out);
    }
    const [n, oh, ow] = dy.shape;
    const rows = n * oh * ow;
    const taps = kh * kw;
    // Two formulations; their costs differ in what XNNPACK packs (~30 ns a float) and what is copied.
    const filterPathCost = taps * cin * cout * 55;
    const col2imCost = rows * (33 * cout + 4 * taps * cin);
    const choice = wasmKernelOptions.inputGrad;
    if (choice === 'col2im' || (choice === 'auto' && col2imCost < filterPathCost)) return s.keep(inputGradCol2im(s, dy, filter, info));
    // Full correlation of the zero-upsampled dY with the rotated filter, [KH, KW, Cout, Cin].
    const rotated = reverseTaps(s, filter);
    const swapped = s.reshape(s.run('Transpose', { x: s.reshape(rotated, [taps, cin, cout]) }, { perm: [0, 2, 1] }), [kh, kw, cout, cin]);
    upsampled = zeroUpsample(s, dy, sh, sw);
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    const padBottom = h - upsampled.shape[1] - padTop + kh - 1;
    const padRight = w - upsampled.shape[2] - padLeft + kw - 1;
    // Conv2D takes only non-negative padding: crop the input for negative amounts first.
    const cropped = s.padCrop(upsampled, [[0, 0], [Math.min(padTop, 0), Math.min(padBottom, 0)], [Math.min(padLeft, 0), Math.min(padRight, 0)], [0, 0]]);
    const pad = [[0, 0], [Math.max(padTop, 0), Math.max(padBottom, 0)], [Math.max(padLeft, 0), Math.max(padRight, 0)], [0, 0]];
    const out = s.run('Conv2D', { x: cropped, filter: swapped }, { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1] });
    return s.keep(out);
  } finally {
    s.dispose();
  }
}

/**
 * Depthwise filter gradient, multiplier 1: dW[i, j, c] = Σ over (n, y, x) of
 * xpad[n, y·sh + i, x·sw + j, c] · dY[n, y, x, c]. The padded input is split into its sh x sw stride
 * phases and laid out channel-major ([sh, sw·C, N·Hq·Wq], one Transpose), dY likewise ([C, N·Hq·Wq],
 * zero-placed on the same Hq x Wq grid); tap (i, j) is then phase (i mod sh, j mod sw) shifted by
 * (i div sh)·Wq + (j div sw), so each (tap, channel) is one contiguous dot product: reads that wrap
 * into the next row or image meet dY's zeros. The dots run in JS on the wasm heap, float64 sums.
 */
function depthwiseFilterGradPhased(s: Scratch, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const backend = s.backend as WasmBackend;
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const { top, left } = info.padInfo;
  const hq = Math.max(oh + Math.floor((kh - 1) / sh), Math.ceil((h + top) / sh));
  const wq = Math.max(ow + Math.floor((kw - 1) / sw), Math.ceil((w + left) / sw));
  const xp = s.padCrop(x, [[0, 0], [top, hq * sh - h - top], [left, wq * sw - w - left], [0, 0]]);
  const phased = s.run('Transpose', { x: s.reshape(xp, [n * hq, sh, wq, sw * c]) }, { perm: [1, 3, 0, 2] }); // [sh, sw·C, N·Hq, Wq]
  const dyPlaced = s.padCrop(dy, [[0, 0], [0, hq - oh], [0, wq - ow], [0, 0]]);
  const dyT = s.run('Transpose', { x: s.reshape(dyPlaced, [n * hq * wq, c]) }, { perm: [1, 0] }); // [C, N·Hq·Wq]
  const out = backend.makeOutput([kh, kw, c, 1], 'float32');
  // Views after the last allocation: growing wasm memory detaches older ones.
  const X = backend.typedArrayFromHeap(phased);
  const D = backend.typedArrayFromHeap(dyT);
  const dW = backend.typedArrayFromHeap(out);
  const len = n * hq * wq;
  if (kh === 3 && kw === 3 && wasmKernelOptions.depthwiseFilterGrad === 'auto') {
    depthwiseFilterGrad3x3(X, D, dW, c, len, sh, sw, wq, wasmKernelOptions.simd ? simdKernelsFor(backend) : undefined);
    return out;
  }
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const shift = Math.floor(i / sh) * wq + Math.floor(j / sw);
      const phase = (i % sh) * sw + (j % sw);
      // The last `shift` positions of dY's grid are zeros (rows >= OH or columns >= OW): skip them, so no read runs past the phase block.
      const count = len - shift;
      const count4 = count - (count % 4);
      for (let ch = 0; ch < c; ch++) {
        const xo = (phase * c + ch) * len + shift;
        const dOff = ch * len;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let k = 0;
        for (; k < count4; k += 4) {
          s0 += X[xo + k] * D[dOff + k];
          s1 += X[xo + k + 1] * D[dOff + k + 1];
          s2 += X[xo + k + 2] * D[dOff + k + 2];
          s3 += X[xo + k + 3] * D[dOff + k + 3];
        }
        for (; k < count; k++) s0 += X[xo + k] * D[dOff + k];
        dW[(i * kw + j) * c + ch] = s0 + s1 + s2 + s3;
      }
    }
  }
  return out;
}

/**
 * depthwiseFilterGradPhased's dot products for 3x3 kernels, the nine taps of a channel in one pass:
 * each dY value is read once for nine multiply-adds (1.5-2x the tap-by-tap loop).
 */
function depthwiseFilterGrad3x3(X: Float32Array, D: Float32Array, dW: Float32Array, c: number, len: number, sh: number, sw: number, wq: number, simd?: SimdKernels): void {
  const shifts: number[] = [];
  const phases: number[] = [];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      shifts.push(Math.floor(i / sh) * wq + Math.floor(j / sw));
      phases.push((i % sh) * sw + (j % sw));
    }
  }
  const common = len - Math.max(...shifts);
  for (let ch = 0; ch < c; ch++) {
    const o = shifts.map((shift, t) => (phases[t] * c + ch) * len + shift);
    const [o0, o1, o2, o3, o4, o5, o6, o7, o8] = o;
    const dOff = ch * len;
    // Each tap's own tail (its dot runs to len - shift; the rest of dY there is zeros).
    const addTails = (sums: number[]): void => {
      for (let t = 0; t < 9; t++) {
        let tail = 0;
        for (let k = common; k < len - shifts[t]; k++) tail += X[o[t] + k] * D[dOff + k];
        dW[t * c + ch] = sums[t] + tail;
      }
    };
    if (simd) {
      // f32x4 products, summed in float32 over 1024 elements then in float64 (the JS loop: float64 throughout).
      const x = X.byteOffset;
      const sums = simd.dot9(x + 4 * o0, x + 4 * o1, x + 4 * o2, x + 4 * o3, x + 4 * o4, x + 4 * o5, x + 4 * o6, x + 4 * o7, x + 4 * o8, D.byteOffset + 4 * dOff, Math.max(0, common));
      addTails(sums);
      continue;
    }
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, s8 = 0;
    for (let k = 0; k < common; k++) {
      const d = D[dOff + k];
      s0 += X[o0 + k] * d;
      s1 += X[o1 + k] * d;
      s2 += X[o2 + k] * d;
      s3 += X[o3 + k] * d;
      s4 += X[o4 + k] * d;
      s5 += X[o5 + k] * d;
      s6 += X[o6 + k] * d;
      s7 += X[o7 + k] * d;
      s8 += X[o8 + k] * d;
    }
    addTails([s0, s1, s2, s3, s4, s5, s6, s7, s8]);
  }
}

/**
 * Depthwise filter gradient, any channel multiplier m: dW[i, j, c, q] = Σ over (n, y, x) of
 * x[n, y·sh + i - top, x·sw + j - left, c] · dY[n, y, x, c·m + q], one sequential pass over dY in JS
 * on the wasm heap. Multiplier 1 (MobileNet) takes the faster phased dot products above.
 */
function depthwiseBackpropFilter(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs ?? {};
  const filterShape = attrs.filterShape as number[];
  const info = convInfoOf(x.shape, filterShape, attrs, true);
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const m = filterShape[3];
  if (m === 1 && wasmKernelOptions.depthwiseFilterGrad !== 'direct') {
    const s = new Scratch(backend);
    try {
      return depthwiseFilterGradPhased(s, x, dy, info);
    } finally {
      s.dispose();
    }
  }
  const cm = c * m;
  const { top, left } = info.padInfo;
  const out = backend.makeOutput(filterShape, 'float32');
  const X = backend.typedArrayFromHeap(x);
  const D = backend.typedArrayFromHeap(dy);
  const acc = new Float64Array(kh * kw * cm);
  // Per-row partial sums in float32, flushed into float64 after every output row.
  const rowAcc = new Float32Array(kh * kw * cm);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < oh; y++) {
      const dyRow = (b * oh + y) * ow * cm;
      rowAcc.fill(0);
      for (let i = 0; i < kh; i++) {
        const hi = y * sh + i - top;
        if (hi < 0 || hi >= h) continue;
        const xRow = (b * h + hi) * w * c;
        for (let j = 0; j < kw; j++) {
          // Output columns whose tap j lands inside the row: 0 <= x·sw + j - left < w.
          const x0 = Math.max(0, Math.ceil((left - j) / sw));
          const x1 = Math.min(ow, Math.floor((w - 1 + left - j) / sw) + 1);
          const a = (i * kw + j) * cm;
          for (let xo = x0; xo < x1; xo++) {
            const xp = xRow + (xo * sw + j - left) * c;
            const dp = dyRow + xo * cm;
            for (let ch = 0; ch < c; ch++) {
              const xv = X[xp + ch];
              for (let q = 0; q < m; q++) rowAcc[a + ch * m + q] += xv * D[dp + ch * m + q];
            }
          }
        }
      }
      for (let k = 0; k < acc.length; k++) acc[k] += rowAcc[k];
    }
  }
  backend.typedArrayFromHeap(out).set(acc);
  return out;
}

/**
 * Depthwise input gradient: the forward depthwise convolution (XNNPACK) of dY, zero-upsampled when
 * strided, with the filter's taps reversed, padded so that dX[h, w] collects every tap that read x[h, w].
 * With a channel multiplier m the m outputs of each input channel are then summed.
 */
function depthwiseBackpropInput(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs ?? {};
  const inputShape = attrs.inputShape as number[];
  const info = convInfoOf(inputShape, filter.shape, attrs, true);
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const m = filter.shape[3];
  const { top, left } = info.padInfo;
  const s = new Scratch(backend);
  try {
    const rotated = reverseTaps(s, s.reshape(filter, [kh, kw, 1, c * m])); // taps reversed, [KH, KW, C·m] blocks
    const kernel = s.reshape(rotated, [kh, kw, c * m, 1]);
    const upsampled = zeroUpsample(s, dy, sh, sw);
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    const padBottom = h - upsampled.shape[1] - padTop + kh - 1;
    const padRight = w - upsampled.shape[2] - padLeft + kw - 1;
    const cropped = s.padCrop(upsampled, [[0, 0], [Math.min(padTop, 0), Math.min(padBottom, 0)], [Math.min(padLeft, 0), Math.min(padRight, 0)], [0, 0]]);
    const pad = [[0, 0], [Math.max(padTop, 0), Math.max(padBottom, 0)], [Math.max(padLeft, 0), Math.max(padRight, 0)], [0, 0]];
    const grad = s.run('DepthwiseConv2dNative', { x: cropped, filter: kernel }, { strides: [1, 1], pad, dilations: [1, 1], dimRoundingMode: undefined });
    if (m === 1) return s.keep(grad);
    const summed = s.run('Sum', { x: s.reshape(grad, [n * h * w * c, m]) }, { axis: [1], keepDims: false });
    return s.keep(s.reshape(summed, [n, h, w, c]));
  } finally {
    s.dispose();
  }
}

type HeapArray = Float32Array | Int32Array | Uint8Array;

/** The kernels replaced here, for the cases they keep handling (string tensors). */
const originals = new Map<string, tf.KernelConfig>();

function fallback(kernelName: string, args: KernelArgs): TensorInfo {
  const original = originals.get(kernelName);
  if (!original) throw new Error(`wasm training kernels: no original '${kernelName}' kernel to fall back to`);
  return original.kernelFunc(args as never) as TensorInfo;
}

/**
 * Tile by block copies. Training needs it on whole activations (tfjs' batch-norm gradient tiles the
 * per-channel 1/sqrt(variance) to the input's shape), where wasm's elementwise Tile took ~20% of a
 * ResNet-50 training step.
 */
function tile(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend & { makeOutput(shape: number[], dtype: string): TensorInfo; typedArrayFromHeap(info: TensorInfo): HeapArray };
  const { x } = args.inputs as { x: TensorInfo };
  const reps = (args.attrs?.reps as number[]) ?? [];
  if (x.dtype === 'string') return fallback('Tile', args);
  const rank = x.shape.length;
  const outShape = x.shape.map((d, i) => d * reps[i]);
  const out = backend.makeOutput(outShape, x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  if (dst.length === 0) return out;
  if (rank === 0) {
    dst.set(src);
    return out;
  }
  const srcStrides = tf.util.computeStrides(x.shape);
  const dstStrides = tf.util.computeStrides(outShape);
  const fill = (axis: number, from: number, to: number): void => {
    const n = x.shape[axis];
    if (axis === rank - 1) {
      const row = src.subarray(from, from + n);
      for (let r = 0; r < reps[axis]; r++) dst.set(row, to + r * n);
      return;
    }
    for (let i = 0; i < n; i++) fill(axis + 1, from + i * srcStrides[axis], to + i * dstStrides[axis]);
    // The first copy of this axis' block is complete: double it until all reps are there.
    const block = n * dstStrides[axis];
    const total = block * reps[axis];
    for (let filled = block; filled < total; ) {
      const count = Math.min(filled, total - filled);
      dst.copyWithin(to + filled, to, to + count);
      filled += count;
    }
  };
  fill(0, 0, 0);
  return out;
}

/**
 * Sum / Mean over leading axes (per-channel reductions of NHWC activations in batch norm and bias
 * gradients) as one sequential pass; wasm's kernels transpose the whole input first.
 */
function reduceLeading(kernelName: 'Sum' | 'Mean', args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x } = args.inputs as { x: TensorInfo };
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam((args.attrs?.axis as number | number[]) ?? null, x.shape).sort((a, b) => a - b);
  const leading = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
  if (x.dtype !== 'float32' || !leading) return fallback(kernelName, args);
  const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
  const cols = tf.util.sizeFromShape(x.shape.slice(axes.length));
  const keptShape = x.shape.slice(axes.length);
  const outShape = args.attrs?.keepDims ? [...axes.map(() => 1), ...keptShape] : keptShape;
  // NHWC over (N, H, W): XNNPACK's average pooling with the whole image as window does the (H, W) part
  // with SIMD (~4x the JS loop), leaving N·C values for JS.
  let source = x;
  let pooled: TensorInfo | undefined;
  let sourceRows = rows;
  if (rank === 4 && axes.length === 3 && x.shape[1] * x.shape[2] >= 16) {
    pooled = run(backend, 'AvgPool', { x }, { filterSize: [x.shape[1], x.shape[2]], strides: [1, 1], pad: 'valid', dimRoundingMode: undefined });
    source = pooled;
    sourceRows = x.shape[0];
  }
  const out = backend.makeOutput(outShape, 'float32');
  const src = backend.typedArrayFromHeap(source);
  const dst = backend.typedArrayFromHeap(out);
  const acc = new Float64Array(cols);
  for (let r = 0, base = 0; r < sourceRows; r++, base += cols) {
    for (let c = 0; c < cols; c++) acc[c] += src[base + c];
  }
  if (pooled) backend.disposeData(pooled.dataId);
  const perRow = rows / sourceRows; // pooled rows are means over this many pixels
  const scale = kernelName === 'Mean' ? 1 / sourceRows : perRow;
  for (let c = 0; c < cols; c++) dst[c] = acc[c] * scale;
  return out;
}

/**
 * A transpose as its simplest equivalent: size-1 axes dropped and axes that stay neighbours merged, so
 * e.g. [N·H·W, 1, C] by [1, 2, 0] becomes the 2-D [N·H·W, C] -> [C, N·H·W].
 */
export function simplifyPermutation(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const kept = perm.filter((a) => shape[a] !== 1);
  const groups: number[][] = [];
  for (const a of kept) {
    const last = groups[groups.length - 1];
    // Input axes a-1 and a (skipping size-1 axes between them) are adjacent in the output too: one axis.
    let prev = a - 1;
    while (prev >= 0 && shape[prev] === 1) prev--;
    if (last && last[last.length - 1] === prev) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((g, h) => g[0] - h[0]);
  return {
    shape: byInput.map((g) => g.reduce((p, a) => p * shape[a], 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

/**
 * Transpose on the heap with the SIMD kernel (4x4 register tiles). tfjs-backend-wasm's Transpose moves
 * ~6-10 ns a float on large activations (20-30 ms for a 32768 x 96 matrix, about as long as the matmul it
 * feeds), and the filter gradients transpose whole activations. After simplifyPermutation: an unchanged
 * innermost axis is a copy of rows; otherwise every outer index is one 2-D transpose between the
 * input's and the output's innermost axes. Exact copies: the same values as the shipped kernel.
 * 32-bit types only (float32, int32); others, and heaps the SIMD kernels cannot reach, use the original.
 */
function transpose(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend & { makeOutput(shape: number[], dtype: string): TensorInfo; typedArrayFromHeap(info: TensorInfo): HeapArray };
  const { x } = args.inputs as { x: TensorInfo };
  const perm = (args.attrs?.perm as number[]) ?? [];
  const simd = wasmKernelOptions.simd ? simdKernelsFor(backend) : undefined;
  if (!simd || (x.dtype !== 'float32' && x.dtype !== 'int32')) return fallback('Transpose', args);
  const outShape = perm.map((a) => x.shape[a]);
  const out = backend.makeOutput(outShape, x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  if (dst.length === 0) return out;
  const { shape, perm: p } = simplifyPermutation(x.shape, perm);
  const rank = shape.length;
  if (rank <= 1) {
    dst.set(src);
    return out;
  }
  const inStrides = [...tf.util.computeStrides(shape), 1];
  const oShape = p.map((a) => shape[a]);
  const outStrides = [...tf.util.computeStrides(oShape), 1];
  /** Input stride of each output axis. */
  const inStrideOfOut = p.map((a) => inStrides[a]);
  const last = rank - 1;
  // Output axis that holds the input's innermost axis, and the input axis that is the output's innermost.
  const qOut = p.indexOf(last);
  const pIn = p[last];
  const innerCopy = pIn === last;
  // The outer loop runs over every output axis except the innermost (row copies), or except qOut and the innermost (2-D transposes).
  const outer: number[] = [];
  for (let k = 0; k < last; k++) if (innerCopy || k !== qOut) outer.push(k);
  const counts = outer.map((k) => oShape[k]);
  const idx = new Array<number>(outer.length).fill(0);
  const rows = oShape[last];
  const cols = shape[last];
  const srcBase = src.byteOffset;
  const dstBase = dst.byteOffset;
  for (;;) {
    let s = 0;
    let d = 0;
    for (let i = 0; i < outer.length; i++) {
      s += idx[i] * inStrideOfOut[outer[i]];
      d += idx[i] * outStrides[outer[i]];
    }
    // A [rows x cols] slice (input axis pIn by the input's innermost axis), element (i, j) from s + i·stride(pIn) + j to d + j·stride(qOut) + i.
    if (innerCopy) dst.set(src.subarray(s, s + rows), d);
    else simd.transpose2d(srcBase + 4 * s, inStrides[pIn], dstBase + 4 * d, outStrides[qOut], rows, cols);
    let k = outer.length - 1;
    while (k >= 0 && ++idx[k] === counts[k]) idx[k--] = 0;
    if (k < 0) break;
  }
  return out;
}

/** Identity shares the data (reference-counted, as Reshape does) instead of copying it. */
function identity(args: KernelArgs): TensorInfo {
  const backend = args.backend as Backend & { incRef(dataId: object): void };
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === 'string') return fallback('Identity', args);
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * ReLU6's gradient on wasm as dy · (step(x) - step(x - 6)): the same values as tfjs-core's
 * dy · cast(lessEqual(x, 6) · step(x)) (1 on 0 < x <= 6) in float kernels only, 2.6x faster there
 * (8.9 against 23 ms on 3.1M values; a JS loop on the heap took 11-15 ms). Other backends keep
 * tfjs-core's formula: gradients are registered for all backends at once, hence the check at call time.
 */
function registerRelu6Gradient(): void {
  const core = tf.getGradient('Relu6') as (tf.GradConfig & { [MARK]?: true }) | undefined;
  if (!core || core[MARK]) return;
  tf.registerGradient({
    kernelName: 'Relu6',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      if (tf.getBackend() !== BACKEND) return core.gradFunc(dy, saved, attrs);
      const [x] = saved;
      const g = dy as tf.Tensor;
      if (wasmKernelOptions.simd && simdKernelsFor(tf.backend()) && x.dtype === 'float32' && g.dtype === 'float32') {
        return { x: () => tf.engine().runKernel(RELU6_GRAD, { dy: g, x }) as tf.Tensor };
      }
      return { x: () => tf.mul(dy as tf.Tensor, tf.sub(tf.step(x), tf.step(tf.sub(x, 6)))) };
    },
    [MARK]: true,
  } as tf.GradConfig);
}

/**
 * Mean's gradient on wasm as tile(dy / size): tfjs-core multiplies the reshaped dy by a tensor of
 * ones of the input's shape (a broadcasting Multiply, 44 ms of a 0.8 s step for the quick top block's
 * global pooling at load 13) and then divides the whole result. Dividing the small dy first and
 * copying it out by blocks (the Tile kernel above) gives the same bits: x·1 = x, and each element is
 * the same division of the same value.
 */
function registerMeanGradient(): void {
  const core = tf.getGradient('Mean') as (tf.GradConfig & { [MARK]?: true }) | undefined;
  if (!core || core[MARK]) return;
  tf.registerGradient({
    kernelName: 'Mean',
    inputsToSave: core.inputsToSave,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      if (tf.getBackend() !== BACKEND || wasmKernelOptions.meanGrad !== 'tile' || x.dtype !== 'float32') return core.gradFunc(dy, saved, attrs);
      const axes = tf.util.parseAxisParam((attrs as { axis: number | number[] }).axis, x.shape);
      const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const reps = x.shape.map((d, i) => (axes.includes(i) ? d : 1));
      const size = axes.reduce((p, a) => p * x.shape[a], 1);
      return { x: () => tf.tile(tf.div(tf.reshape(dy as tf.Tensor, expanded), size), reps) };
    },
    [MARK]: true,
  } as tf.GradConfig);
}

/** Our kernel for ReLU6's gradient on wasm (a name of our own: tfjs has no such kernel). */
const RELU6_GRAD = 'TlwbRelu6Grad';

/** dy·(step(x) - step(x - 6)) in one SIMD pass: the same bits as the five kernels (two Steps, two Subs, a Multiply) it replaces. */
function relu6Grad(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, x } = args.inputs as { dy: TensorInfo; x: TensorInfo };
  const simd = simdKernelsFor(backend);
  if (!simd) throw new Error(`wasm training kernels: ${RELU6_GRAD} needs the SIMD kernels, which did not load on this heap`);
  const out = backend.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  simd.relu6Grad(backend.typedArrayFromHeap(dy).byteOffset, backend.typedArrayFromHeap(x).byteOffset, backend.typedArrayFromHeap(out).byteOffset, n);
  return out;
}

/**
 * FusedBatchNorm with per-channel terms (what tfjs-layers passes) by the SIMD kernel: the shipped
 * kernel runs one scalar element at a time with a division each (8.5% of a 128 px MobileNet step).
 * Its C source's arithmetic four lanes at a time; the shipped binary rounds some results one bit
 * differently (tests bound it). Other shapes use the shipped kernel.
 */
function fusedBatchNorm(args: KernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, mean, variance, offset, scale } = args.inputs as Record<string, TensorInfo | undefined>;
  const simd = wasmKernelOptions.simd ? simdKernelsFor(backend) : undefined;
  const c = x?.shape[x.shape.length - 1] ?? 0;
  const perChannel = [mean, variance, offset, scale].every((t) => t && t.dtype === 'float32' && tf.util.sizeFromShape(t.shape) === c);
  if (!simd || !x || x.dtype !== 'float32' || !perChannel || c === 0) return fallback('FusedBatchNorm', args);
  const out = backend.makeOutput(x.shape, 'float32');
  const nf = backend.makeOutput([c], 'float32');
  try {
    const at = (t: TensorInfo) => backend.typedArrayFromHeap(t).byteOffset;
    const eps = (args.attrs?.varianceEpsilon as number | undefined) ?? 0.001;
    simd.batchNorm(at(x), at(out), tf.util.sizeFromShape(x.shape) / c, c, at(mean!), at(variance!), at(scale!), at(offset!), eps, at(nf));
  } finally {
    backend.disposeData(nf.dataId);
  }
  return out;
}

/**
 * Whether `t` shares its data with a variable: the tape saves clones of a kernel's inputs, so a
 * moving statistic arrives here as a clone of the variable (same dataId), not the variable itself.
 */
function holdsVariableData(t: tf.Tensor): boolean {
  const variables = (tf.engine().state as unknown as { registeredVariables: Record<string, tf.Variable> }).registeredVariables;
  for (const name in variables) if (variables[name].dataId === t.dataId) return true;
  return false;
}

/**
 * FusedBatchNorm's gradient on wasm for per-channel statistics (what tfjs-layers' BatchNormalization
 * passes): the per-channel terms are reduced first, so only five full-size passes remain -
 * x - mean, dy · (x - mean), two leading-axis sums, dy · (scale / sqrt(var + eps)) - where tfjs-core's
 * formula makes about fourteen (each derivative multiplies full tensors before summing). The same
 * values, with s = 1/sqrt(var + eps): dx = dy·γ·s, dμ = -γ·s·Σdy, dσ² = -γ·s³/2·Σdy(x - μ),
 * dγ = s·Σdy(x - μ), dβ = Σdy.
 * Other shapes and backends keep tfjs-core's formula.
 */
function registerBatchNormGradient(): void {
  const core = tf.getGradient('FusedBatchNorm') as (tf.GradConfig & { [MARK]?: true }) | undefined;
  if (!core || core[MARK]) return;
  tf.registerGradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: core.inputsToSave,
    gradFunc: (dy, saved, attrs) => {
      const [x, mean, variance, scale] = saved;
      if (tf.getBackend() !== BACKEND || mean.rank !== 1 || variance.rank !== 1 || x.rank < 2 || !scale || scale.rank !== 1) return core.gradFunc(dy, saved, attrs);
      const g = dy as tf.Tensor;
      const epsilon = (attrs as { varianceEpsilon: number }).varianceEpsilon;
      const axes = x.shape.slice(0, -1).map((_, i) => i);
      if (wasmKernelOptions.batchNormGrad === 'lazy' && holdsVariableData(mean) && holdsVariableData(variance)) {
        // Inference mode (moving statistics, e.g. frozen BatchNormalization): nothing trains the
        // statistics, so only x's, scale's and offset's derivatives can be asked for, and each needs a
        // different per-channel sum. Computing each inside its own derivative (tfjs calls only those
        // of inputs that lead to the trained variables) skips the two sums and their two full-size
        // passes entirely when gamma and beta are frozen too - the same values, fewer passes.
        return {
          x: () => tf.mul(g, tf.mul(scale, tf.rsqrt(tf.add(variance, epsilon)))),
          mean: () => tf.mul(tf.neg(tf.mul(scale, tf.rsqrt(tf.add(variance, epsilon)))), tf.sum(g, axes)),
          variance: () => tf.mul(tf.mul(tf.mul(tf.pow(tf.rsqrt(tf.add(variance, epsilon)), 3), -0.5), scale), tf.sum(tf.mul(g, tf.sub(x, mean)), axes)),
          scale: () => tf.mul(tf.sum(tf.mul(g, tf.sub(x, mean)), axes), tf.rsqrt(tf.add(variance, epsilon))),
          offset: () => tf.sum(g, axes),
        };
      }
      // The per-channel terms, computed once here: tensors made inside one derivative's function are
      // disposed when it returns. Only these three [C] tensors outlive the tidy (until the backward pass ends).
      const { rsqrt, sumDy, sumDyXc } = tf.tidy(() => ({
        rsqrt: tf.rsqrt(tf.add(variance, epsilon)),
        sumDy: tf.sum(g, axes),
        sumDyXc: tf.sum(tf.mul(g, tf.sub(x, mean)), axes),
      }));
      return {
        x: () => tf.mul(g, tf.mul(scale, rsqrt)),
        mean: () => tf.mul(tf.neg(tf.mul(scale, rsqrt)), sumDy),
        variance: () => tf.mul(tf.mul(tf.mul(tf.pow(rsqrt, 3), -0.5), scale), sumDyXc),
        scale: () => tf.mul(sumDyXc, rsqrt),
        offset: () => tf.clone(sumDy),
      };
    },
    [MARK]: true,
  } as tf.GradConfig);
}

const KERNELS: { kernelName: string; kernelFunc: (args: KernelArgs) => TensorInfo }[] = [
  { kernelName: 'Conv2DBackpropFilter', kernelFunc: conv2DBackpropFilter },
  { kernelName: 'Conv2DBackpropInput', kernelFunc: conv2DBackpropInput },
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', kernelFunc: depthwiseBackpropFilter },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', kernelFunc: depthwiseBackpropInput },
  { kernelName: 'Tile', kernelFunc: tile },
  { kernelName: 'Transpose', kernelFunc: transpose },
  { kernelName: 'FusedBatchNorm', kernelFunc: fusedBatchNorm },
  { kernelName: RELU6_GRAD, kernelFunc: relu6Grad },
  { kernelName: 'Identity', kernelFunc: identity },
  { kernelName: 'Sum', kernelFunc: (args) => reduceLeading('Sum', args) },
  { kernelName: 'Mean', kernelFunc: (args) => reduceLeading('Mean', args) },
];

/**
 * Registers the kernels above for the 'wasm' backend, replacing the slow Conv2DBackpropInput that
 * ships with it. Idempotent; call after loading @tensorflow/tfjs-backend-wasm, before setBackend.
 */
export function registerWasmTrainingKernels(): void {
  registerRelu6Gradient();
  registerBatchNormGradient();
  registerMeanGradient();
  for (const { kernelName, kernelFunc } of KERNELS) {
    const existing = tf.getKernel(kernelName, BACKEND) as (tf.KernelConfig & { [MARK]?: true }) | undefined;
    if (existing?.[MARK]) continue;
    if (existing) {
      originals.set(kernelName, existing);
      tf.unregisterKernel(kernelName, BACKEND);
    }
    // The original setup (its cwrap) still runs, so the original stays callable as a fallback.
    const config = { kernelName, backendName: BACKEND, setupFunc: existing?.setupFunc, kernelFunc: kernelFunc as unknown as tf.KernelFunc, [MARK]: true as const };
    tf.registerKernel(config);
  }
}

/** The formulations above as plain functions, for tests and benchmarks. */
export const wasmTrainingKernels = { conv2DBackpropFilter, conv2DBackpropInput, depthwiseBackpropFilter, depthwiseBackpropInput, tile, transpose, fusedBatchNorm, relu6Grad, identity, reduceLeading };
