/**
 * `npm run -s cli -- model [--arch resnet50] [--head seed|gap|none] [--input-size 224] [--weights none|imagenet|FILE]
 *   [--classes 10] [--stored-size 32] [--dropout 0.2] [--profile NAME] [--table] [--json]`
 * Builds the model and prints its parameter counts (ImageNet weights only when asked: counting needs none).
 * `model --onnx FILE [--input-size N] [--json]` imports an ONNX classifier instead and prints its graph
 * summary: nodes, cut candidates, parameters, and the largest difference against ONNX Runtime.
 */
import { defineCommand, parseCommand } from '../cli-options';
import type { HeadKind, ModelConfig } from '../config';
import { loadProfile } from '../config';
import { initBackend } from '../backend';
import { buildModel } from './build';
import { countParams, leafLayers } from './freeze';
import { onnxImportSummary } from './onnx/import-check';
import { layerRows } from './summary';

export const MODEL_COMMAND = defineCommand({
  name: 'model',
  usage: [
    'npm run -s cli -- model [--arch NAME] [--head seed|gap|none] [--input-size N] [--weights none|imagenet|FILE]',
    '                        [--classes 10] [--stored-size 32] [--dropout R] [--profile NAME] [--table] [--json]',
    'npm run -s cli -- model --onnx FILE [--input-size N] [--json]',
  ],
  about: '  Builds a model (backbone + head) and prints its parameter counts (total, trainable, per part).',
  options: {
    arch: { type: 'string', value: 'NAME', help: 'resnet50, resnet101, resnet152, darknet-tiny, mobilenet-v1-{0.25,0.50,0.75,1.0},\nor a TF.js model.json folder or URL' },
    head: { type: 'string', value: 'KIND', help: "seed (the article's: backbone top + Dense), gap (pooling, dropout, Dense) or none (MobileNet: Keras include_top=False)" },
    'input-size': { type: 'string', value: 'N', help: 'side in pixels the backbone sees (the model resizes its input to it)' },
    weights: { type: 'string', value: 'SOURCE', help: "imagenet (the preset's), none (random) or a weights file" },
    classes: { type: 'string', value: 'N', default: '10', help: 'classes of the new head' },
    'stored-size': { type: 'string', value: 'N', help: 'side of the stored images the model takes (default 32, CIFAR-10)' },
    dropout: { type: 'string', value: 'R', help: "dropout rate before the gap head's Dense layer" },
    profile: { type: 'string', value: 'NAME', help: "start from a profile's model section (the other options override it)" },
    onnx: {
      type: 'string',
      value: 'FILE',
      help:
        'import an ONNX classifier (e.g. torch.onnx.export of a torchvision model) and print its graph:\n' +
        "nodes per op, cut candidates (last spatial feature maps), trainable parameters (PyTorch's\n" +
        'sum(p.numel()) when exported with its BatchNorm kept), largest difference against ONNX Runtime',
    },
    table: { type: 'boolean', default: false, help: 'also print one row per layer' },
    json: { type: 'boolean', default: false, help: 'print the counts as JSON' },
  },
});

export async function modelCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(MODEL_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  const int = (v: string | undefined, flag: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${flag}: expected a positive integer, got '${v}'`);
    return n;
  };
  if (values.onnx) {
    await initBackend({ quiet: values.json });
    const summary = await onnxImportSummary(values.onnx, { inputSize: int(values['input-size'], 'input-size') });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return;
    }
    const ops = Object.entries(summary.ops).map(([op, n]) => `${op} ${n}`).join(', ');
    process.stdout.write(
      `file                 ${summary.file}\n` +
        `opset                ${summary.opset} (${summary.producer || 'unknown producer'})\n` +
        `nodes                ${summary.nodes}: ${ops}\n` +
        `input size           ${summary.inputSize}\n` +
        `layers               ${summary.layers}\n` +
        `trainable params     ${summary.trainableParams.toLocaleString('en-US')}\n` +
        `non-trainable        ${summary.nonTrainableParams.toLocaleString('en-US')}\n` +
        `output shape         [${summary.outputShape.join(', ')}]\n` +
        `vs ONNX Runtime      largest difference ${summary.ort!.maxAbsDiff.toExponential(2)} of ${summary.ort!.maxAbs.toExponential(2)} (relative ${summary.ort!.relative.toExponential(2)})\n` +
        `cut candidates       ${summary.cutCandidates.map((c) => `${c.node} [${c.shape.join('x')}]`).join('\n                     ')}\n`,
    );
    return;
  }
  const fromProfile = values.profile ? loadProfile(values.profile) : undefined;
  const cfg: ModelConfig = {
    arch: values.arch ?? fromProfile?.model.arch ?? 'resnet50',
    head: (values.head ?? fromProfile?.model.head ?? 'seed') as HeadKind,
    inputSize: int(values['input-size'], 'input-size') ?? fromProfile?.model.inputSize ?? 224,
    // Counting parameters needs no weights; load them only when asked.
    weights: values.weights ?? 'none',
    dropout: values.dropout !== undefined ? Number(values.dropout) : fromProfile?.model.dropout,
    // An ONNX backbone only from the profile, and only when --arch does not name another backbone.
    onnx: values.arch === undefined ? fromProfile?.model.onnx : undefined,
  };
  if (!['seed', 'gap', 'none'].includes(cfg.head)) throw new Error(`--head: expected seed, gap or none, got '${cfg.head}'`);
  await initBackend({ quiet: values.json });
  const storedSize = int(values['stored-size'], 'stored-size') ?? fromProfile?.data.imageSize ?? 32;
  // Without weights only the structure matters here: skip the random draws (seconds for ResNet-50).
  const built = await buildModel(cfg, int(values.classes, 'classes')!, { storedSize, quiet: values.json, init: 'zeros' });
  const counts = countParams(built.model);
  const summary = {
    arch: cfg.arch,
    head: cfg.head,
    ...counts,
    layers: leafLayers(built.model).filter((l) => l.getClassName() !== 'InputLayer').length,
    inputSize: built.inputSize,
    storedSize,
    preprocess: built.preprocess,
    featureShape: built.base.outputs[0].shape.slice(1),
    outputShape: built.model.outputs[0].shape.slice(1),
    weights: built.weightsSource,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    if (values.table) {
      for (const r of layerRows(built.model, { expand: true })) {
        process.stdout.write(`${(r.parent ? `${r.parent}/` : '') + r.name}`.padEnd(36) + r.type.padEnd(24) + r.outputShape.padEnd(24) + String(r.params).padStart(10) + (r.trainable ? '' : '  frozen') + '\n');
      }
    }
    for (const [k, v] of Object.entries(summary)) process.stdout.write(`${k.padEnd(20)} ${Array.isArray(v) ? `[${v.join(', ')}]` : v}\n`);
  }
  built.model.dispose();
}
