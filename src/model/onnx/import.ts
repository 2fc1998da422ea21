/**
 * ONNX -> TF.js: an ONNX image classifier (opset 11-17, e.g. torch.onnx.export of a torchvision
 * model) as a functional tf.LayersModel whose weights are variables that train.
 *
 * Layout: the graph computes in NCHW; the TF.js model in NHWC. Every value of the graph is held as a
 * TF.js tensor plus a permutation saying which logical (ONNX) axis each physical axis holds, so a
 * convolution's weights are transposed once at import and no activation is transposed per layer; an
 * ONNX Transpose only relabels axes (ConvNeXt's NCHW<->NHWC permutes cost nothing), and a physical
 * transpose (Permute) is inserted only where an op needs a given order (Flatten of a map, MatMul).
 *
 * Weights: a Conv, Gemm, MatMul, BatchNormalization, LayerNormalization or a tensor operand of
 * Mul/Add/... that is a graph initializer (a parameter of the exported model) becomes a variable of
 * a layer named after it (PyTorch 'features.0.0.weight' -> layer 'features.0.0'); other layers are
 * named from the node's module path ('/features/features.1/conv/conv.0/conv.0.2/Clip' ->
 * 'features.1.conv.0.2.Clip'). An initializer used by several nodes gets one variable per node.
 * Trainable are exactly the parameters PyTorch's model.parameters() lists when the model was
 * exported with its BatchNormalization layers kept (training=TrainingMode.PRESERVE): kernels, biases,
 * BN/LN scales and offsets, tensor operands; BN's running statistics are not.
 *
 * BatchNormalization becomes Keras' layer, so the workbench's frozen-BN semantics (freeze.ts) apply.
 * An unsupported operation fails naming the node and its type.
 */
import * as tf from '@tensorflow/tfjs';
import { applyKerasBatchNormSemantics } from '../freeze';
import { ConstTensor, decodeOnnxGraph, OnnxGraph, OnnxNode } from './graph';
import { OnnxArithmetic, OnnxBinary, OnnxPool, OnnxReduce, OnnxUnary, UnaryOp } from './import-layers';
import '../layers';

/** Operation types the importer reads. */
export const IMPORTED_OPS = [
  'Conv', 'BatchNormalization', 'Relu', 'LeakyRelu', 'Clip', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Elu', 'Selu', 'Softplus',
  'Erf', 'Gelu', 'Sqrt', 'Exp', 'Log', 'Neg', 'Abs', 'Reciprocal', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'GlobalAveragePool', 'GlobalMaxPool',
  'AveragePool', 'MaxPool', 'ReduceMean', 'ReduceMax', 'ReduceSum', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Gemm', 'MatMul',
  'Concat', 'Transpose', 'Softmax', 'LayerNormalization', 'Pad', 'Identity', 'Dropout', 'Constant', 'Shape', 'Gather', 'Cast',
  'ConstantOfShape', 'Slice',
] as const;

export interface ImportOptions {
  /** Side of the square input the model takes (default: the graph's static input height, else 224). */
  inputSize?: number;
  /** Name of the tf.LayersModel (default: the graph's name or 'onnx'). */
  name?: string;
  /** Names the file in errors. */
  origin?: string;
}

/** A rank-4 map where a head can cut the network (one per resolution stage, the last first). */
export interface CutCandidate {
  /** The ONNX node that computes it, and its output value. */
  node: string;
  value: string;
  op: string;
  /** Logical NCHW shape without the batch: [channels, height, width]. */
  shape: number[];
}

export interface ImportedOnnx {
  /** [null, S, S, 3] NHWC -> the graph's first output (its ONNX layout). */
  model: tf.LayersModel;
  graph: OnnxGraph;
  inputSize: number;
  /** Operation types and how many nodes of each. */
  ops: Record<string, number>;
  cutCandidates: CutCandidate[];
  /**
   * The tensor of the model for a node name or value name (rank 4 as NHWC, others in ONNX order);
   * throws naming the known rank-4 values when unknown.
   */
  featuresAt(nameOrNode: string): tf.SymbolicTensor;
}

type Perm = number[];
interface TensorVal { kind: 'tensor'; t: tf.SymbolicTensor; perm: Perm; pooled: boolean }
interface ConstVal { kind: 'const'; c: ConstTensor; param?: string }
type Val = TensorVal | ConstVal;

const NHWC: Perm = [0, 2, 3, 1];
const identity = (rank: number): Perm => Array.from({ length: rank }, (_, i) => i);
const sameArray = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const product = (a: number[]) => a.reduce((p, d) => p * d, 1);

/** PyTorch's module path from a node name: '/features/features.1/conv/conv.0/Conv' -> 'features.1.conv.0.Conv'. */
export function modulePath(nodeName: string): string {
  const parts = nodeName.split('/').filter((p) => p.length > 0);
  let path = '';
  let previous = '';
  for (const part of parts) {
    const piece = previous && part.startsWith(`${previous}.`) ? part.slice(previous.length + 1) : part;
    path = path ? `${path}.${piece}` : piece;
    previous = part;
  }
  return path;
}

/** A valid, readable TF.js layer name. */
function cleanName(raw: string): string {
  const s = raw.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return s || 'layer';
}

function constOf(data: Float32Array | number[], dims: number[], float = true): ConstTensor {
  return { data, dims, float };
}

function stridesOf(dims: number[]): number[] {
  const out = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) out[i] = out[i + 1] * dims[i + 1];
  return out;
}

/** A constant with its values picked by `source(outIndex)` (multi-index -> flat index into c.data). */
function gatherConst(c: ConstTensor, dims: number[], source: (index: number[]) => number): ConstTensor {
  const n = product(dims);
  const strides = stridesOf(dims);
  const picked: number[] = new Array(n);
  for (let flat = 0; flat < n; flat++) {
    const index = strides.map((st, i) => Math.floor(flat / st) % dims[i]);
    picked[flat] = c.data[source(index)];
  }
  return { dims, data: c.float ? Float32Array.from(picked) : picked, float: c.float };
}

