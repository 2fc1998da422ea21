/**
 * TF.js LayersModel -> ONNX (opset 13). The graph is walked from the model's outputs through each
 * layer's inbound node (as Keras runs a functional model), nested models inline. Layout is handled
 * once: the file takes NHWC like the TF.js model, one Transpose makes it NCHW (ONNX's convolution
 * layout), every 4-D value stays NCHW inside, and only the layers whose meaning depends on the
 * memory order (Flatten, Reshape, Dense on a map) see NHWC again. TF's 'same' padding is asymmetric
 * (the extra pixel at the end); it is written as explicit pads computed from the static input size.
 * An unsupported layer fails naming the layer and its class.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { PreprocessMode } from '../../config';
import { CAFFE_MEAN_BGR, TORCH_MEAN_RGB, TORCH_STD_RGB } from '../../preprocess/preprocess';
import { FLOAT16_MIN_VALUES, toFloat16 } from '../float16';
import { AttributeType, DataType, modelProtoType } from './schema';

export const OPSET = 13;
/** IR version 7 is the one that goes with opset 13. */
const IR_VERSION = 7;

export interface ExportOptions {
  /** Graph name (default: the model's name). */
  name?: string;
  /** Bake this preprocessing in: the file then takes raw RGB 0..255 (float32, NHWC). */
  preprocess?: PreprocessMode;
  /** String key/values written as the model's metadata_props. */
  metadata?: Record<string, string>;
  inputName?: string;
  outputName?: string;
  /**
   * Store the large weights (kernels of 1,024 values or more) as float16, each behind a Cast to
   * float32: half the file, the same float32 arithmetic. Small tensors (biases, batch-norm
   * statistics) and any tensor outside float16's range stay float32.
   */
  float16Weights?: boolean;
}

export interface OnnxExport {
  bytes: Uint8Array;
  input: { name: string; shape: (number | null)[] };
  output: { name: string; shape: (number | null)[] };
  /** ONNX nodes written. */
  nodeCount: number;
}

/** Layer classes the exporter writes. */
export const SUPPORTED_LAYERS = [
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'Activation', 'ReLU', 'LeakyReLU', 'Softmax', 'ELU',
  'ZeroPadding2D', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Add', 'Multiply',
  'Concatenate', 'Dense', 'Dropout', 'SpatialDropout1D', 'Flatten', 'Reshape', 'ImageResize', 'Model', 'Functional', 'Sequential',
  'Permute', 'LayerNormalization', 'OnnxUnary', 'OnnxBinary', 'OnnxArithmetic', 'OnnxReduce', 'OnnxPool',
] as const;

type SymbolicTensor = tf.SymbolicTensor & { sourceLayer: tf.layers.Layer; nodeIndex: number; tensorIndex: number };
interface GraphNode {
  inputTensors: SymbolicTensor[];
  outputTensors: SymbolicTensor[];
}
type Config = Record<string, unknown>;

/** A value of the ONNX graph: its name, rank, and for 4-D values whether it is NCHW. */
interface Value {
  name: string;
  rank: number;
  nchw: boolean;
}

type Attr = { name: string; type: number; f?: number; i?: number; s?: Uint8Array; floats?: number[]; ints?: number[] };
const attr = {
  i: (name: string, i: number): Attr => ({ name, type: AttributeType.INT, i }),
  f: (name: string, f: number): Attr => ({ name, type: AttributeType.FLOAT, f }),
  s: (name: string, s: string): Attr => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(s) }),
  ints: (name: string, ints: number[]): Attr => ({ name, type: AttributeType.INTS, ints }),
};

function isModel(layer: tf.layers.Layer): layer is tf.LayersModel {
  return Array.isArray((layer as unknown as { layers?: unknown }).layers);
}

