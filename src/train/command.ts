/**
 * `cli train`: train a profile in a new run folder, or continue one.
 *   npm run -s cli -- train --profile smoke --json
 *   npm run -s cli -- train --resume data/runs/<run>      (continue from its last checkpoint)
 *   npm run -s cli -- train --profile quick --set train.phases.0.epochs=3 --set data.trainLimit=5000
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineCommand, parseCommand } from '../cli-options';
import { session } from '../session';
import { assertRunFolderTarget, isRunFolder } from '../fsutil';
import type { ProgressMode } from './progress';
import { describeResult, train } from './index';
import { TrainingInterruptedError } from './interrupt';
import { describeLrFind, lrFind } from './lr-find';
import { resolveInitFrom } from '../model/init-from';

export const TRAIN_COMMAND = defineCommand({
  name: 'train',
  usage: [
    'cli train [--profile NAME] [--set key.path=value ...] [--resume RUN_DIR] [--run-dir DIR]',
    '          [--backend cpu|wasm|node|node-gpu] [--progress auto|bar|lines|none] [--json]',
  ],
  options: {
    profile: { type: 'string', value: 'NAME', help: 'profile name from profiles/ (default: TLWB_PROFILE, else seed on a GPU, quick otherwise)' },
    set: { type: 'string', value: 'key.path=value', multiple: true, help: 'override a profile field, e.g. --set train.phases.0.lr=1e-4 (repeatable; new runs only)' },
    resume: { type: 'string', value: 'RUN_DIR', help: 'continue the run in RUN_DIR from its last checkpoint (a finished run reports itself)' },
    'run-dir': {
      type: 'string',
      value: 'DIR',
      help: 'train into this folder (created; continued if it holds a checkpoint); an existing\nfolder that is not a run folder is refused, nothing in it changed',
    },
    backend: {
      type: 'string',
      value: 'NAME',
      help: 'TensorFlow.js backend: cpu, wasm, node (tfjs-node) or node-gpu (CUDA); default TLWB_BACKEND,\nelse the fastest that loads (node-gpu, node, wasm, cpu)',
    },
    progress: { type: 'string', value: 'MODE', help: 'auto (default: a bar in a terminal, one line per epoch when piped), bar, lines or none' },
    json: { type: 'boolean', default: false, help: 'print {"runDir","epochs","finalValAccuracy","history","status","resumedFrom"} on stdout (progress goes to stderr)' },
  },
  notes:
    '  Epochs, learning rates and batch sizes are profile fields: --set train.phases.0.epochs=3.\n' +
    '  Ctrl-C stops after the current batch with a checkpoint (exit 130); --resume continues from it.\n' +
    "  A profile's train.checkpointEveryMinutes also saves inside long epochs (a killed run loses at most that).",
});

export async function trainCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(TRAIN_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  // Before anything is loaded or written: a folder of the user's is never trained into.
  if (values['run-dir'] && !values.resume) assertRunFolderTarget(values['run-dir']);
  if (values.resume) {
    if (!isRunFolder(values.resume)) throw new Error(`--resume ${values.resume}: not a run folder (no profile.json of a run)`);
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
  // A model.initFrom that names nothing is refused before the run folder is made (printing it makes it).
  if (s.profile.model.initFrom) resolveInitFrom(s.profile.model.initFrom);
  if (!values.json) console.log(`run folder: ${s.runDir}`);
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
  const out = { runDir: result.runDir, epochs: result.epochs, finalValAccuracy: result.finalValAccuracy, history: result.history, status: result.status, resumedFrom: result.resumedFrom };
  if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else console.log(describeResult(result));
}

export const LR_FIND_COMMAND = defineCommand({
  name: 'lr-find',
  usage: [
    'cli lr-find [--profile NAME | --run RUN_DIR] [--set key.path=value ...] [--phase N]',
    '            [--min-lr X] [--max-lr Y] [--iterations N] [--backend B] [--json]',
  ],
  about:
    '  Sweeps the learning rate of one phase exponentially over at most N batches (default 100, 1e-7..10),\n' +
    '  and suggests a rate as fastai does (valley: halfway along the longest stretch over which the smoothed\n' +
    '  loss keeps falling); steep (the steepest descent before the minimum) and minimum/10 are printed too.\n' +
    "  Starts from the run's last checkpoint when it has one; the run's weights and files stay as they were.",
  options: {
    run: { type: 'string', value: 'RUN_DIR', help: 'the run folder (default: the newest run made with this profile and these --set values, else a new one)' },
    phase: { type: 'string', value: 'N', help: "the profile's phase to sweep, 0-based (default 0)" },
    profile: { type: 'string', value: 'NAME', help: 'profile name from profiles/ (default: TLWB_PROFILE, else seed on a GPU, quick otherwise)' },
    set: { type: 'string', value: 'key.path=value', multiple: true, help: 'override a profile field (repeatable)' },
    'min-lr': { type: 'string', value: 'X', help: "the sweep's first rate (default 1e-7)" },
    'max-lr': { type: 'string', value: 'Y', help: "the sweep's last rate (default 10)" },
    iterations: { type: 'string', value: 'N', help: 'batches at most (default 100)' },
    backend: { type: 'string', value: 'NAME', help: 'TensorFlow.js backend: cpu, wasm, node or node-gpu (default: the fastest that loads)' },
    progress: { type: 'string', value: 'MODE', help: 'auto, bar, lines or none' },
    json: {
      type: 'boolean',
      default: false,
      help: 'print {"suggestedLr","rule","suggestions":{valley,steep,minimum},"phase","runDir","profile","minLr","maxLr","stopped","points":[{lr,loss,smoothed}]}',
    },
  },
});

export async function lrFindCommand(argv: string[]): Promise<void> {
  const parsed = parseCommand(LR_FIND_COMMAND, argv);
  if (!parsed) return;
  const { values } = parsed;
  const number = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${flag}: expected a number, got '${v}'`);
    return n;
  };
  if (values.run && !fs.existsSync(path.join(values.run, 'profile.json'))) throw new Error(`--run ${values.run}: not a run folder (no profile.json)`);
  const s = await session({ profile: values.profile, overrides: values.set ?? [], runDir: values.run, backend: values.backend, quiet: values.json });
  const r = await lrFind(s, {
    phase: number('phase', values.phase),
    minLr: number('min-lr', values['min-lr']),
    maxLr: number('max-lr', values['max-lr']),
    iterations: number('iterations', values.iterations),
    progress: (values.progress as ProgressMode | undefined) ?? (values.json ? 'none' : 'auto'),
  });
  if (values.json) process.stdout.write(`${JSON.stringify({ suggestedLr: r.suggestedLr, rule: r.rule, suggestions: r.suggestions, phase: r.phase, runDir: s.runDir, profile: s.profile, minLr: r.minLr, maxLr: r.maxLr, stopped: r.stopped, points: r.points })}\n`);
  else console.log(describeLrFind(r));
}