function transposeConst(c: ConstTensor, perm: number[]): ConstTensor {
  const inStrides = stridesOf(c.dims);
  return gatherConst(c, perm.map((p) => c.dims[p]), (index) => index.reduce((f, v, i) => f + v * inStrides[perm[i]], 0));
}

/** ONNX Slice on a constant (negative steps, clamped bounds). */
function sliceConst(c: ConstTensor, starts: number[], ends: number[], axes: number[], steps: number[]): ConstTensor {
  const rank = c.dims.length;
  const first = c.dims.map(() => 0);
  const step = c.dims.map(() => 1);
  const dims = [...c.dims];
  axes.forEach((a0, k) => {
    const a = a0 < 0 ? a0 + rank : a0;
    const d = c.dims[a];
    const st = steps[k] ?? 1;
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let b = starts[k] < 0 ? starts[k] + d : starts[k];
    let e = ends[k] < 0 ? ends[k] + d : ends[k];
    if (st > 0) {
      b = clamp(b, 0, d);
      e = clamp(e, 0, d);
    } else {
      b = clamp(b, -1, d - 1);
      e = clamp(e, -1, d - 1);
    }
    first[a] = b;
    step[a] = st;
    dims[a] = Math.max(0, Math.ceil((e - b) / st));
  });
  const inStrides = stridesOf(c.dims);
  return gatherConst(c, dims, (index) => index.reduce((f, v, i) => f + (first[i] + v * step[i]) * inStrides[i], 0));
}

/** Folds a float constant through a TF.js op (on the current backend, synchronously). */
function foldFloat(inputs: ConstTensor[], fn: (...t: tf.Tensor[]) => tf.Tensor): ConstTensor {
  const out = tf.tidy(() => fn(...inputs.map((c) => tf.tensor(Float32Array.from(c.data), c.dims, 'float32'))));
  const folded = constOf(out.dataSync() as Float32Array, out.shape);
  out.dispose();
  return folded;
}

class Importer {
  readonly values = new Map<string, Val>();
  private readonly usedNames = new Set<string>();
  /** Nodes folded into an earlier one (a MatMul's bias Add). */
  private readonly absorbed = new Set<OnnxNode>();
  private readonly consumers = new Map<string, OnnxNode[]>();
  readonly maps: { value: string; node: string; op: string; t: TensorVal }[] = [];
  private exportBatch?: number;

  constructor(readonly g: OnnxGraph, readonly origin: string) {
    for (const n of g.nodes) for (const i of n.inputs) if (i) this.consumers.set(i, [...(this.consumers.get(i) ?? []), n]);
    for (const [name, c] of g.initializers) this.values.set(name, { kind: 'const', c, param: name });
    const b = g.input.shape[0];
    if (typeof b === 'number') this.exportBatch = b;
  }

  fail(node: OnnxNode, why: string): never {
    throw new Error(`${this.origin}: ONNX import: node '${node.name}' (op ${node.op}) ${why}`);
  }

  unique(base: string): string {
    const clean = cleanName(base);
    let name = clean;
    for (let k = 1; this.usedNames.has(name); k++) name = `${clean}_${k}`;
    this.usedNames.add(name);
    return name;
  }

  /** The layer name for a node: its parameter's module (PyTorch 'x.y.weight' -> 'x.y'), else its module path. */
  nameFor(node: OnnxNode, param?: string): string {
    if (param) return this.unique(param.replace(/\.(weight|bias)$/, ''));
    return this.unique(modulePath(node.name) || node.op);
  }

  get(node: OnnxNode, i: number): Val {
    const name = node.inputs[i];
    if (!name) this.fail(node, `has no input ${i}`);
    const v = this.values.get(name);
    if (!v) this.fail(node, `reads '${name}', which no earlier node computes (the graph is not in topological order, or uses an unsupported op)`);
    return v;
  }

  optional(node: OnnxNode, i: number): Val | undefined {
    return node.inputs[i] ? this.get(node, i) : undefined;
  }

  tensor(node: OnnxNode, i: number): TensorVal {
    const v = this.get(node, i);
    if (v.kind !== 'tensor') this.fail(node, `needs a computed tensor as input ${i}, got the constant '${node.inputs[i]}'`);
    return v;
  }

  constant(node: OnnxNode, i: number): ConstVal {
    const v = this.get(node, i);
    if (v.kind !== 'const') this.fail(node, `needs a constant (initializer) as input ${i} ('${node.inputs[i]}'); computed weights are not supported`);
    return v;
  }

  ints(node: OnnxNode, i: number): number[] {
    return Array.from(this.constant(node, i).c.data, Number);
  }

  attrInts(node: OnnxNode, name: string, fallback?: number[]): number[] {
    const a = node.attrs[name];
    if (a === undefined) {
      if (fallback) return fallback;
      this.fail(node, `has no attribute '${name}'`);
    }
    return Array.isArray(a) ? a.map(Number) : [Number(a)];
  }

  attrNum(node: OnnxNode, name: string, fallback: number): number {
    const a = node.attrs[name];
    return typeof a === 'number' ? a : fallback;
  }

  attrStr(node: OnnxNode, name: string, fallback: string): string {
    const a = node.attrs[name];
    return typeof a === 'string' ? a : fallback;
  }

  /** Logical (ONNX) shape of a tensor value; the batch is null. */
  logical(v: TensorVal): (number | null)[] {
    const phys = v.t.shape;
    const out: (number | null)[] = new Array(phys.length);
    v.perm.forEach((l, p) => (out[l] = phys[p]));
    return out;
  }

  /** The value with physical layout `want` (a Permute layer when it differs). */
  as(v: TensorVal, want: Perm, name: string): TensorVal {
    if (sameArray(v.perm, want)) return v;
    if (v.perm[0] !== 0 || want[0] !== 0) throw new Error(`${this.origin}: ONNX import: '${name}' moves the batch axis, which is not supported`);
    // New physical axis i holds logical want[i], found at old physical axis perm.indexOf(want[i]).
    const dims = want.slice(1).map((l) => v.perm.indexOf(l));
    const t = tf.layers.permute({ dims, name: this.unique(`${name}.permute`) }).apply(v.t) as tf.SymbolicTensor;
    return { kind: 'tensor', t, perm: [...want], pooled: v.pooled };
  }