function bytesOf(a: Float32Array | BigInt64Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The importer's element-wise binary ops as ONNX ops. */
const BINARY_ONNX: Record<string, string> = { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div', pow: 'Pow' };

/** NHWC axis -> NCHW axis for a 4-D value. */
function nchwAxis(axis: number): number {
  const a = axis < 0 ? axis + 4 : axis;
  return [0, 2, 3, 1][a];
}

/** TF's 'same' padding along one axis: [before, after], the odd pixel after. */
export function samePads(size: number, kernel: number, stride: number, dilation = 1): [number, number] {
  const effective = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

class GraphBuilder {
  readonly nodes: object[] = [];
  readonly initializers: object[] = [];
  private readonly used = new Set<string>();
  /** Initializer names of weights already written (shared layers write theirs once). */
  private readonly weightNames = new Map<object, string>();

  constructor(private readonly float16Weights = false) {}

  unique(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./:-]/g, '_');
    let name = clean;
    for (let k = 1; this.used.has(name); k++) name = `${clean}_${k}`;
    this.used.add(name);
    return name;
  }

  node(op: string, inputs: string[], name: string, attributes: Attr[] = []): string {
    const output = this.unique(name);
    this.nodes.push({ op_type: op, input: inputs, output: [output], name: output, attribute: attributes });
    return output;
  }

  floats(name: string, data: Float32Array, dims: number[]): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, data_type: DataType.FLOAT, dims, raw_data: bytesOf(data) });
    return n;
  }

  /** A float16 initializer and the Cast that makes it the float32 value `name` (ORT folds it at load). */
  private castFloat16(name: string, data: Uint16Array, dims: number[]): string {
    const half = this.unique(`${name}/float16`);
    this.initializers.push({ name: half, data_type: DataType.FLOAT16, dims, raw_data: bytesOf(data) });
    return this.node('Cast', [half], name, [attr.i('to', DataType.FLOAT)]);
  }

  int64s(name: string, data: number[]): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, data_type: DataType.INT64, dims: [data.length], raw_data: bytesOf(BigInt64Array.from(data.map(BigInt))) });
    return n;
  }

  /** A layer weight, transformed by `fn` (e.g. to ONNX's kernel layout), written once per variable. */
  weight(key: object, name: string, v: tf.LayerVariable | tf.Tensor, fn: (t: tf.Tensor) => tf.Tensor = (t) => t): string {
    const known = this.weightNames.get(key);
    if (known) return known;
    const t = tf.tidy(() => tf.clone(fn('read' in v ? v.read() : v))); // a copy: disposing it must not dispose the variable
    const data = Float32Array.from(t.dataSync() as Float32Array);
    const dims = t.shape;
    t.dispose();
    const half = this.float16Weights && data.length >= FLOAT16_MIN_VALUES ? toFloat16(data) : undefined;
    const n = half ? this.castFloat16(name, half, dims) : this.floats(name, data, dims);
    this.weightNames.set(key, n);
    return n;
  }
}

class Exporter {
  constructor(readonly g: GraphBuilder) {}

  private unsupported(layer: tf.layers.Layer, why: string): never {
    throw new Error(`ONNX export: layer '${layer.name}' (class ${layer.getClassName()}) ${why}`);
  }

  toNhwc(v: Value, name: string): Value {
    if (v.rank !== 4 || !v.nchw) return v;
    return { name: this.g.node('Transpose', [v.name], `${name}/to_nhwc`, [attr.ints('perm', [0, 2, 3, 1])]), rank: 4, nchw: false };
  }

  toNchw(v: Value, name: string): Value {
    if (v.rank !== 4 || v.nchw) return v;
    return { name: this.g.node('Transpose', [v.name], `${name}/to_nchw`, [attr.ints('perm', [0, 3, 1, 2])]), rank: 4, nchw: true };
  }

  /** The outputs of a (nested) model for the given input values. */
  model(model: tf.LayersModel, inputs: Value[], scope: string): Value[] {
    if (inputs.length !== model.inputs.length) throw new Error(`ONNX export: model '${model.name}' takes ${model.inputs.length} inputs, got ${inputs.length}`);
    const values = new Map<number, Value>();
    (model.inputs as SymbolicTensor[]).forEach((t, i) => values.set(t.id, inputs[i]));
    const visit = (t: SymbolicTensor): Value => {
      const known = values.get(t.id);
      if (known) return known;
      const layer = t.sourceLayer;
      const node = layer.inboundNodes[t.nodeIndex] as unknown as GraphNode;
      const ins = node.inputTensors.map(visit);
      const outs = this.layer(layer, ins, node, scope);
      node.outputTensors.forEach((o, i) => values.set(o.id, outs[i]));
      return values.get(t.id)!;
    };
    return (model.outputs as SymbolicTensor[]).map(visit);
  }

