/**
 * Layers for ONNX operations that no Keras layer computes the same way (HardSwish, Erf, a constant
 * operand that trains, pooling with explicit pads, ...). Each works on the TF.js (physical) layout
 * the importer chose, takes its axes already translated, and is registered with tf.serialization
 * so that checkpoints and saved models load again; the ONNX exporter writes each of them back.
 */
import * as tf from '@tensorflow/tfjs';

type LayerArgs = { name?: string; trainable?: boolean };

function one(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}
function shapeOne(s: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(s[0]) ? s[0] : s) as tf.Shape;
}

export const UNARY_OPS = ['clip', 'hardSigmoid', 'hardSwish', 'erf', 'gelu', 'geluTanh', 'sqrt', 'exp', 'log', 'neg', 'abs', 'reciprocal', 'tanh', 'softplus', 'elu', 'selu'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

export interface OnnxUnaryArgs extends LayerArgs {
  op: UnaryOp;
  /** clip's bounds; hardSigmoid's alpha (slope) and beta (offset); elu's alpha. */
  min?: number;
  max?: number;
  alpha?: number;
  beta?: number;
}

/** An element-wise function of one tensor. */
export class OnnxUnary extends tf.layers.Layer {
  static className = 'OnnxUnary';
  readonly op: UnaryOp;
  readonly min?: number;
  readonly max?: number;
  readonly alpha?: number;
  readonly beta?: number;

  constructor(args: OnnxUnaryArgs) {
    super(args);
    if (!UNARY_OPS.includes(args.op)) throw new Error(`OnnxUnary: unknown op '${args.op}' (${UNARY_OPS.join(', ')})`);
    this.op = args.op;
    this.min = args.min;
    this.max = args.max;
    this.alpha = args.alpha;
    this.beta = args.beta;
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs);
      switch (this.op) {
        case 'clip': return tf.clipByValue(x, this.min ?? -Infinity, this.max ?? Infinity);
        case 'hardSigmoid': return tf.clipByValue(tf.add(tf.mul(x, this.alpha ?? 0.2), this.beta ?? 0.5), 0, 1);
        case 'hardSwish': return tf.mul(x, tf.clipByValue(tf.add(tf.mul(x, 1 / 6), 0.5), 0, 1));
        case 'erf': return tf.erf(x);
        case 'gelu': return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
        case 'geluTanh': {
          const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
          return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
        }
        case 'sqrt': return tf.sqrt(x);
        case 'exp': return tf.exp(x);
        case 'log': return tf.log(x);
        case 'neg': return tf.neg(x);
        case 'abs': return tf.abs(x);
        case 'reciprocal': return tf.reciprocal(x);
        case 'tanh': return tf.tanh(x);
        case 'softplus': return tf.softplus(x);
        case 'elu': return (this.alpha ?? 1) === 1 ? tf.elu(x) : tf.where(tf.greater(x, 0), x, tf.mul(tf.sub(tf.exp(x), 1), this.alpha ?? 1));
        case 'selu': return tf.selu(x);
      }
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    const cfg: tf.serialization.ConfigDict = { ...super.getConfig(), op: this.op };
    for (const k of ['min', 'max', 'alpha', 'beta'] as const) if (this[k] !== undefined) cfg[k] = this[k]!;
    return cfg;
  }
}

export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'matmul'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

function binary(op: BinaryOp, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  switch (op) {
    case 'add': return tf.add(a, b);
    case 'sub': return tf.sub(a, b);
    case 'mul': return tf.mul(a, b);
    case 'div': return tf.div(a, b);
    case 'pow': return tf.pow(a, b);
    case 'matmul': return tf.matMul(a, b);
  }
}

function broadcastShapes(a: tf.Shape, b: tf.Shape): tf.Shape {
  const rank = Math.max(a.length, b.length);
  const out: tf.Shape = [];
  for (let i = 0; i < rank; i++) {
    // Missing leading axes broadcast as 1; an unknown (null) size stays unknown unless the other is known and > 1.
    const ia = a.length - rank + i;
    const ib = b.length - rank + i;
    const x = ia >= 0 ? a[ia] : 1;
    const y = ib >= 0 ? b[ib] : 1;
    out.push(x === 1 ? y : y === 1 ? x : x ?? y);
  }
  return out;
}