  /**
   * Whether a reshape of `v` can run on its physical layout: the axes longer than 1 appear in
   * logical order (then the element order is the same as ONNX's).
   */
  orderPreserved(v: TensorVal): boolean {
    const shape = this.logical(v);
    const order = v.perm.filter((l) => l !== 0 && shape[l] !== 1);
    return order.every((l, i) => i === 0 || order[i - 1] < l);
  }

  apply(layer: tf.layers.Layer, inputs: tf.SymbolicTensor | tf.SymbolicTensor[], weights?: tf.Tensor[]): tf.SymbolicTensor {
    const out = layer.apply(inputs) as tf.SymbolicTensor;
    if (weights) {
      layer.setWeights(weights);
      weights.forEach((w) => w.dispose());
    }
    return out;
  }

  setOut(node: OnnxNode, v: Val, index = 0): void {
    this.values.set(node.outputs[index], v);
    if (v.kind === 'tensor' && v.t.shape.length === 4) this.maps.push({ value: node.outputs[index], node: node.name, op: node.op, t: v });
  }

  tensorOut(node: OnnxNode, t: tf.SymbolicTensor, perm: Perm, pooled: boolean): void {
    this.setOut(node, { kind: 'tensor', t, perm, pooled });
  }

  run(node: OnnxNode): void {
    if (this.absorbed.has(node)) return;
    if (node.domain && node.domain !== 'ai.onnx' && !(node.domain === 'com.microsoft' && node.op === 'Gelu')) {
      this.fail(node, `is in domain '${node.domain}'; only standard ONNX ops are imported`);
    }
    switch (node.op) {
      case 'Identity':
      case 'Dropout': {
        const v = this.get(node, 0);
        // PyTorch shares equal initializers through Identity nodes named after each parameter: one variable each.
        return this.setOut(node, v.kind === 'const' && v.param !== undefined ? { ...v, param: node.outputs[0] } : v);
      }
      case 'Constant':
        return this.setOut(node, { kind: 'const', c: this.constantAttr(node) });
      case 'Conv':
        return this.conv(node);
      case 'BatchNormalization':
        return this.batchNorm(node);
      case 'Relu':
      case 'Sigmoid':
      case 'Tanh':
      case 'Softplus':
        return this.activation(node, node.op.toLowerCase());
      case 'LeakyRelu': {
        const x = this.tensor(node, 0);
        const t = this.apply(tf.layers.leakyReLU({ alpha: this.attrNum(node, 'alpha', 0.01), name: this.nameFor(node) }), x.t);
        return this.tensorOut(node, t, x.perm, x.pooled);
      }
      case 'Clip':
        return this.clip(node);
      case 'HardSigmoid':
        return this.unary(node, 'hardSigmoid', { alpha: this.attrNum(node, 'alpha', 0.2), beta: this.attrNum(node, 'beta', 0.5) });
      case 'HardSwish':
        return this.unary(node, 'hardSwish');
      case 'Elu':
        return this.unary(node, 'elu', { alpha: this.attrNum(node, 'alpha', 1) });
      case 'Gelu':
        return this.unary(node, this.attrStr(node, 'approximate', 'none') === 'tanh' ? 'geluTanh' : 'gelu');
      case 'Selu':
      case 'Erf':
      case 'Sqrt':
      case 'Exp':
      case 'Log':
      case 'Neg':
      case 'Abs':
      case 'Reciprocal':
        return this.unary(node, (node.op[0].toLowerCase() + node.op.slice(1)) as UnaryOp);
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
      case 'Pow':
        return this.arithmetic(node, node.op.toLowerCase() as 'add' | 'sub' | 'mul' | 'div' | 'pow');
      case 'GlobalAveragePool':
      case 'GlobalMaxPool': {
        const x = this.tensor(node, 0);
        const rank = x.perm.length;
        return this.reduce(node, x, node.op === 'GlobalAveragePool' ? 'mean' : 'max', identity(rank).slice(2), true);
      }
      case 'ReduceMean':
      case 'ReduceMax':
      case 'ReduceSum': {
        const x = this.tensor(node, 0);
        const rank = x.perm.length;
        const fromInput = node.inputs[1] ? this.ints(node, 1) : undefined;
        let axes = fromInput ?? this.attrInts(node, 'axes', []);
        if (axes.length === 0) {
          if (this.attrNum(node, 'noop_with_empty_axes', 0)) return this.setOut(node, x);
          axes = identity(rank);
        }
        const op = node.op === 'ReduceMean' ? 'mean' : node.op === 'ReduceMax' ? 'max' : 'sum';
        return this.reduce(node, x, op, axes.map((a) => (a < 0 ? a + rank : a)), this.attrNum(node, 'keepdims', 1) === 1);
      }
      case 'AveragePool':
      case 'MaxPool':
        return this.pool(node);
      case 'Flatten':
        return this.flatten(node);
      case 'Reshape':
      case 'Squeeze':
      case 'Unsqueeze':
        return this.reshape(node);
      case 'Gemm':
        return this.gemm(node);
      case 'MatMul':
        return this.matmul(node);
      case 'Concat':
        return this.concat(node);
      case 'Transpose':
        return this.transpose(node);
      case 'Softmax':
        return this.softmax(node);
      case 'LayerNormalization':
        return this.layerNorm(node);
      case 'Pad':
        return this.pad(node);
      case 'Shape': {
        const v = this.get(node, 0);
        // The batch is dynamic: 0, which Reshape reads as "keep this dimension".
        const shape = v.kind === 'const' ? v.c.dims : this.logical(v).map((d) => d ?? 0);
        return this.setOut(node, { kind: 'const', c: constOf(shape, [shape.length], false) });
      }
      case 'Gather':
        return this.gather(node);
      case 'ConstantOfShape': {
        const shape = this.ints(node, 0);
        const value = node.attrs.value && typeof node.attrs.value === 'object' && !Array.isArray(node.attrs.value) ? node.attrs.value : constOf(Float32Array.of(0), [1]);
        const n = product(shape);
        const data = value.float ? new Float32Array(n).fill(value.data[0]) : new Array<number>(n).fill(value.data[0]);
        return this.setOut(node, { kind: 'const', c: constOf(data, shape, value.float) });
      }
      case 'Slice': {
        const v = this.get(node, 0);
        if (v.kind !== 'const') this.fail(node, 'slices a computed tensor; only constants (shape arithmetic) are sliced');
        const starts = this.ints(node, 1);
        const ends = this.ints(node, 2);
        const axes = node.inputs[3] ? this.ints(node, 3) : starts.map((_, i) => i);
        const steps = node.inputs[4] ? this.ints(node, 4) : starts.map(() => 1);
        return this.setOut(node, { kind: 'const', c: sliceConst(v.c, starts, ends, axes, steps) });
      }
      case 'Cast': {
        const v = this.get(node, 0);
        const to = this.attrNum(node, 'to', 1);
        const toFloat = to === 1 || to === 10 || to === 11;
        if (v.kind === 'tensor') {
          if (!toFloat) this.fail(node, `casts a computed tensor to type ${to}; only float casts of tensors are supported`);
          return this.setOut(node, v);
        }
        const data = toFloat ? Float32Array.from(v.c.data) : Array.from(v.c.data, (d) => Math.trunc(d));
        return this.setOut(node, { kind: 'const', c: constOf(data, v.c.dims, toFloat) });
      }
      default:
        this.fail(node, `is not supported by the importer (supported: ${(IMPORTED_OPS as readonly string[]).join(', ')})`);
    }
  }