  /** One layer applied at `node`. */
  layer(layer: tf.layers.Layer, ins: Value[], node: GraphNode, scope: string): Value[] {
    const cls = layer.getClassName();
    if (isModel(layer)) return this.model(layer, ins, `${scope}${layer.name}/`);
    const name = `${scope}${layer.name}`;
    const cfg = layer.getConfig() as Config;
    const inShape = node.inputTensors[0]?.shape as (number | null)[] | undefined;
    const x = ins[0];
    const one = (v: Value) => [v];
    switch (cls) {
      case 'InputLayer':
      case 'Dropout':
      case 'SpatialDropout1D':
        return ins;
      case 'Conv2D':
      case 'DepthwiseConv2D':
        return one(this.conv(layer, cfg, x, inShape!, name, cls === 'DepthwiseConv2D'));
      case 'BatchNormalization':
        return one(this.batchNorm(layer, cfg, x, name));
      case 'Activation':
        return one(this.activation(layer, String(cfg.activation), x, name));
      case 'ReLU': {
        const max = cfg.maxValue as number | null | undefined;
        if (max == null) return one({ ...x, name: this.g.node('Relu', [x.name], name) });
        return one(this.clip(x, 0, max, name));
      }
      case 'LeakyReLU':
        return one({ ...x, name: this.g.node('LeakyRelu', [x.name], name, [attr.f('alpha', Number(cfg.alpha ?? 0.3))]) });
      case 'ELU':
        return one({ ...x, name: this.g.node('Elu', [x.name], name, [attr.f('alpha', Number(cfg.alpha ?? 1))]) });
      case 'Softmax': {
        const axes = Array.isArray(cfg.axis) ? (cfg.axis as number[]) : [Number(cfg.axis ?? -1)];
        if (axes.length !== 1) this.unsupported(layer, `has softmax over ${axes.length} axes; one is supported`);
        return one(this.softmax(x, axes[0], name));
      }
      case 'ZeroPadding2D': {
        this.channelsLast(layer, cfg);
        const [[t, b], [l, r]] = cfg.padding as [[number, number], [number, number]];
        const v = this.toNchw(x, name);
        const pads = this.g.int64s(`${name}/pads`, [0, 0, t, l, 0, 0, b, r]);
        return one({ name: this.g.node('Pad', [v.name, pads], name, [attr.s('mode', 'constant')]), rank: 4, nchw: true });
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        this.channelsLast(layer, cfg);
        const k = cfg.poolSize as [number, number];
        const s = (cfg.strides as [number, number] | null) ?? k;
        const v = this.toNchw(x, name);
        const attrs = [attr.ints('kernel_shape', k), attr.ints('strides', s), ...this.padAttrs(cfg.padding as string, inShape!, k, s, [1, 1])];
        return one({ name: this.g.node(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [v.name], name, attrs), rank: 4, nchw: true });
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        this.channelsLast(layer, cfg);
        if (cfg.keepDims) this.unsupported(layer, 'has keepDims; not supported');
        const v = this.toNchw(x, name);
        const op = cls === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax';
        return one({ name: this.g.node(op, [v.name], name, [attr.ints('axes', [2, 3]), attr.i('keepdims', 0)]), rank: 2, nchw: false });
      }
      case 'Add':
      case 'Multiply': {
        const same = this.sameLayout(ins, name);
        if (same.length === 1) return same;
        const op = cls === 'Add' ? 'Sum' : 'Mul';
        if (op === 'Sum') return one({ ...same[0], name: this.g.node('Sum', same.map((v) => v.name), name) });
        let acc = same[0];
        for (let i = 1; i < same.length; i++) acc = { ...acc, name: this.g.node('Mul', [acc.name, same[i].name], i === same.length - 1 ? name : `${name}/mul${i}`) };
        return one(acc);
      }
      case 'Concatenate': {
        const same = this.sameLayout(ins, name);
        const axis = Number(cfg.axis ?? -1);
        const onnxAxis = same[0].rank === 4 ? nchwAxis(axis) : axis;
        return one({ ...same[0], name: this.g.node('Concat', same.map((v) => v.name), name, [attr.i('axis', onnxAxis)]) });
      }
      case 'Dense':
        return one(this.dense(layer, cfg, x, name));
      case 'Flatten': {
        const v = this.toNhwc(x, name);
        return one({ name: this.g.node('Flatten', [v.name], name, [attr.i('axis', 1)]), rank: 2, nchw: false });
      }
      case 'Reshape': {
        const target = cfg.targetShape as number[];
        const v = this.toNhwc(x, name);
        const shape = this.g.int64s(`${name}/shape`, [0, ...target]);
        const out: Value = { name: this.g.node('Reshape', [v.name, shape], name), rank: target.length + 1, nchw: false };
        return one(this.toNchw(out, `${name}/out`));
      }
      case 'ImageResize':
        return one(this.resize(layer, x, inShape!, name));
      case 'Permute': {
        const v = this.toNhwc(x, name);
        const dims = cfg.dims as number[];
        return one({ name: this.g.node('Transpose', [v.name], name, [attr.ints('perm', [0, ...dims])]), rank: v.rank, nchw: false });
      }
      case 'LayerNormalization':
        return one(this.layerNorm(layer, cfg, x, name));
      case 'OnnxUnary':
        return one(this.onnxUnary(layer, cfg, x, name));
      case 'OnnxBinary': {
        const op = String(cfg.op);
        if (op === 'matmul') {
          const [a, b] = ins.map((v, i) => this.toNhwc(v, `${name}/in${i}`));
          return one({ ...a, name: this.g.node('MatMul', [a.name, b.name], name) });
        }
        const same = this.sameLayout(ins, name);
        return one({ ...same[0], name: this.g.node(BINARY_ONNX[op], [same[0].name, same[1].name], name) });
      }
      case 'OnnxArithmetic':
        return one(this.onnxArithmetic(layer, cfg, x, name));
      case 'OnnxReduce': {
        const axes = cfg.axes as number[];
        const keepDims = Boolean(cfg.keepDims);
        // Kept dims: the layout stays (axes renamed); dropped dims: reduce in TF's order so the rest lines up.
        const v = keepDims ? x : this.toNhwc(x, name);
        const onnxAxes = v.rank === 4 && v.nchw ? axes.map(nchwAxis) : axes;
        const op = { mean: 'ReduceMean', max: 'ReduceMax', sum: 'ReduceSum' }[String(cfg.op)]!;
        if (op === 'ReduceSum') {
          const a = this.g.int64s(`${name}/axes`, onnxAxes);
          return one({ ...v, rank: keepDims ? v.rank : v.rank - axes.length, name: this.g.node(op, [v.name, a], name, [attr.i('keepdims', keepDims ? 1 : 0)]) });
        }
        return one({ ...v, rank: keepDims ? v.rank : v.rank - axes.length, name: this.g.node(op, [v.name], name, [attr.ints('axes', onnxAxes), attr.i('keepdims', keepDims ? 1 : 0)]) });
      }
      case 'OnnxPool': {
        const v = this.toNchw(x, name);
        const attrs = [
          attr.ints('kernel_shape', cfg.kernel as number[]),
          attr.ints('strides', cfg.strides as number[]),
          attr.ints('pads', cfg.pads as number[]),
          attr.i('ceil_mode', cfg.ceilMode ? 1 : 0),
        ];
        if (cfg.op === 'avg') attrs.push(attr.i('count_include_pad', cfg.countIncludePad ? 1 : 0));
        return one({ name: this.g.node(cfg.op === 'max' ? 'MaxPool' : 'AveragePool', [v.name], name, attrs), rank: 4, nchw: true });
      }
      default:
        return this.unsupported(layer, `is not supported by the ONNX exporter (supported: ${SUPPORTED_LAYERS.join(', ')})`);
    }
  }