/** Element-wise arithmetic (numpy broadcasting) or a matrix product of two tensors. */
export class OnnxBinary extends tf.layers.Layer {
  static className = 'OnnxBinary';
  readonly op: BinaryOp;

  constructor(args: LayerArgs & { op: BinaryOp }) {
    super(args);
    if (!BINARY_OPS.includes(args.op)) throw new Error(`OnnxBinary: unknown op '${args.op}' (${BINARY_OPS.join(', ')})`);
    this.op = args.op;
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [a, b] = inputShape as tf.Shape[];
    if (this.op === 'matmul') return [...broadcastShapes(a.slice(0, -2), b.slice(0, -2)), a[a.length - 2], b[b.length - 1]];
    return broadcastShapes(a, b);
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [a, b] = inputs as tf.Tensor[];
    return binary(this.op, a, b);
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), op: this.op };
  }
}

export interface OnnxArithmeticArgs extends LayerArgs {
  op: Exclude<BinaryOp, 'matmul'>;
  /** A scalar operand (kept in the config), or ... */
  scalar?: number;
  /** ... the shape of a tensor operand, a weight of this layer (already in the input's layout, broadcastable). */
  constantShape?: number[];
  /** Whether the tensor operand trains (a parameter of the source model) or stays fixed. */
  constantTrainable?: boolean;
  /** The constant is the left operand (c - x, c / x). */
  constantFirst?: boolean;
}

/** x (op) c or c (op) x with a constant c: a scalar, or a tensor weight (e.g. ConvNeXt's layer scale, trainable). */
export class OnnxArithmetic extends tf.layers.Layer {
  static className = 'OnnxArithmetic';
  readonly op: OnnxArithmeticArgs['op'];
  readonly scalar?: number;
  readonly constantShape?: number[];
  readonly constantTrainable: boolean;
  readonly constantFirst: boolean;
  private constant?: tf.LayerVariable;

  constructor(args: OnnxArithmeticArgs) {
    super(args);
    if (!BINARY_OPS.includes(args.op) || (args.op as string) === 'matmul') throw new Error(`OnnxArithmetic: unknown op '${args.op}'`);
    if ((args.scalar === undefined) === (args.constantShape === undefined)) throw new Error('OnnxArithmetic: give either scalar or constantShape');
    this.op = args.op;
    this.scalar = args.scalar;
    this.constantShape = args.constantShape;
    this.constantTrainable = args.constantTrainable ?? false;
    this.constantFirst = args.constantFirst ?? false;
  }

  build(inputShape: tf.Shape | tf.Shape[]): void {
    if (this.constantShape) {
      this.constant = this.addWeight('constant', this.constantShape, 'float32', tf.initializers.zeros(), undefined, this.constantTrainable);
    }
    super.build(inputShape);
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = shapeOne(inputShape);
    return this.constantShape ? broadcastShapes(s, this.constantShape) : s;
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs);
      const c = this.constant ? this.constant.read() : tf.scalar(this.scalar!);
      return this.constantFirst ? binary(this.op, c, x) : binary(this.op, x, c);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    const cfg: tf.serialization.ConfigDict = { ...super.getConfig(), op: this.op, constantFirst: this.constantFirst, constantTrainable: this.constantTrainable };
    if (this.scalar !== undefined) cfg.scalar = this.scalar;
    if (this.constantShape) cfg.constantShape = this.constantShape;
    return cfg;
  }
}

/** Mean, max or sum over axes of the layout the importer chose. */
export class OnnxReduce extends tf.layers.Layer {
  static className = 'OnnxReduce';
  readonly op: 'mean' | 'max' | 'sum';
  readonly axes: number[];
  readonly keepDims: boolean;

  constructor(args: LayerArgs & { op: 'mean' | 'max' | 'sum'; axes: number[]; keepDims: boolean }) {
    super(args);
    this.op = args.op;
    this.axes = [...args.axes].sort((a, b) => a - b);
    this.keepDims = args.keepDims;
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = shapeOne(inputShape);
    return this.keepDims ? s.map((d, i) => (this.axes.includes(i) ? 1 : d)) : s.filter((_, i) => !this.axes.includes(i));
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = one(inputs);
    if (this.op === 'mean') return tf.mean(x, this.axes, this.keepDims);
    if (this.op === 'max') return tf.max(x, this.axes, this.keepDims);
    return tf.sum(x, this.axes, this.keepDims);
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), op: this.op, axes: this.axes, keepDims: this.keepDims };
  }
}

