/**
 * `cli train`: train a profile in a new run folder, or continue one.
 *   npm run -s cli -- train --profile smoke --json
 *   npm run -s cli -- train --resume data/runs/<run>      (continue from its last checkpoint)
 *   npm run -s cli -- train --profile quick --set train.phases.0.epochs=3 --set data.trainLimit=5000
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { session } from '../session';
import type { ProgressMode } from './progress';

const USAGE = `usage: cli train [--profile NAME] [--set key.path=value ...] [--resume RUN_DIR] [--run-dir DIR]
                 [--backend cpu|wasm|node|node-gpu] [--progress auto|bar|lines|none] [--json]
  --profile   profile name from profiles/ (default: TLWB_PROFILE, else seed on a GPU, quick otherwise)
  --set       override a profile field, e.g. --set train.phases.0.lr=1e-4 (repeatable; new runs only)
  --resume    continue the run in RUN_DIR from its last checkpoint (a finished run reports itself)
  --run-dir   train into this folder (created; continued if it holds a checkpoint)
  --backend   TensorFlow.js backend: cpu, wasm, node (tfjs-node) or node-gpu (CUDA); default TLWB_BACKEND,
              else the fastest that loads (node-gpu, node, wasm, cpu)
  --progress  auto (default: a bar in a terminal, one line per epoch when piped), bar, lines or none
  --json      print {"runDir","epochs","finalValAccuracy","history","status"} on stdout (progress goes to stderr)
  -h, --help  this text
  Epochs, learning rates and batch sizes are profile fields: --set train.phases.0.epochs=3.
  Ctrl-C stops after the current batch with a checkpoint (exit 130); --resume continues from it.
`;

export async function trainCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: 'string' },
      set: { type: 'string', multiple: true },
      resume: { type: 'string' },
      'run-dir': { type: 'string' },
      backend: { type: 'string' },
      progress: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.resume) {
    if (!fs.existsSync(path.join(values.resume, 'profile.json'))) throw new Error(`--resume ${values.resume}: not a run folder (no profile.json)`);
    if (values.set?.length) throw new Error('--set applies to new runs only: a resumed run keeps the profile it started with');
  }
  const s = await session({
    profile: values.profile,
    overrides: values.set ?? [],
    runDir: values.resume ?? values['run-dir'],
    newRun: !values.resume && !values['run-dir'],
    backend: values.backend,
    quiet: values.json,
  });
  if (!values.json) console.log(`run folder: ${s.runDir}`);
  const { train } = require('./index') as typeof import('./index');
  const { TrainingInterruptedError } = require('./interrupt') as typeof import('./interrupt');
  let result;
  try {
    result = await train(s, { progress: (values.progress as ProgressMode | undefined) ?? 'auto' });
  } catch (e) {
    if (!(e instanceof TrainingInterruptedError)) throw e;
    // The progress output has said where it stopped; say how to go on.
    process.stderr.write(`continue with: npm run -s cli -- train --resume ${path.relative(process.cwd(), s.runDir) || s.runDir}\n`);
    process.exitCode = 130;
    return;
  }
  const out = { runDir: result.runDir, epochs: result.epochs, finalValAccuracy: result.finalValAccuracy, history: result.history, status: result.status };
  if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else console.log(`${result.status}: ${result.epochs} epochs, val accuracy ${result.finalValAccuracy?.toFixed(4)}; history ${result.history}`);
}