  private channelsLast(layer: tf.layers.Layer, cfg: Config): void {
    if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') this.unsupported(layer, `has dataFormat ${String(cfg.dataFormat)}; only channelsLast is supported`);
  }

  private sameLayout(ins: Value[], name: string): Value[] {
    return ins.map((v, i) => this.toNchw(v, `${name}/in${i}`));
  }

  /** Explicit pads for 'valid' / TF 'same' (auto_pad SAME_UPPER when the size is not static: the same rule). */
  private padAttrs(padding: string, inShape: (number | null)[], k: number[], s: number[], d: number[]): Attr[] {
    if (padding === 'valid') return [attr.ints('pads', [0, 0, 0, 0])];
    if (padding !== 'same') throw new Error(`ONNX export: padding '${padding}' is not supported (valid, same)`);
    const [h, w] = [inShape[1], inShape[2]];
    if (typeof h !== 'number' || typeof w !== 'number') return [attr.s('auto_pad', 'SAME_UPPER')];
    const [t, b] = samePads(h, k[0], s[0], d[0]);
    const [l, r] = samePads(w, k[1], s[1], d[1]);
    return [attr.ints('pads', [t, l, b, r])];
  }

  private conv(layer: tf.layers.Layer, cfg: Config, x: Value, inShape: (number | null)[], name: string, depthwise: boolean): Value {
    this.channelsLast(layer, cfg);
    if (x.rank !== 4) this.unsupported(layer, `takes a ${x.rank}-D input; 4-D expected`);
    const k = cfg.kernelSize as [number, number];
    const s = cfg.strides as [number, number];
    const d = (Array.isArray(cfg.dilationRate) ? cfg.dilationRate : [cfg.dilationRate ?? 1, cfg.dilationRate ?? 1]) as [number, number];
    const fields = layer as unknown as { kernel?: tf.LayerVariable; depthwiseKernel?: tf.LayerVariable; bias?: tf.LayerVariable | null };
    const v = this.toNchw(x, name);
    const inputs = [v.name];
    let group = 1;
    if (depthwise) {
      // [kh, kw, in, mult] -> [in * mult, 1, kh, kw]: output channel c * mult + m, as TF orders them.
      const kernel = fields.depthwiseKernel!;
      const [kh, kw, cin, mult] = kernel.shape as number[];
      group = cin;
      inputs.push(this.g.weight(kernel, `${name}/kernel`, kernel, (t) => tf.reshape(tf.transpose(t, [2, 3, 0, 1]), [cin * mult, 1, kh, kw])));
    } else {
      const kernel = fields.kernel!;
      inputs.push(this.g.weight(kernel, `${name}/kernel`, kernel, (t) => tf.transpose(t, [3, 2, 0, 1])));
    }
    if (fields.bias) inputs.push(this.g.weight(fields.bias, `${name}/bias`, fields.bias));
    const attrs = [attr.ints('kernel_shape', k), attr.ints('strides', s), attr.ints('dilations', d), attr.i('group', group), ...this.padAttrs(cfg.padding as string, inShape, k, s, d)];
    const activation = String(cfg.activation ?? 'linear');
    const out: Value = { name: this.g.node('Conv', inputs, activation === 'linear' ? name : `${name}/conv`, attrs), rank: 4, nchw: true };
    return this.activation(layer, activation, out, name);
  }