  constantAttr(node: OnnxNode): ConstTensor {
    const a = node.attrs;
    if (a.value && typeof a.value === 'object' && !Array.isArray(a.value)) return a.value;
    if (typeof a.value_float === 'number') return constOf(Float32Array.of(a.value_float), []);
    if (Array.isArray(a.value_floats)) return constOf(Float32Array.from(a.value_floats as number[]), [a.value_floats.length]);
    if (typeof a.value_int === 'number') return constOf([a.value_int], [], false);
    if (Array.isArray(a.value_ints)) return constOf((a.value_ints as number[]).map(Number), [a.value_ints.length], false);
    return this.fail(node, 'has no value attribute this importer reads (value, value_float(s), value_int(s))');
  }

  activation(node: OnnxNode, activation: string): void {
    const x = this.tensor(node, 0);
    const t = this.apply(tf.layers.activation({ activation: activation as 'relu', name: this.nameFor(node) }), x.t);
    this.tensorOut(node, t, x.perm, x.pooled);
  }

  unary(node: OnnxNode, op: UnaryOp, extra: { alpha?: number; beta?: number; min?: number; max?: number } = {}): void {
    const v = this.get(node, 0);
    if (v.kind === 'const') {
      const layer = new OnnxUnary({ op, ...extra });
      return this.setOut(node, { kind: 'const', c: foldFloat([v.c], (t) => layer.call(t)) });
    }
    const t = this.apply(new OnnxUnary({ op, ...extra, name: this.nameFor(node) }), v.t);
    this.tensorOut(node, t, v.perm, v.pooled);
  }

  clip(node: OnnxNode): void {
    const bound = (i: number, attr: string): number | undefined => {
      if (node.inputs[i]) return this.constant(node, i).c.data[0];
      const a = node.attrs[attr];
      return typeof a === 'number' ? a : undefined;
    };
    const min = bound(1, 'min');
    const max = bound(2, 'max');
    if (min === 0 && max === 6) return this.activation(node, 'relu6');
    if (min === 0 && max === undefined) return this.activation(node, 'relu');
    this.unary(node, 'clip', { min, max });
  }

  conv(node: OnnxNode): void {
    const x0 = this.tensor(node, 0);
    const w = this.constant(node, 1);
    const b = node.inputs[2] ? this.constant(node, 2) : undefined;
    if (w.c.dims.length !== 4 || x0.perm.length !== 4) this.fail(node, `is a ${w.c.dims.length - 2}-D convolution; only 2-D convolutions are supported`);
    const [out, inPerGroup, kh, kw] = w.c.dims;
    const group = this.attrNum(node, 'group', 1);
    const strides = this.attrInts(node, 'strides', [1, 1]) as [number, number];
    const dilations = this.attrInts(node, 'dilations', [1, 1]) as [number, number];
    const name = this.nameFor(node, w.param);
    let x = this.as(x0, NHWC, name);
    const [, h, wd, channels] = x.t.shape as number[];
    if (inPerGroup * group !== channels) this.fail(node, `has weights for ${inPerGroup * group} input channels, its input has ${channels}`);
    const pads = this.convPads(node, [h, wd], [kh, kw], strides, dilations);
    if (pads.some((p) => p !== 0)) {
      const [t, l, bt, r] = pads;
      const padded = this.apply(tf.layers.zeroPadding2d({ padding: [[t, bt], [l, r]], name: this.unique(`${name}.pad`) }), x.t);
      x = { ...x, t: padded };
    }
    const common = { kernelSize: [kh, kw] as [number, number], strides, dilationRate: dilations, padding: 'valid' as const, useBias: !!b, name, biasInitializer: 'zeros' as const };
    const bias = b ? [tf.tensor1d(Float32Array.from(b.c.data))] : [];
    let t: tf.SymbolicTensor;
    if (group === 1) {
      const kernel = tf.tidy(() => tf.transpose(tf.tensor4d(Float32Array.from(w.c.data), [out, inPerGroup, kh, kw]), [2, 3, 1, 0]));
      t = this.apply(tf.layers.conv2d({ ...common, filters: out, kernelInitializer: 'zeros' }), x.t, [kernel, ...bias]);
    } else if (group === channels && inPerGroup === 1 && out % channels === 0) {
      // ONNX output channel c * mult + m is TF's depthwise channel c, multiplier m.
      const mult = out / channels;
      const kernel = tf.tidy(() => tf.transpose(tf.tensor4d(Float32Array.from(w.c.data), [channels, mult, kh, kw]), [2, 3, 0, 1]));
      t = this.apply(tf.layers.depthwiseConv2d({ ...common, depthMultiplier: mult, depthwiseInitializer: 'zeros' }), x.t, [kernel, ...bias]);
    } else {
      this.fail(node, `is a grouped convolution (group ${group} of ${channels} channels); only group 1 and depthwise (group = channels) are supported`);
    }
    this.tensorOut(node, t, NHWC, x0.pooled);
  }

