/**
 * An ONNX file decoded into plain data for the importer: nodes with their attributes as numbers,
 * strings and tensors, initializers as typed arrays, the graph's input and outputs. Decoding goes
 * through the same protobufjs schema the exporter writes with (schema.ts).
 */
import { DataType, modelProtoType } from './schema';

/** A constant tensor: float data as Float32Array, integer data as plain numbers (int64 fits for shapes and axes). */
export interface ConstTensor {
  dims: number[];
  data: Float32Array | number[];
  float: boolean;
}

export type AttrValue = number | string | number[] | string[] | ConstTensor;

export interface OnnxNode {
  name: string;
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export interface OnnxGraph {
  opset: number;
  producer: string;
  name: string;
  nodes: OnnxNode[];
  initializers: Map<string, ConstTensor>;
  input: { name: string; shape: (number | string)[] };
  outputs: string[];
}

interface RawTensor {
  dims?: number[];
  data_type?: number;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: number[];
  double_data?: number[];
  raw_data?: Uint8Array;
  name?: string;
  data_location?: number;
}
interface RawAttr { name: string; type?: number; f?: number; i?: number; s?: Uint8Array; t?: RawTensor; floats?: number[]; ints?: number[]; strings?: Uint8Array[] }
interface RawNode { name?: string; op_type?: string; domain?: string; input?: string[]; output?: string[]; attribute?: RawAttr[] }
interface Dim { dim_value?: number; dim_param?: string }
interface RawInfo { name: string; type?: { tensor_type?: { shape?: { dim?: Dim[] } } } }
interface RawModel {
  producer_name?: string;
  opset_import?: { domain?: string; version?: number }[];
  graph?: { name?: string; node?: RawNode[]; initializer?: RawTensor[]; input?: RawInfo[]; output?: RawInfo[] };
}

const FLOAT16 = DataType.FLOAT16;
const DOUBLE = 11;
const INT32 = 6;
const INT8 = 3;
const BOOL = 9;

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A TensorProto -> ConstTensor (float32 or integer values); `where` names it in errors. */
export function decodeTensor(t: RawTensor, where: string): ConstTensor {
  const dims = (t.dims ?? []).map(Number);
  const type = t.data_type ?? 0;
  const count = dims.reduce((p, d) => p * d, 1);
  const raw = t.raw_data && t.raw_data.length > 0 ? t.raw_data : undefined;
  if (t.data_location === 1) throw new Error(`${where}: tensor '${t.name}' stores its data in an external file, which the importer does not read (re-export with the weights inside the .onnx)`);
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  let data: Float32Array | number[];
  let float = true;
  switch (type) {
    case DataType.FLOAT:
      data = view ? Float32Array.from({ length: count }, (_, i) => view.getFloat32(i * 4, true)) : Float32Array.from(t.float_data ?? []);
      break;
    case FLOAT16:
      data = view ? Float32Array.from({ length: count }, (_, i) => halfToFloat(view.getUint16(i * 2, true))) : Float32Array.from(t.int32_data ?? [], halfToFloat);
      break;
    case DOUBLE:
      data = view ? Float32Array.from({ length: count }, (_, i) => view.getFloat64(i * 8, true)) : Float32Array.from(t.double_data ?? []);
      break;
    case DataType.INT64:
      float = false;
      data = view ? Array.from({ length: count }, (_, i) => Number(view.getBigInt64(i * 8, true))) : (t.int64_data ?? []).map(Number);
      break;
    case INT32:
      float = false;
      data = view ? Array.from({ length: count }, (_, i) => view.getInt32(i * 4, true)) : (t.int32_data ?? []).map(Number);
      break;
    case INT8:
    case DataType.UINT8:
    case BOOL:
      float = false;
      data = view ? Array.from({ length: count }, (_, i) => (type === INT8 ? view.getInt8(i) : view.getUint8(i))) : (t.int32_data ?? []).map(Number);
      break;
    default:
      throw new Error(`${where}: tensor '${t.name ?? ''}' has data type ${type}, which the importer does not read (float, float16, double, int64, int32, int8, uint8, bool)`);
  }
  if (data.length !== count) throw new Error(`${where}: tensor '${t.name ?? ''}' has ${data.length} values for dims [${dims}]`);
  return { dims, data, float };
}

function decodeAttr(a: RawAttr, where: string): AttrValue {
  const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
  switch (a.type) {
    case 1: return a.f ?? 0;
    case 2: return Number(a.i ?? 0);
    case 3: return text(a.s ?? new Uint8Array());
    case 4: return decodeTensor(a.t ?? {}, `${where} attribute '${a.name}'`);
    case 6: return (a.floats ?? []).map(Number);
    case 7: return (a.ints ?? []).map(Number);
    case 8: return (a.strings ?? []).map(text);
    default:
      // Files from old writers may omit the type: infer from the field that is set.
      if (a.t) return decodeTensor(a.t, `${where} attribute '${a.name}'`);
      if (a.ints && a.ints.length) return a.ints.map(Number);
      if (a.floats && a.floats.length) return a.floats.map(Number);
      if (a.s) return text(a.s);
      if (a.i !== undefined) return Number(a.i);
      if (a.f !== undefined) return a.f;
      return [];
  }
}

function shapeOf(v: RawInfo): (number | string)[] {
  return (v.type?.tensor_type?.shape?.dim ?? []).map((d) => d.dim_value ?? d.dim_param ?? '?');
}

/** Decodes an ONNX model; `origin` (the file) names it in every error. */
export function decodeOnnxGraph(bytes: Uint8Array, origin = 'ONNX model'): OnnxGraph {
  let m: RawModel;
  try {
    const T = modelProtoType();
    m = T.toObject(T.decode(bytes), { longs: Number, defaults: false, bytes: Uint8Array }) as RawModel;
  } catch (e) {
    throw new Error(`${origin}: not an ONNX model (${(e as Error).message})`, { cause: e });
  }
  const g = m.graph;
  if (!g) throw new Error(`${origin}: no graph in the ONNX model`);
  const initializers = new Map<string, ConstTensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', decodeTensor(t, origin));
  const inputs = (g.input ?? []).filter((i) => !initializers.has(i.name));
  if (inputs.length !== 1) throw new Error(`${origin}: the importer takes graphs with one image input; this one has ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  const outputs = (g.output ?? []).map((o) => o.name);
  if (outputs.length < 1) throw new Error(`${origin}: the graph has no output`);
  const nodes: OnnxNode[] = (g.node ?? []).map((n, index) => {
    const name = n.name || `${n.op_type ?? 'node'}_${index}`;
    const attrs: Record<string, AttrValue> = {};
    for (const a of n.attribute ?? []) attrs[a.name] = decodeAttr(a, `${origin}: node '${name}'`);
    return { name, op: n.op_type ?? '', domain: n.domain ?? '', inputs: n.input ?? [], outputs: n.output ?? [], attrs };
  });
  return {
    opset: Number(m.opset_import?.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0),
    producer: m.producer_name ?? '',
    name: g.name ?? '',
    nodes,
    initializers,
    input: { name: inputs[0].name, shape: shapeOf(inputs[0]) },
    outputs,
  };
}