  private batchNorm(layer: tf.layers.Layer, cfg: Config, x: Value, name: string): Value {
    const axis = Number(Array.isArray(cfg.axis) ? (cfg.axis as number[])[0] : cfg.axis ?? -1);
    if (!(axis === -1 || axis === x.rank - 1)) this.unsupported(layer, `normalises axis ${axis}; only the last (channel) axis is supported`);
    const f = layer as unknown as { gamma?: tf.LayerVariable | null; beta?: tf.LayerVariable | null; movingMean: tf.LayerVariable; movingVariance: tf.LayerVariable };
    const c = f.movingMean.shape[0] as number;
    const v = x.rank === 4 ? this.toNchw(x, name) : x;
    if (x.rank !== 4 && x.rank !== 2) this.unsupported(layer, `takes a ${x.rank}-D input; 2-D or 4-D expected`);
    const scale = f.gamma ? this.g.weight(f.gamma, `${name}/gamma`, f.gamma) : this.g.floats(`${name}/gamma`, new Float32Array(c).fill(1), [c]);
    const bias = f.beta ? this.g.weight(f.beta, `${name}/beta`, f.beta) : this.g.floats(`${name}/beta`, new Float32Array(c), [c]);
    const mean = this.g.weight(f.movingMean, `${name}/moving_mean`, f.movingMean);
    const variance = this.g.weight(f.movingVariance, `${name}/moving_variance`, f.movingVariance);
    return { ...v, name: this.g.node('BatchNormalization', [v.name, scale, bias, mean, variance], name, [attr.f('epsilon', Number(cfg.epsilon ?? 1e-3))]) };
  }

  private dense(layer: tf.layers.Layer, cfg: Config, x: Value, name: string): Value {
    const f = layer as unknown as { kernel: tf.LayerVariable; bias?: tf.LayerVariable | null };
    const kernel = this.g.weight(f.kernel, `${name}/kernel`, f.kernel);
    const bias = f.bias ? this.g.weight(f.bias, `${name}/bias`, f.bias) : undefined;
    const activation = String(cfg.activation ?? 'linear');
    const last = activation === 'linear' ? name : `${name}/linear`;
    let out: Value;
    if (x.rank === 2) {
      out = { ...x, name: this.g.node('Gemm', bias ? [x.name, kernel, bias] : [x.name, kernel], last) };
    } else {
      const v = this.toNhwc(x, name);
      const mm = this.g.node('MatMul', [v.name, kernel], bias ? `${name}/matmul` : last);
      out = { ...v, name: bias ? this.g.node('Add', [mm, bias], last) : mm };
    }
    out = this.activation(layer, activation, out, name);
    return this.toNchw(out, `${name}/out`);
  }