export interface OnnxPoolArgs extends LayerArgs {
  op: 'max' | 'avg';
  kernel: [number, number];
  strides: [number, number];
  /** [top, left, bottom, right] as ONNX orders them. */
  pads: [number, number, number, number];
  /** avg: count the padding in the divisor (ONNX count_include_pad). */
  countIncludePad?: boolean;
  /** Output size rounded up (ONNX ceil_mode): the last window may hang over the padded input. */
  ceilMode?: boolean;
}

/**
 * ONNX MaxPool / AveragePool on NHWC with explicit pads: max pads with -Infinity (PyTorch's padding
 * is never the maximum), avg divides by the window's count of real pixels unless countIncludePad.
 * (TF's 'same' puts the odd pixel only at the end, so it cannot express PyTorch's symmetric pads.)
 */
export class OnnxPool extends tf.layers.Layer {
  static className = 'OnnxPool';
  readonly op: 'max' | 'avg';
  readonly kernel: [number, number];
  readonly strides: [number, number];
  readonly pads: [number, number, number, number];
  readonly countIncludePad: boolean;
  readonly ceilMode: boolean;

  constructor(args: OnnxPoolArgs) {
    super(args);
    this.op = args.op;
    this.kernel = args.kernel;
    this.strides = args.strides;
    this.pads = args.pads;
    this.countIncludePad = args.countIncludePad ?? false;
    this.ceilMode = args.ceilMode ?? false;
  }

  /** Output size along one axis and the extra padding at its end (ceil mode). */
  private axis(size: number, i: 0 | 1): { out: number; extra: number } {
    const padded = size + this.pads[i] + this.pads[i + 2];
    const k = this.kernel[i];
    const s = this.strides[i];
    let out = this.ceilMode ? Math.ceil((padded - k) / s) + 1 : Math.floor((padded - k) / s) + 1;
    // PyTorch: the last window must start inside the input or the left padding.
    if (this.ceilMode && (out - 1) * s >= size + this.pads[i]) out--;
    return { out, extra: Math.max(0, (out - 1) * s + k - padded) };
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = shapeOne(inputShape);
    const h = s[1] === null ? null : this.axis(s[1], 0).out;
    const w = s[2] === null ? null : this.axis(s[2], 1).out;
    return [s[0], h, w, s[3]];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs) as tf.Tensor4D;
      const eh = this.axis(x.shape[1], 0).extra;
      const ew = this.axis(x.shape[2], 1).extra;
      const [t, l, b, r] = this.pads;
      const paddings: [number, number][] = [[0, 0], [t, b + eh], [l, r + ew], [0, 0]];
      const padded = t + b + eh + l + r + ew > 0;
      if (this.op === 'max') {
        const xp = padded ? tf.pad(x, paddings, -3.4e38) : x;
        return tf.maxPool(xp, this.kernel, this.strides, 'valid');
      }
      const xp = padded ? tf.pad(x, paddings) : x;
      const sum = tf.avgPool(xp, this.kernel, this.strides, 'valid');
      if (!padded) return sum;
      // The divisor: real pixels only, or (count_include_pad) the pads too but never the ceil-mode overhang.
      const H = x.shape[1];
      const W = x.shape[2];
      const counted = this.countIncludePad ? tf.ones([1, H + t + b, W + l + r, 1]) : tf.ones([1, H, W, 1]);
      const countPads: [number, number][] = this.countIncludePad ? [[0, 0], [0, eh], [0, ew], [0, 0]] : paddings;
      const share = tf.avgPool(tf.pad(counted, countPads) as tf.Tensor4D, this.kernel, this.strides, 'valid');
      return tf.div(sum, share);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), op: this.op, kernel: this.kernel, strides: this.strides, pads: this.pads, countIncludePad: this.countIncludePad, ceilMode: this.ceilMode };
  }
}

for (const cls of [OnnxUnary, OnnxBinary, OnnxArithmetic, OnnxReduce, OnnxPool]) tf.serialization.registerClass(cls);

/** Class names of the importer's own layers. */
export const IMPORT_LAYER_CLASSES = ['OnnxUnary', 'OnnxBinary', 'OnnxArithmetic', 'OnnxReduce', 'OnnxPool'] as const;
