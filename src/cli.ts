#!/usr/bin/env node
/**
 * The command line: one subcommand per job, each implemented beside its stage.
 *   data | model | train | lr-find | run | report | predict | robustness | export | publish | compare | bench | kernel
 * Every subcommand parses its own flags (node:util parseArgs) and prints JSON with --json.
 * Nothing heavy loads before a command runs: --help and --version answer at once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

type Command = (argv: string[]) => Promise<void>;

// Loaded on demand with import(): `cli --help` or `cli kernel` should not pay for loading
// TensorFlow.js, polars and vega. import() keeps each module visible to the type checker.
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  data: { summary: 'describe the configured data set (CIFAR-10 or an image folder)', load: async () => (await import('./data/command')).dataCommand },
  model: { summary: 'build a model and print its parameter counts', load: async () => (await import('./model/command')).modelCommand },
  train: { summary: 'train a profile (or --resume a run folder)', load: async () => (await import('./train/command')).trainCommand },
  'lr-find': { summary: 'sweep the learning rate of a phase and suggest one (fastai lr_find)', load: async () => (await import('./train/command')).lrFindCommand },
  run: { summary: 'run notebooks 01..05 headless for a profile and write the report (what `npm start` does)', load: async () => (await import('./jupyter/command')).runCommand },
  report: { summary: 'write the self-contained HTML report of a run (--compare: several runs on one page)', load: async () => (await import('./results/command')).reportCommand },
  predict: { summary: 'top-3 classes for image files with a trained run', load: async () => (await import('./results/command')).predictCommand },
  export: { summary: 'write a trained run as an ONNX file (preprocessing and class names inside)', load: async () => (await import('./results/export')).exportCommand },
  publish: { summary: 'a trained run as a small folder to predict with (TF.js + ONNX, float16 weights)', load: async () => (await import('./results/publish')).publishCommand },
  robustness: { summary: 'test accuracy of a run clean and under JPEG, noise, blur, contrast, brightness', load: async () => (await import('./results/command')).robustnessCommand },
  compare: { summary: 'a Markdown table and curves of several runs side by side', load: async () => (await import('./results/command')).compareCommand },
  bench: { summary: 'images per second per backend (and against PyTorch when present)', load: async () => (await import('../bench/command')).benchCommand },
  kernel: { summary: 'register the tslab kernel in the project-local Jupyter folder', load: async () => (await import('./jupyter/command')).kernelCommand },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return (
    `usage: npm run -s cli -- <command> [options]     (npm run -s cli -- <command> --help for its options)\n\n` +
    `commands:\n${rows.join('\n')}\n\n` +
    `  --version  the workbench's version\n` +
    `see it work in a minute: npm start -- --profile smoke\n`
  );
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest of `names` to `word` when it is close enough to be a typo (or a prefix), else null. */
export function didYouMean(word: string, names: string[]): string | null {
  const w = word.toLowerCase();
  const prefixed = names.filter((n) => n.startsWith(w) && w.length >= 2);
  if (prefixed.length === 1) return prefixed[0];
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const n of names) {
    const dist = editDistance(w, n);
    if (dist < bestDistance) [best, bestDistance] = [n, dist];
  }
  return best !== null && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : null;
}

/** Profile fields people reach for as options: where they live instead. */
const PROFILE_FIELDS: Record<string, string> = {
  epochs: 'train.phases.0.epochs=3 (one per phase: train.phases.1.epochs, ...)',
  lr: 'train.phases.0.lr=1e-4 (one per phase)',
  'learning-rate': 'train.phases.0.lr=1e-4 (one per phase)',
  'batch-size': 'train.batchSize=32',
  batch: 'train.batchSize=32',
  seed: 'train.seed=7',
  arch: 'model.arch=darknet-tiny',
  'input-size': 'model.inputSize=128',
  'train-limit': 'data.trainLimit=5000',
};

/** The options a command's --help lists (its usage text is the single place they are described). */
async function optionsOf(command: Command): Promise<string[]> {
  let text = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => ((text += String(chunk)), true)) as typeof process.stdout.write;
  try {
    await command(['--help']);
  } catch {
    /* no help: no suggestions */
  } finally {
    process.stdout.write = write;
  }
  return [...new Set([...text.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]))];
}

/** Turns node:util's "Unknown option '--x'. To specify a positional argument..." into a hint. */
async function unknownOptionMessage(name: string, command: Command, option: string): Promise<string> {
  const known = await optionsOf(command);
  const bare = option.replace(/^-+/, '').split('=')[0];
  const close = didYouMean(bare, known);
  const lines = [`${name}: unknown option --${bare}`];
  if (close) lines.push(`did you mean --${close}?`);
  else if (PROFILE_FIELDS[bare] && known.includes('set')) lines.push(`it is a profile field: --set ${PROFILE_FIELDS[bare]}`);
  lines.push(`options of ${name}: ${known.map((o) => `--${o}`).join(' ')} (npm run -s cli -- ${name} --help)`);
  return lines.join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { name: string; version: string };
  return `${pkg.name} ${pkg.version} (node ${process.version})`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const entry = commands[name];
  if (!entry) {
    const close = didYouMean(name.replace(/^-+/, ''), Object.keys(commands));
    process.stderr.write(`unknown command '${name}'${close ? `: did you mean '${close}'?` : ''}\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  const command = await entry.load();
  try {
    await command(rest);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const option = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']+)'/.exec(err.message ?? '')?.[1] : undefined;
    if (!option) throw e;
    process.stderr.write(`${await unknownOptionMessage(name, command, option)}\n`);
    process.exitCode = 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    const err = e as Error;
    process.stderr.write(`error: ${err?.message ?? String(e)}\n`);
    if (process.env.TLWB_DEBUG) process.stderr.write(`${err?.stack}\n`);
    process.exitCode = 1;
  });
}