  /** The importer's element-wise functions (HardSwish and GELU spelled in opset-13 ops). */
  private onnxUnary(layer: tf.layers.Layer, cfg: Config, x: Value, name: string): Value {
    const g = this.g;
    const scalar = (n: string, v: number) => g.floats(`${name}/${n}`, Float32Array.of(v), []);
    const simple: Record<string, string> = { erf: 'Erf', sqrt: 'Sqrt', exp: 'Exp', log: 'Log', neg: 'Neg', abs: 'Abs', reciprocal: 'Reciprocal', tanh: 'Tanh', softplus: 'Softplus', selu: 'Selu' };
    const op = String(cfg.op);
    if (simple[op]) return { ...x, name: g.node(simple[op], [x.name], name) };
    switch (op) {
      case 'clip':
        return this.clip(x, cfg.min === undefined ? -3.4e38 : Number(cfg.min), cfg.max === undefined ? 3.4e38 : Number(cfg.max), name);
      case 'hardSigmoid':
        return { ...x, name: g.node('HardSigmoid', [x.name], name, [attr.f('alpha', Number(cfg.alpha ?? 0.2)), attr.f('beta', Number(cfg.beta ?? 0.5))]) };
      case 'hardSwish': {
        const gate = g.node('HardSigmoid', [x.name], `${name}/gate`, [attr.f('alpha', 1 / 6), attr.f('beta', 0.5)]);
        return { ...x, name: g.node('Mul', [x.name, gate], name) };
      }
      case 'elu':
        return { ...x, name: g.node('Elu', [x.name], name, [attr.f('alpha', Number(cfg.alpha ?? 1))]) };
      case 'gelu': {
        const scaled = g.node('Mul', [x.name, scalar('rsqrt2', Math.SQRT1_2)], `${name}/scaled`);
        const erf = g.node('Erf', [scaled], `${name}/erf`);
        const plus = g.node('Add', [erf, scalar('one', 1)], `${name}/plus1`);
        const half = g.node('Mul', [x.name, scalar('half', 0.5)], `${name}/half`);
        return { ...x, name: g.node('Mul', [half, plus], name) };
      }
      default:
        return this.unsupported(layer, `computes '${op}', which the ONNX exporter does not write`);
    }
  }

  /** x (op) c: a scalar initializer, or the layer's constant weight in the layout x has here. */
  private onnxArithmetic(layer: tf.layers.Layer, cfg: Config, x: Value, name: string): Value {
    const op = BINARY_ONNX[String(cfg.op)];
    let c: string;
    if (cfg.scalar !== undefined) {
      c = this.g.floats(`${name}/constant`, Float32Array.of(Number(cfg.scalar)), []);
    } else {
      const w = layer.weights[0];
      const toNchw = x.rank === 4 && x.nchw && w.shape.length === 4;
      c = this.g.weight(w, `${name}/constant`, w, (t) => (toNchw ? tf.transpose(t, [0, 3, 1, 2]) : t));
    }
    const inputs = cfg.constantFirst ? [c, x.name] : [x.name, c];
    return { ...x, name: this.g.node(op, inputs, name) };
  }

  /** LayerNormalization spelled in opset-13 ops (the op itself is opset 17), on TF's layout. */
  private layerNorm(layer: tf.layers.Layer, cfg: Config, x: Value, name: string): Value {
    const g = this.g;
    const v = this.toNhwc(x, name);
    const axes = (Array.isArray(cfg.axis) ? (cfg.axis as number[]) : [Number(cfg.axis)]).map((a) => (a < 0 ? a + v.rank : a));
    const f = layer as unknown as { gamma?: tf.LayerVariable; beta?: tf.LayerVariable };
    // gamma/beta: the normalised axes' sizes, 1 elsewhere, so they broadcast in place.
    const full = (t: tf.Tensor) => {
      const dims = Array.from({ length: v.rank }, (_, i) => (axes.includes(i) ? t.shape[axes.indexOf(i)] : 1));
      return tf.reshape(t, dims);
    };
    const mean = g.node('ReduceMean', [v.name], `${name}/mean`, [attr.ints('axes', axes), attr.i('keepdims', 1)]);
    const centred = g.node('Sub', [v.name, mean], `${name}/centred`);
    const square = g.node('Mul', [centred, centred], `${name}/square`);
    const variance = g.node('ReduceMean', [square], `${name}/variance`, [attr.ints('axes', axes), attr.i('keepdims', 1)]);
    const eps = g.floats(`${name}/epsilon`, Float32Array.of(Number(cfg.epsilon ?? 1e-3)), []);
    const std = g.node('Sqrt', [g.node('Add', [variance, eps], `${name}/variance_eps`)], `${name}/std`);
    let out = g.node('Div', [centred, std], f.gamma || f.beta ? `${name}/normalised` : name);
    if (f.gamma) out = g.node('Mul', [out, g.weight(f.gamma, `${name}/gamma`, f.gamma, full)], f.beta ? `${name}/scaled` : name);
    if (f.beta) out = g.node('Add', [out, g.weight(f.beta, `${name}/beta`, f.beta, full)], name);
    return { ...v, name: out };
  }