  /** [top, left, bottom, right] from pads or auto_pad (SAME_UPPER puts the odd pixel at the end). */
  convPads(node: OnnxNode, size: number[], kernel: number[], strides: number[], dilations: number[]): [number, number, number, number] {
    const auto = this.attrStr(node, 'auto_pad', 'NOTSET');
    if (auto === 'NOTSET') {
      const p = this.attrInts(node, 'pads', [0, 0, 0, 0]);
      if (p.length !== 4) this.fail(node, `has ${p.length} pads; 4 expected for 2-D`);
      return [p[0], p[1], p[2], p[3]];
    }
    if (auto === 'VALID') return [0, 0, 0, 0];
    if (auto !== 'SAME_UPPER' && auto !== 'SAME_LOWER') this.fail(node, `has auto_pad '${auto}'`);
    const before: number[] = [];
    const after: number[] = [];
    for (let i = 0; i < 2; i++) {
      const effective = (kernel[i] - 1) * dilations[i] + 1;
      const total = Math.max((Math.ceil(size[i] / strides[i]) - 1) * strides[i] + effective - size[i], 0);
      const small = Math.floor(total / 2);
      before.push(auto === 'SAME_UPPER' ? small : total - small);
      after.push(total - before[i]);
    }
    return [before[0], before[1], after[0], after[1]];
  }

