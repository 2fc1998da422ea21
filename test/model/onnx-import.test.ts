/**
 * ONNX import checked against a real exporter: torchvision's resnet18, mobilenet_v2,
 * mobilenet_v3_small, efficientnet_b0 (64 px, opset 13), convnext_tiny (32 px, opset 17) and a small
 * network of the remaining ops (scripts/torchvision-onnx.py's workbench_ops), random
 * initialisation, exported by PyTorch (scripts/torchvision-onnx.py, once per run into a temp folder).
 * Each imported model must match ONNX Runtime on the file (<= 1e-4 of the largest output), PyTorch's
 * parameter count, and PyTorch's autograd: the loss and gradients of one cross-entropy step on the
 * same input (central differences for workbench_ops, see below); exported back to ONNX it must run
 * the same in ORT. Skipped, saying so, when /usr/bin/python3 has no torch/torchvision (Debian:
 * apt-get install python3-torch python3-torchvision).
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend';
import { projectRoot } from '../../src/config';
import { countParams } from '../../src/model/freeze';
import { createSession, runSession } from '../../src/model/engine';
import { exportOnnx } from '../../src/model/onnx/export';
import { compareWithOrt } from '../../src/model/onnx/import-check';
import { importOnnx, modulePath } from '../../src/model/onnx/import';
import { modelProtoType } from '../../src/model/onnx/schema';

const PYTHON = process.env.TLWB_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
const noTorch = probe.status === 0 ? false : `needs PyTorch: ${PYTHON} cannot import torch/torchvision (Debian: apt-get install python3-torch python3-torchvision)`;

const ARCHS: { arch: string; size: number; opset: number }[] = [
  { arch: 'resnet18', size: 64, opset: 13 },
  { arch: 'mobilenet_v2', size: 64, opset: 13 },
  { arch: 'mobilenet_v3_small', size: 64, opset: 13 },
  { arch: 'efficientnet_b0', size: 64, opset: 13 },
  { arch: 'convnext_tiny', size: 32, opset: 17 },
  // The script's own small network of the ops the classifiers do not use (pooling with pads and ceil
  // mode, Concat, Pad, GELU via Erf, a Shape-computed Reshape, Transpose, LayerNorm spelled out, Softmax).
  { arch: 'workbench_ops', size: 64, opset: 13 },
];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-onnx-import-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

before(async () => {
  await initBackend({ force: 'wasm', quiet: true });
  if (noTorch) return;
  // One Python process per (size, opset): torch's import costs seconds.
  const groups = new Map<string, string[]>();
  for (const a of ARCHS) groups.set(`${a.size}/${a.opset}`, [...(groups.get(`${a.size}/${a.opset}`) ?? []), a.arch]);
  for (const [key, archs] of groups) {
    const [size, opset] = key.split('/');
    const r = spawnSync(PYTHON, [path.join(projectRoot, 'scripts/torchvision-onnx.py'), '--out', dir, '--size', size, '--opset', opset, '--reference', ...archs], { encoding: 'utf8' });
    assert.equal(r.status, 0, `torchvision export failed: ${r.stderr.slice(-2000)}`);
  }
});

interface Reference {
  input: number[];
  labels: number[];
  logits: number[];
  loss: number;
  grads: { name: string; shape: number[] }[];
  params: number;
}

function readReference(arch: string): { meta: Reference; input: Float32Array; logits: Float32Array; grads: Float32Array[] } {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, `${arch}.reference.json`), 'utf8')) as Reference;
  const buf = fs.readFileSync(path.join(dir, `${arch}.reference.bin`));
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  let at = 0;
  const take = (shape: number[]) => {
    const n = shape.reduce((p, d) => p * d, 1);
    const out = all.slice(at, at + n);
    at += n;
    return out;
  };
  const input = take(meta.input);
  const logits = take(meta.logits);
  const grads = meta.grads.map((g) => take(g.shape));
  return { meta, input, logits, grads };
}

/** A TF.js weight of the imported model in PyTorch's layout, found from the PyTorch parameter name. */
function torchLayout(model: tf.LayersModel, param: string): { variable: tf.LayerVariable; toTorch: (t: tf.Tensor) => tf.Tensor } {
  const [, module, field] = /^(.*)\.(weight|bias|[A-Za-z_]+)$/.exec(param)!;
  const layerName = field === 'weight' || field === 'bias' ? module : param;
  const layer = model.getLayer(layerName);
  const cls = layer.getClassName();
  const pick = (suffix: string) => layer.weights.find((w) => w.originalName.endsWith(`/${suffix}`) || w.name.endsWith(`/${suffix}`))!;
  if (field === 'bias') return { variable: pick('bias') ?? pick('beta'), toTorch: (t) => t };
  switch (cls) {
    case 'Conv2D':
      return { variable: pick('kernel'), toTorch: (t) => tf.transpose(t, [3, 2, 0, 1]) };
    case 'DepthwiseConv2D':
      return { variable: pick('depthwise_kernel'), toTorch: (t) => tf.reshape(tf.transpose(t, [2, 3, 0, 1]), [t.shape[2]! * t.shape[3]!, 1, t.shape[0]!, t.shape[1]!]) };
    case 'Dense':
      return { variable: pick('kernel'), toTorch: (t) => tf.transpose(t) };
    case 'BatchNormalization':
    case 'LayerNormalization':
      return { variable: pick('gamma'), toTorch: (t) => t };
    case 'OnnxArithmetic':
      // A layer scale [C, 1, 1] held as [1, 1, 1, C]: the same values in the same order.
      return { variable: pick('constant'), toTorch: (t) => t };
    default:
      throw new Error(`no PyTorch layout known for ${param} (layer ${layerName}, ${cls})`);
  }
}

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}
function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