  private clip(x: Value, min: number, max: number, name: string): Value {
    const lo = this.g.floats(`${name}/min`, Float32Array.of(min), []);
    const hi = this.g.floats(`${name}/max`, Float32Array.of(max), []);
    return { ...x, name: this.g.node('Clip', [x.name, lo, hi], name) };
  }

  private softmax(x: Value, axis: number, name: string): Value {
    const a = x.rank === 4 && x.nchw ? nchwAxis(axis) : axis;
    return { ...x, name: this.g.node('Softmax', [x.name], name, [attr.i('axis', a)]) };
  }

  /** A TF.js activation by its serialized name. */
  private activation(layer: tf.layers.Layer, activation: string, x: Value, name: string): Value {
    const simple: Record<string, string> = { relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh', softplus: 'Softplus', softsign: 'Softsign' };
    if (activation === 'linear') return x;
    if (simple[activation]) return { ...x, name: this.g.node(simple[activation], [x.name], name) };
    switch (activation) {
      case 'relu6':
        return this.clip(x, 0, 6, name);
      case 'softmax':
        return this.softmax(x, -1, name);
      case 'elu':
        return { ...x, name: this.g.node('Elu', [x.name], name, [attr.f('alpha', 1)]) };
      case 'selu':
        return { ...x, name: this.g.node('Selu', [x.name], name, [attr.f('alpha', 1.6732632423543772), attr.f('gamma', 1.0507009873554805)]) };
      case 'hardSigmoid':
        return { ...x, name: this.g.node('HardSigmoid', [x.name], name, [attr.f('alpha', 0.2), attr.f('beta', 0.5)]) };
      case 'swish': {
        const sig = this.g.node('Sigmoid', [x.name], `${name}/sigmoid`);
        return { ...x, name: this.g.node('Mul', [x.name, sig], name) };
      }
      default:
        return this.unsupported(layer, `has activation '${activation}', which the ONNX exporter does not support`);
    }
  }

  /** The workbench's ImageResize: bilinear, half-pixel centres, no antialiasing (TF2 tf.image.resize). */
  private resize(layer: tf.layers.Layer, x: Value, inShape: (number | null)[], name: string): Value {
    const r = layer as unknown as { height: number; width: number };
    if (inShape[1] === r.height && inShape[2] === r.width) return x;
    const v = this.toNchw(x, name);
    // sizes = [N, C] of the input ++ [height, width]: the batch stays dynamic.
    const shape = this.g.node('Shape', [v.name], `${name}/shape`);
    const starts = this.g.int64s(`${name}/starts`, [0]);
    const ends = this.g.int64s(`${name}/ends`, [2]);
    const nc = this.g.node('Slice', [shape, starts, ends], `${name}/nc`);
    const hw = this.g.int64s(`${name}/hw`, [r.height, r.width]);
    const sizes = this.g.node('Concat', [nc, hw], `${name}/sizes`, [attr.i('axis', 0)]);
    const attrs = [attr.s('mode', 'linear'), attr.s('coordinate_transformation_mode', 'half_pixel')];
    return { name: this.g.node('Resize', [v.name, '', '', sizes], name, attrs), rank: 4, nchw: true };
  }

  /** Raw RGB 0..255 (NHWC) -> the backbone's input, as preprocess() computes it. */
  preprocess(x: Value, mode: PreprocessMode): Value {
    const g = this.g;
    const c3 = (n: string, v: readonly number[]) => g.floats(n, Float32Array.from(v), [3]);
    switch (mode) {
      case 'none':
        return x;
      case 'unit':
        return { ...x, name: g.node('Div', [x.name, g.floats('preprocess/255', Float32Array.of(255), [])], 'preprocess/unit') };
      case 'caffe': {
        const bgr = g.node('Gather', [x.name, g.int64s('preprocess/bgr', [2, 1, 0])], 'preprocess/bgr', [attr.i('axis', 3)]);
        return { ...x, name: g.node('Sub', [bgr, c3('preprocess/mean', CAFFE_MEAN_BGR)], 'preprocess/caffe') };
      }
      case 'tf': {
        // Keras' MobileNet preprocess_input: x / 127.5 - 1, inputs in [-1, 1].
        const half = g.node('Div', [x.name, g.floats('preprocess/127.5', Float32Array.of(127.5), [])], 'preprocess/half');
        return { ...x, name: g.node('Sub', [half, g.floats('preprocess/1', Float32Array.of(1), [])], 'preprocess/tf') };
      }
      case 'torch': {
        const unit = g.node('Div', [x.name, g.floats('preprocess/255', Float32Array.of(255), [])], 'preprocess/unit');
        const centred = g.node('Sub', [unit, c3('preprocess/mean', TORCH_MEAN_RGB)], 'preprocess/centre');
        return { ...x, name: g.node('Div', [centred, c3('preprocess/std', TORCH_STD_RGB)], 'preprocess/torch') };
      }
      default:
        throw new Error(`ONNX export: unknown preprocessing '${mode as string}'; expected caffe, unit, torch, tf or none`);
    }
  }
}

function valueInfo(name: string, shape: (number | null)[]) {
  return {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: 'batch' })) } } },
  };
}