  batchNorm(node: OnnxNode): void {
    const x = this.tensor(node, 0);
    const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => this.constant(node, i));
    const axis = x.perm.indexOf(1);
    const layer = tf.layers.batchNormalization({
      axis,
      epsilon: this.attrNum(node, 'epsilon', 1e-5),
      momentum: this.attrNum(node, 'momentum', 0.9),
      name: this.nameFor(node, scale.param),
    });
    const weights = [scale, bias, mean, variance].map((c) => tf.tensor1d(Float32Array.from(c.c.data)));
    const t = this.apply(layer, x.t, weights);
    this.tensorOut(node, t, x.perm, x.pooled);
  }

  arithmetic(node: OnnxNode, op: 'add' | 'sub' | 'mul' | 'div' | 'pow'): void {
    const a = this.get(node, 0);
    const b = this.get(node, 1);
    const tfOp = { add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div, pow: tf.pow }[op];
    if (a.kind === 'const' && b.kind === 'const') {
      if (!a.c.float || !b.c.float) {
        const [x, y] = [a.c, b.c];
        if (product(x.dims) !== 1 && product(y.dims) !== 1 && !sameArray(x.dims, y.dims)) this.fail(node, 'broadcasts integer constants, which is not supported');
        const n = Math.max(x.data.length, y.data.length);
        const f = { add: (p: number, q: number) => p + q, sub: (p: number, q: number) => p - q, mul: (p: number, q: number) => p * q, div: (p: number, q: number) => Math.trunc(p / q), pow: (p: number, q: number) => p ** q }[op];
        const data = Array.from({ length: n }, (_, i) => f(x.data[x.data.length === 1 ? 0 : i], y.data[y.data.length === 1 ? 0 : i]));
        return this.setOut(node, { kind: 'const', c: constOf(data, x.data.length >= y.data.length ? x.dims : y.dims, false) });
      }
      return this.setOut(node, { kind: 'const', c: foldFloat([a.c, b.c], (p, q) => tfOp(p, q)) });
    }
    if (a.kind === 'tensor' && b.kind === 'tensor') {
      if (a.perm.length !== b.perm.length) this.fail(node, `combines tensors of rank ${a.perm.length} and ${b.perm.length}; equal ranks are supported`);
      const name = this.nameFor(node);
      const bb = this.as(b, a.perm, name);
      const t = this.apply(new OnnxBinary({ op, name }), [a.t, bb.t]);
      return this.tensorOut(node, t, a.perm, a.pooled && b.pooled);
    }
    const constantFirst = a.kind === 'const';
    const x = (constantFirst ? b : a) as TensorVal;
    const c = (constantFirst ? a : b) as ConstVal;
    const rank = x.perm.length;
    if (c.c.dims.length > rank) this.fail(node, `broadcasts a constant of rank ${c.c.dims.length} onto a rank-${rank} tensor`);
    const size = product(c.c.dims);
    let layer: OnnxArithmetic;
    let weights: tf.Tensor[] | undefined;
    if (size === 1) {
      layer = new OnnxArithmetic({ op, scalar: c.c.data[0], constantFirst, name: this.nameFor(node) });
    } else {
      // Broadcast to the tensor's rank (leading 1s), then into its physical layout.
      const full = [...new Array(rank - c.c.dims.length).fill(1), ...c.c.dims];
      const value = tf.tidy(() => tf.transpose(tf.tensor(Float32Array.from(c.c.data), full), x.perm));
      const trainable = c.param !== undefined;
      layer = new OnnxArithmetic({ op, constantShape: value.shape, constantTrainable: trainable, constantFirst, name: trainable ? this.nameFor(node, c.param) : this.nameFor(node) });
      weights = [value];
    }
    const t = this.apply(layer, x.t, weights);
    this.tensorOut(node, t, x.perm, x.pooled);
  }

  reduce(node: OnnxNode, x: TensorVal, op: 'mean' | 'max' | 'sum', axes: number[], keepDims: boolean): void {
    const physical = axes.map((a) => x.perm.indexOf(a));
    if (physical.includes(0)) this.fail(node, 'reduces over the batch axis, which is not supported');
    const t = this.apply(new OnnxReduce({ op, axes: physical, keepDims, name: this.nameFor(node) }), x.t);
    let perm = x.perm;
    if (!keepDims) {
      const kept = x.perm.filter((l) => !axes.includes(l));
      const sorted = [...kept].sort((p, q) => p - q);
      perm = kept.map((l) => sorted.indexOf(l));
    }
    const spatial = x.perm.length === 4 && axes.includes(2) && axes.includes(3);
    this.tensorOut(node, t, perm, x.pooled || spatial);
  }

  pool(node: OnnxNode): void {
    const x0 = this.tensor(node, 0);
    if (x0.perm.length !== 4) this.fail(node, 'pools a non-4-D tensor; 2-D pooling is supported');
    const kernel = this.attrInts(node, 'kernel_shape') as [number, number];
    const strides = this.attrInts(node, 'strides', [1, 1]) as [number, number];
    const dilations = this.attrInts(node, 'dilations', [1, 1]);
    if (dilations.some((d) => d !== 1)) this.fail(node, 'has dilations; dilated pooling is not supported');
    if (node.outputs.length > 1 && node.outputs[1]) this.fail(node, 'asks for MaxPool indices, which are not supported');
    const name = this.nameFor(node);
    const x = this.as(x0, NHWC, name);
    const [, h, w] = x.t.shape as number[];
    const pads = this.convPads(node, [h, w], kernel, strides, [1, 1]);
    const layer = new OnnxPool({
      op: node.op === 'MaxPool' ? 'max' : 'avg',
      kernel,
      strides,
      pads,
      countIncludePad: this.attrNum(node, 'count_include_pad', 0) === 1,
      ceilMode: this.attrNum(node, 'ceil_mode', 0) === 1,
      name,
    });
    this.tensorOut(node, this.apply(layer, x.t), NHWC, x.pooled);
  }

  /** A reshape of a tensor to the logical shape `target` (batch first, kept). */
  reshapeTo(node: OnnxNode, x0: TensorVal, target: number[]): void {
    const name = this.nameFor(node);
    const x = this.orderPreserved(x0) ? x0 : this.as(x0, identity(x0.perm.length), name);
    const t = this.apply(tf.layers.reshape({ targetShape: target, name }), x.t);
    this.tensorOut(node, t, identity(target.length + 1), x0.pooled);
  }

  flatten(node: OnnxNode): void {
    const v = this.get(node, 0);
    if (v.kind === 'const') this.fail(node, 'flattens a constant');
    const axis = this.attrNum(node, 'axis', 1);
    if (axis !== 1) this.fail(node, `flattens from axis ${axis}; only axis 1 (keep the batch) is supported`);
    const shape = this.logical(v).slice(1) as number[];
    this.reshapeTo(node, v, [product(shape)]);
  }

  reshape(node: OnnxNode): void {
    const v = this.get(node, 0);
    const inShape = v.kind === 'const' ? v.c.dims : (this.logical(v).map((d) => d ?? -1) as number[]);
    let target: number[];
    if (node.op === 'Reshape') {
      const spec = this.ints(node, 1);
      const allowZero = this.attrNum(node, 'allowzero', 0) === 1;
      target = spec.map((d, i) => (d === 0 && !allowZero ? inShape[i] : d));
    } else {
      const rawAxes = node.inputs[1] ? this.ints(node, 1) : this.attrInts(node, 'axes', []);
      if (node.op === 'Squeeze') {
        const axes = (rawAxes.length ? rawAxes : inShape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)).map((a) => (a < 0 ? a + inShape.length : a));
        target = inShape.filter((_, i) => !axes.includes(i));
      } else {
        const rank = inShape.length + rawAxes.length;
        const axes = rawAxes.map((a) => (a < 0 ? a + rank : a));
        target = [];
        let k = 0;
        for (let i = 0; i < rank; i++) target.push(axes.includes(i) ? 1 : inShape[k++]);
      }
    }
    if (v.kind === 'const') {
      const known = product(target.filter((d) => d !== -1));
      const resolved = target.map((d) => (d === -1 ? product(v.c.dims) / known : d));
      return this.setOut(node, { kind: 'const', c: { ...v.c, dims: resolved }, param: v.param });
    }
    // The batch: kept when the target's first dimension is the input's (0, -1 or the batch the file was exported with).
    const first = target[0];
    if (!(first === -1 || (this.exportBatch !== undefined && first === this.exportBatch) || node.op !== 'Reshape')) {
      this.fail(node, `reshapes to [${target}], which does not keep the batch as its first dimension`);
    }
    if (node.op !== 'Reshape' && (target[0] !== -1 || inShape[0] !== -1)) this.fail(node, 'squeezes or unsqueezes the batch axis');
    const rest = target.slice(1);
    const known = product(rest.filter((d) => d !== -1));
    const total = product(inShape.slice(1));
    const resolved = rest.map((d) => (d === -1 ? total / known : d));
    if (product(resolved) !== total || resolved.some((d) => !Number.isInteger(d) || d < 0)) this.fail(node, `cannot reshape [${inShape.slice(1)}] to [${rest}]`);
    if (sameArray(resolved, inShape.slice(1)) && this.orderPreserved(v)) return this.setOut(node, v);
    this.reshapeTo(node, v, resolved);
  }

  gemm(node: OnnxNode): void {
    const x = this.tensor(node, 0);
    if (x.perm.length !== 2) this.fail(node, `multiplies a rank-${x.perm.length} tensor; Gemm takes 2-D`);
    if (this.attrNum(node, 'transA', 0)) this.fail(node, 'has transA=1, which is not supported');
    const w = this.constant(node, 1);
    const c = this.optional(node, 2);
    if (c && c.kind !== 'const') this.fail(node, 'adds a computed C; a constant bias is supported');
    const alpha = this.attrNum(node, 'alpha', 1);
    const beta = this.attrNum(node, 'beta', 1);
    const transB = this.attrNum(node, 'transB', 0) === 1;
    const [r, s] = w.c.dims;
    const units = transB ? r : s;
    const kernel = tf.tidy(() => {
      const k = tf.tensor2d(Float32Array.from(w.c.data), [r, s]);
      return tf.mul(transB ? tf.transpose(k) : k, alpha);
    });
    const bias = c ? [tf.tidy(() => tf.mul(tf.broadcastTo(tf.tensor(Float32Array.from(c.c.data), c.c.dims).reshape([-1]), [units]), beta))] : [];
    const layer = tf.layers.dense({ units, useBias: !!c, name: this.nameFor(node, w.param), kernelInitializer: 'zeros' });
    this.tensorOut(node, this.apply(layer, x.t, [kernel, ...bias]), [0, 1], x.pooled);
  }

  matmul(node: OnnxNode): void {
    const a = this.get(node, 0);
    const b = this.get(node, 1);
    if (a.kind === 'const') this.fail(node, 'multiplies a constant by a tensor; tensor x constant is supported');
    const rank = a.perm.length;
    if (b.kind === 'tensor') {
      const name = this.nameFor(node);
      const aa = this.as(a, identity(rank), name);
      const bb = this.as(b, identity(b.perm.length), `${name}.b`);
      return this.tensorOut(node, this.apply(new OnnxBinary({ op: 'matmul', name }), [aa.t, bb.t]), identity(rank), a.pooled && b.pooled);
    }
    if (b.c.dims.length !== 2) this.fail(node, `multiplies by a rank-${b.c.dims.length} constant; 2-D weights are supported`);
    const [, units] = b.c.dims;
    const name = this.nameFor(node, b.param);
    // Dense works on the last physical axis: it must hold the last logical one.
    const x = a.perm[rank - 1] === rank - 1 ? a : this.as(a, identity(rank), name);
    // PyTorch's Linear on a map exports MatMul + Add(bias): one Dense with a bias.
    const users = this.consumers.get(node.outputs[0]) ?? [];
    let bias: ConstVal | undefined;
    if (users.length === 1 && users[0].op === 'Add') {
      const other = users[0].inputs.find((i) => i !== node.outputs[0]);
      const v = other ? this.values.get(other) : undefined;
      if (v?.kind === 'const' && v.c.float && v.c.dims.length === 1 && v.c.dims[0] === units) {
        bias = v;
        this.absorbed.add(users[0]);
      }
    }
    const kernel = tf.tensor2d(Float32Array.from(b.c.data), b.c.dims as [number, number]);
    const weights = bias ? [kernel, tf.tensor1d(Float32Array.from(bias.c.data))] : [kernel];
    const t = this.apply(tf.layers.dense({ units, useBias: !!bias, name, kernelInitializer: 'zeros' }), x.t, weights);
    const out: TensorVal = { kind: 'tensor', t, perm: x.perm, pooled: a.pooled };
    this.setOut(node, out);
    if (bias) this.setOut(users[0], out);
  }

  concat(node: OnnxNode): void {
    const vals = node.inputs.map((_, i) => this.get(node, i));
    const rawAxis = this.attrNum(node, 'axis', 0);
    if (vals.every((v) => v.kind === 'const')) {
      const cs = vals.map((v) => (v as ConstVal).c);
      if (cs.every((c) => c.dims.length <= 1)) {
        const data = cs.flatMap((c) => Array.from(c.data));
        const float = cs.some((c) => c.float);
        return this.setOut(node, { kind: 'const', c: constOf(float ? Float32Array.from(data) : data, [data.length], float) });
      }
      return this.setOut(node, { kind: 'const', c: foldFloat(cs, (...ts) => tf.concat(ts, rawAxis)) });
    }
    if (vals.some((v) => v.kind === 'const')) this.fail(node, 'concatenates a constant with computed tensors, which is not supported');
    const ts = vals as TensorVal[];
    const rank = ts[0].perm.length;
    const axis = rawAxis < 0 ? rawAxis + rank : rawAxis;
    if (ts.length === 1) return this.setOut(node, ts[0]);
    const name = this.nameFor(node);
    const aligned = ts.map((v, i) => this.as(v, ts[0].perm, `${name}.in${i}`));
    const layer = tf.layers.concatenate({ axis: ts[0].perm.indexOf(axis), name });
    this.tensorOut(node, this.apply(layer, aligned.map((v) => v.t)), ts[0].perm, ts.every((v) => v.pooled));
  }

  transpose(node: OnnxNode): void {
    const v = this.get(node, 0);
    const rank = v.kind === 'const' ? v.c.dims.length : v.perm.length;
    const p = this.attrInts(node, 'perm', identity(rank).reverse());
    if (v.kind === 'const') return this.setOut(node, { kind: 'const', c: transposeConst(v.c, p), param: v.param });
    if (p[0] !== 0) this.fail(node, 'moves the batch axis, which is not supported');
    // Only the labels change: physical axis i held logical perm[i], which is now output axis p^-1(perm[i]).
    const perm = v.perm.map((l) => p.indexOf(l));
    this.setOut(node, { ...v, perm });
  }

  softmax(node: OnnxNode): void {
    const x = this.tensor(node, 0);
    const rank = x.perm.length;
    const defaultAxis = this.g.opset >= 13 ? -1 : 1;
    let axis = this.attrNum(node, 'axis', defaultAxis);
    if (axis < 0) axis += rank;
    if (this.g.opset < 13 && axis !== rank - 1) this.fail(node, `is an opset-${this.g.opset} Softmax over axes ${axis}.. of a rank-${rank} tensor; only the last axis is supported`);
    const t = this.apply(tf.layers.softmax({ axis: x.perm.indexOf(axis), name: this.nameFor(node) }), x.t);
    this.tensorOut(node, t, x.perm, x.pooled);
  }

  layerNorm(node: OnnxNode): void {
    const x0 = this.tensor(node, 0);
    const rank = x0.perm.length;
    let axis = this.attrNum(node, 'axis', -1);
    if (axis < 0) axis += rank;
    const scale = this.constant(node, 1);
    const bias = node.inputs[2] ? this.constant(node, 2) : undefined;
    if (node.outputs.slice(1).some((o) => o)) this.fail(node, 'asks for the mean / inverse std outputs, which are not supported');
    const name = this.nameFor(node, scale.param);
    const logicalAxes = identity(rank).slice(axis);
    // One axis: wherever it sits physically. Several: they must be the trailing physical axes in order.
    const x = logicalAxes.length === 1 || sameArray(x0.perm.slice(axis), logicalAxes) ? x0 : this.as(x0, identity(rank), name);
    const physical = logicalAxes.map((l) => x.perm.indexOf(l));
    const layer = tf.layers.layerNormalization({ axis: physical.length === 1 ? physical[0] : physical, epsilon: this.attrNum(node, 'epsilon', 1e-5), center: true, scale: true, name });
    const shape = physical.map((p) => x.t.shape[p] as number);
    const gamma = tf.tensor(Float32Array.from(scale.c.data), shape);
    const beta = bias ? tf.tensor(Float32Array.from(bias.c.data), shape) : tf.zeros(shape);
    this.tensorOut(node, this.apply(layer, x.t, [gamma, beta]), x.perm, x0.pooled);
  }

  pad(node: OnnxNode): void {
    const x0 = this.tensor(node, 0);
    const mode = this.attrStr(node, 'mode', 'constant');
    const pads = node.inputs[1] ? this.ints(node, 1) : this.attrInts(node, 'pads');
    const value = node.inputs[2] ? this.constant(node, 2).c.data[0] : this.attrNum(node, 'value', 0);
    const rank = x0.perm.length;
    const onlySpatial = rank === 4 && [0, 1, 4, 5].every((i) => pads[i] === 0) && pads.every((p) => p >= 0);
    if (mode !== 'constant' || value !== 0 || !onlySpatial || (node.inputs[3] ?? '') !== '') {
      this.fail(node, `pads with mode '${mode}', value ${value}, pads [${pads}]; zero padding of the two spatial axes is supported`);
    }
    const name = this.nameFor(node);
    const x = this.as(x0, NHWC, name);
    const t = this.apply(tf.layers.zeroPadding2d({ padding: [[pads[2], pads[6]], [pads[3], pads[7]]], name }), x.t);
    this.tensorOut(node, t, NHWC, x0.pooled);
  }

  gather(node: OnnxNode): void {
    const v = this.get(node, 0);
    const idx = this.constant(node, 1).c;
    if (v.kind !== 'const' || v.c.dims.length !== 1 || idx.dims.length > 1) this.fail(node, 'gathers from a computed tensor; only shape arithmetic on 1-D constants is supported');
    const picked = Array.from(idx.data, (i) => v.c.data[i < 0 ? i + v.c.data.length : i]);
    const data = v.c.float ? Float32Array.from(picked) : picked;
    this.setOut(node, { kind: 'const', c: constOf(data, idx.dims.length === 0 ? [] : [picked.length], v.c.float) });
  }
}

