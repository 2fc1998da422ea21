/**
 * The `onnx` row of `bench`: inference images/s in ONNX Runtime (onnxruntime-node, CPU, one intra-op
 * thread per core) for the same networks the TF.js rows run, exported from TF.js by the project's
 * exporter - ResNet-50 (random weights), Darknet-Tiny and MobileNet v1 0.75 when their files are
 * there - at 224 and 128 px with the same batches as the other rows, so RatioVsTorch compares like
 * with like.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { exportOnnx } from '../src/model/onnx/export';
import { createSession, loadOrt, ortLoadError } from '../src/model/engine';
import type { TaskSpec } from './command';

export type OnnxModelName = 'resnet50' | 'darknet-tiny' | 'mobilenet';

async function tfjsModel(name: OnnxModelName, size: number, sharedData: string): Promise<tf.LayersModel> {
  if (name === 'resnet50') {
    const { ResNet50 } = await import('../src/model/resnet');
    return ResNet50({ inputShape: [size, size, 3], classes: 1000 });
  }
  const folders: Record<string, string> = { 'darknet-tiny': 'darknet-tiny', mobilenet: 'mobilenet-v1-0.75' };
  if (!folders[name]) throw new Error(`no ONNX bench recipe for model '${name}' (resnet50, darknet-tiny, mobilenet)`);
  const dir = path.join(sharedData, folders[name]);
  if (!fs.existsSync(path.join(dir, 'model.json'))) throw new Error(`${dir}/model.json not found`);
  const { loadTfjsModel } = await import('../src/model/tfjs-backbone');
  return loadTfjsModel(dir, { inputSize: size });
}

/** Images/s of one exported network in ORT: one warm-up run, then at least `minSeconds` and three runs (each is short). */
async function measure(name: OnnxModelName, spec: TaskSpec, minSeconds: number, sharedData: string, threads: number): Promise<number> {
  const net = await tfjsModel(name, spec.size, sharedData);
  let bytes: Uint8Array;
  try {
    bytes = exportOnnx(net).bytes;
  } finally {
    net.dispose();
  }
  const ort = loadOrt()!;
  const session = await createSession(bytes, threads);
  try {
    const data = new Float32Array(spec.batch * spec.size * spec.size * 3);
    for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1;
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, [spec.batch, spec.size, spec.size, 3]) };
    const run = async () => {
      const out = await session.run(feeds);
      for (const t of Object.values(out)) t.dispose?.();
    };
    await run();
    let reps = 0;
    const start = performance.now();
    while (reps < 3 || (performance.now() - start) / 1000 < minSeconds) {
      await run();
      reps++;
    }
    return (spec.batch * reps) / ((performance.now() - start) / 1000);
  } finally {
    await session.release();
  }
}

/**
 * results.onnx: { model: { inference224, inference128, ... } } for the models asked for (plus MobileNet
 * when its files are there), or an error entry when ORT does not load.
 */
export async function benchOnnx(
  models: string[],
  specs: Record<'inference224' | 'inference128', TaskSpec>,
  opts: { quick: boolean; sharedData: string; log: (m: string) => void },
): Promise<Record<string, Record<string, number | string>>> {
  if (!loadOrt()) return { error: { message: `onnxruntime-node does not load: ${ortLoadError()}` } };
  const threads = os.cpus().length;
  const names = [...new Set([...models, ...(fs.existsSync(path.join(opts.sharedData, 'mobilenet-v1-0.75', 'model.json')) ? ['mobilenet'] : [])])] as OnnxModelName[];
  const results: Record<string, Record<string, number | string>> = {};
  for (const model of names) {
    for (const task of ['inference224', 'inference128'] as const) {
      const entry = (results[model] ??= {});
      try {
        const ips = await measure(model, specs[task], opts.quick ? 0 : 3, opts.sharedData, threads);
        entry[task] = Math.round(ips * 1000) / 1000;
        opts.log(`onnx ${model} ${task} (batch ${specs[task].batch}, ${threads} threads): ${entry[task]} images/s`);
      } catch (e) {
        entry[`${task}Error`] = (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
        opts.log(`onnx ${model} ${task}: failed: ${entry[`${task}Error`]}`);
      }
    }
  }
  return results;
}