for (const { arch } of ARCHS) {
  test(`${arch}: ONNX from torch.onnx.export imports with PyTorch's parameters, outputs and gradients`, { skip: noTorch }, async () => {
    const file = path.join(dir, `${arch}.onnx`);
    const bytes = fs.readFileSync(file);
    const ref = readReference(arch);
    const imported = importOnnx(bytes, { origin: file });
    const { model } = imported;
    try {
      assert.equal(countParams(model).trainableParams, ref.meta.params, 'trainable parameters = torch sum(p.numel())');
      const ort = await compareWithOrt(bytes, imported);
      assert.ok(ort.relative <= 1e-4, `largest difference against ONNX Runtime ${ort.maxAbsDiff} of ${ort.maxAbs}`);
      assert.ok(imported.cutCandidates.length > 0, 'a cut candidate');

      // And back: the imported model exported to ONNX (the workbench's exporter) runs the same in ORT.
      const nhwc = tf.randomUniform([1, imported.inputSize, imported.inputSize, 3], -2, 2, 'float32', 5);
      const session = await createSession(exportOnnx(model).bytes, 2);
      const back = await runSession(session, nhwc);
      await session.release();
      const direct = model.predict(nhwc) as tf.Tensor;
      const [b, d] = [back.dataSync() as Float32Array, direct.dataSync() as Float32Array];
      assert.ok(maxDiff(b, d) <= 1e-4 * maxAbs(d), `re-exported ONNX against TF.js: ${maxDiff(b, d)} of ${maxAbs(d)}`);
      tf.dispose([nhwc, back, direct]);
      assert.equal(imported.cutCandidates[0].shape.length, 3);

      // One step's loss and gradients against PyTorch's autograd (eval mode: BatchNorm on its running statistics).
      const picks = ref.meta.grads.map((g) => torchLayout(model, g.name));
      const x = tf.tidy(() => tf.transpose(tf.tensor(ref.input, ref.meta.input), [0, 2, 3, 1]));
      const labels = tf.oneHot(tf.tensor1d(ref.meta.labels, 'int32'), ref.meta.logits[1]);
      let logits: Float32Array | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const y = model.apply(x, { training: false }) as tf.Tensor;
        logits = y.dataSync() as Float32Array;
        return tf.losses.softmaxCrossEntropy(labels, y) as tf.Scalar;
      }, picks.map((p) => p.variable.read() as tf.Variable));
      assert.ok(maxDiff(logits!, ref.logits) <= 1e-4 * maxAbs(ref.logits), `logits against PyTorch: ${maxDiff(logits!, ref.logits)} of ${maxAbs(ref.logits)}`);
      assert.ok(Math.abs(value.dataSync()[0] - ref.meta.loss) <= 1e-4 * ref.meta.loss, `loss ${value.dataSync()[0]} vs PyTorch ${ref.meta.loss}`);
      if (arch === 'workbench_ops') {
        // PyTorch 1.13's backward of this small net is not reproducible here (its conv gradients
        // change with the thread count and reach 1e26 after an export), so central differences
        // of the TF.js loss check the TF.js gradients instead, entry by entry.
        const lossAt = () => tf.tidy(() => tf.losses.softmaxCrossEntropy(labels, model.apply(x, { training: false }) as tf.Tensor).dataSync()[0]);
        picks.forEach((p, i) => {
          const v = p.variable.read() as tf.Variable;
          const analytic = grads[v.name].dataSync() as Float32Array;
          const k = analytic.reduce((best, g, j) => (Math.abs(g) > Math.abs(analytic[best]) ? j : best), 0);
          const original = v.dataSync() as Float32Array;
          const eps = 1e-2;
          const shifted = (delta: number) => {
            const w = Float32Array.from(original);
            w[k] += delta;
            v.assign(tf.tensor(w, v.shape));
            return lossAt();
          };
          const numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
          v.assign(tf.tensor(original, v.shape));
          assert.ok(Math.abs(numeric - analytic[k]) <= 0.05 * Math.abs(analytic[k]) + 1e-4, `${ref.meta.grads[i].name}[${k}]: analytic ${analytic[k]}, central difference ${numeric}`);
        });
      } else {
        ref.meta.grads.forEach((g, i) => {
          const mine = tf.tidy(() => picks[i].toTorch(grads[(picks[i].variable.read() as tf.Variable).name]).dataSync() as Float32Array);
          const d = maxDiff(mine, ref.grads[i]);
          assert.ok(d <= 1e-3 * maxAbs(ref.grads[i]) + 1e-9, `gradient of ${g.name}: largest difference ${d} of ${maxAbs(ref.grads[i])}`);
        });
      }
      tf.dispose([x, labels, value, grads]);
    } finally {
      model.dispose();
    }
  });
}

