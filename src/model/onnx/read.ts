/**
 * Reading an ONNX file back: its metadata_props and the shapes of its input and output (the weights
 * are not decoded into objects we keep). A file that is not an ONNX model fails naming the file.
 */
import * as fs from 'node:fs';
import { modelProtoType } from './schema';

export interface OnnxFileInfo {
  opset: number;
  metadata: Record<string, string>;
  input: { name: string; shape: (number | string)[] };
  output: { name: string; shape: (number | string)[] };
}

interface Dim { dim_value?: number; dim_param?: string }
interface Info { name: string; type?: { tensor_type?: { shape?: { dim?: Dim[] } } } }

function shapeOf(v: Info): (number | string)[] {
  return (v.type?.tensor_type?.shape?.dim ?? []).map((d) => d.dim_value ?? d.dim_param ?? '?');
}

export function readOnnxInfo(bytes: Uint8Array, origin = 'ONNX model'): OnnxFileInfo {
  let m: { opset_import?: { domain?: string; version?: number }[]; metadata_props?: { key: string; value: string }[]; graph?: { input?: Info[]; output?: Info[]; initializer?: { name: string }[] } };
  try {
    const T = modelProtoType();
    m = T.toObject(T.decode(bytes), { longs: Number, defaults: false }) as typeof m;
  } catch (e) {
    throw new Error(`${origin}: not an ONNX model (${(e as Error).message})`, { cause: e });
  }
  const initializers = new Set((m.graph?.initializer ?? []).map((t) => t.name));
  const inputs = (m.graph?.input ?? []).filter((i) => !initializers.has(i.name));
  const outputs = m.graph?.output ?? [];
  if (inputs.length < 1 || outputs.length < 1) throw new Error(`${origin}: not an ONNX model with a graph input and output`);
  return {
    opset: m.opset_import?.find((o) => !o.domain)?.version ?? 0,
    metadata: Object.fromEntries((m.metadata_props ?? []).map((p) => [p.key, p.value])),
    input: { name: inputs[0].name, shape: shapeOf(inputs[0]) },
    output: { name: outputs[0].name, shape: shapeOf(outputs[0]) },
  };
}

export function readOnnxFileInfo(file: string): OnnxFileInfo {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such ONNX file`);
  return readOnnxInfo(fs.readFileSync(file), file);
}