/** Decodes and imports an ONNX file's bytes (see the file comment). */
export function importOnnx(bytes: Uint8Array, opts: ImportOptions = {}): ImportedOnnx {
  const origin = opts.origin ?? 'ONNX model';
  const graph = decodeOnnxGraph(bytes, origin);
  if (graph.opset && (graph.opset < 7 || graph.opset > 18)) throw new Error(`${origin}: ONNX import: opset ${graph.opset}; opsets 7 to 18 are read (11 to 17 tested)`);
  const shape = graph.input.shape;
  if (shape.length !== 4) throw new Error(`${origin}: ONNX import: the input '${graph.input.name}' has shape [${shape}]; an image batch [N, 3, H, W] (or [N, H, W, 3]) is expected`);
  // NCHW (PyTorch) unless the channels are last (tf2onnx exports of Keras models).
  const channelsLast = shape[3] === 3 && shape[1] !== 3;
  const declared = channelsLast ? shape[1] : shape[2];
  const inputSize = opts.inputSize ?? (typeof declared === 'number' && declared > 0 ? declared : 224);
  const channels = channelsLast ? shape[3] : shape[1];
  if (typeof channels === 'number' && channels !== 3) throw new Error(`${origin}: ONNX import: the input has ${channels} channels; RGB (3) is expected`);

  const imp = new Importer(graph, origin);
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: imp.unique(graph.input.name || 'input') });
  imp.values.set(graph.input.name, { kind: 'tensor', t: input, perm: channelsLast ? identity(4) : NHWC, pooled: false });
  const ops: Record<string, number> = {};
  for (const node of graph.nodes) {
    ops[node.op] = (ops[node.op] ?? 0) + 1;
    imp.run(node);
  }
  const outputs = graph.outputs.map((name) => {
    const v = imp.values.get(name);
    if (!v || v.kind !== 'tensor') throw new Error(`${origin}: ONNX import: the graph output '${name}' is not computed from the input`);
    return imp.as(v, identity(v.perm.length), `output.${name}`).t;
  });
  const model = tf.model({ inputs: input, outputs: outputs[0], name: cleanName(opts.name ?? (graph.name || 'onnx')) });
  applyKerasBatchNormSemantics(model);

  // Cut candidates: maps not computed from a global pooling (an SE block's gate is), the last of each resolution.
  // Prefer maps in the graph's own NCHW order (ConvNeXt's blocks compute in NHWC between permutes).
  const unpooled = imp.maps.filter((m) => !m.t.pooled);
  const nchw = unpooled.filter((m) => sameArray(m.t.perm, NHWC));
  const maps = nchw.length > 0 ? nchw : unpooled;
  const stages: CutCandidate[] = [];
  for (let i = maps.length - 1; i >= 0 && stages.length < 3; i--) {
    const m = maps[i];
    const [c, h, w] = imp.logical(m.t).slice(1) as number[];
    if (stages.some((s) => s.shape[1] === h && s.shape[2] === w)) continue;
    stages.push({ node: m.node, value: m.value, op: m.op, shape: [c, h, w] });
  }
  const byNode = new Map<string, string>();
  for (const n of graph.nodes) if (n.outputs[0]) byNode.set(n.name, n.outputs[0]);
  const featuresAt = (nameOrNode: string): tf.SymbolicTensor => {
    const valueName = imp.values.has(nameOrNode) ? nameOrNode : byNode.get(nameOrNode);
    const v = valueName ? imp.values.get(valueName) : undefined;
    if (!v || v.kind !== 'tensor') {
      const known = stages.map((s) => s.node).join(', ');
      throw new Error(`${origin}: cut '${nameOrNode}' is not a node or value computed from the input (cut candidates: ${known})`);
    }
    const want = v.perm.length === 4 ? NHWC : identity(v.perm.length);
    return imp.as(v, want, `cut.${modulePath(nameOrNode)}`).t;
  };
  return { model, graph, inputSize, ops, cutCandidates: stages, featuresAt };
}