test('modulePath: PyTorch scopes to a module path', () => {
  assert.equal(modulePath('/features/features.1/conv/conv.0/conv.0.2/Clip'), 'features.1.conv.0.2.Clip');
  assert.equal(modulePath('/layer4/layer4.1/relu_1/Relu'), 'layer4.1.relu_1.Relu');
  assert.equal(modulePath('Conv_0'), 'Conv_0');
});

test('an unsupported op fails naming the node and its type; a non-ONNX file fails naming the file', () => {
  const T = modelProtoType();
  const graph = {
    ir_version: 7,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'g',
      node: [{ op_type: 'NonMaxSuppression', input: ['x'], output: ['y'], name: 'nms_node' }],
      input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 1 }, { dim_value: 3 }, { dim_value: 8 }, { dim_value: 8 }] } } } }],
      output: [{ name: 'y', type: { tensor_type: { elem_type: 1 } } }],
    },
  };
  const bytes = T.encode(T.fromObject(graph)).finish();
  assert.throws(() => importOnnx(bytes, { origin: 'tiny.onnx' }), /tiny\.onnx: ONNX import: node 'nms_node' \(op NonMaxSuppression\) is not supported/);
  assert.throws(() => importOnnx(new Uint8Array([1, 2, 3, 4, 5]), { origin: 'junk.onnx' }), /junk\.onnx: not an ONNX model/);
});