/**
 * A TF.js model - or a chain of layers applied one after the other (e.g. the frozen front of a
 * model: resize, base, pooling) - as an ONNX file. One input (NHWC when 4-D), one output.
 */
export function exportOnnx(model: tf.LayersModel | tf.layers.Layer[], opts: ExportOptions = {}): OnnxExport {
  if (os.endianness() !== 'LE') throw new Error('ONNX export: raw tensor data is little-endian; this machine is big-endian');
  const chain = Array.isArray(model) ? model.filter((l) => l.getClassName() !== 'InputLayer') : [model];
  if (chain.length === 0) throw new Error('ONNX export: nothing to export (an empty chain of layers)');
  const first = chain[0];
  if (isModel(first) && first.inputs.length !== 1) throw new Error(`ONNX export: model '${first.name}' has ${first.inputs.length} inputs; one is supported`);
  const inputShape = (isModel(first) ? first.inputs[0].shape : (first.inboundNodes[0] as unknown as GraphNode).inputTensors[0].shape) as (number | null)[];

  const g = new GraphBuilder(opts.float16Weights);
  const ex = new Exporter(g);
  const inputName = g.unique(opts.inputName ?? 'input');
  let x: Value = { name: inputName, rank: inputShape.length, nchw: false };
  if (opts.preprocess) {
    if (inputShape.length !== 4 || inputShape[3] !== 3) throw new Error(`ONNX export: preprocessing needs an RGB image input [batch, h, w, 3], got [${inputShape}]`);
    x = ex.preprocess(x, opts.preprocess);
  }
  x = ex.toNchw(x, 'input');
  for (const layer of chain) {
    const node = layer.inboundNodes[0] as unknown as GraphNode;
    const outs = isModel(layer) ? ex.model(layer, [x], `${layer.name}/`) : ex.layer(layer, [x], node, '');
    if (outs.length !== 1) throw new Error(`ONNX export: layer '${layer.name}' has ${outs.length} outputs; one is supported`);
    x = outs[0];
  }
  const last = chain[chain.length - 1];
  const lastOutputs = (isModel(last) ? last.outputs : (last.inboundNodes[0] as unknown as GraphNode).outputTensors) as SymbolicTensor[];
  const outputShape = lastOutputs[0].shape as (number | null)[];
  x = ex.toNhwc(x, 'output');
  const outputName = g.unique(opts.outputName ?? 'output');
  g.nodes.push({ op_type: 'Identity', input: [x.name], output: [outputName], name: outputName });

  const graphName = opts.name ?? (isModel(first) && chain.length === 1 ? first.name : chain.map((l) => l.name).join('+'));
  const metadata = Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value }));
  const Model = modelProtoType();
  const message = Model.fromObject({
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: OPSET }],
    producer_name: 'tl-workbench',
    producer_version: '0.1.0',
    graph: {
      name: graphName,
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(inputName, inputShape)],
      output: [valueInfo(outputName, outputShape)],
    },
    metadata_props: metadata,
  });
  const bytes = Model.encode(message).finish();
  return { bytes, input: { name: inputName, shape: inputShape }, output: { name: outputName, shape: outputShape }, nodeCount: g.nodes.length };
}
