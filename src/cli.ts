#!/usr/bin/env node
/**
 * The command line: one subcommand per job, each implemented beside its stage.
 *   data | model | train | lr-find | run | report | predict | robustness | export | publish | compare | bench | kernel
 * Every subcommand declares its options as data (src/cli-options.ts: parser, --help and did-you-mean
 * from one declaration) and prints JSON with --json.
 * Nothing heavy loads before a command runs: --help and --version answer at once.
 */
import { join } from 'node:path';
import { didYouMean } from './cli-options';
import { readJsonFile } from './fsutil';

export { didYouMean, editDistance } from './cli-options';

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

function version(): string {
  const pkg = readJsonFile<{ name: string; version: string }>(join(__dirname, '..', '..', 'package.json'), "the workbench's package.json");
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
    // An unknown option (parseCommand names the nearest known one): a usage mistake, exit 2.
    if ((e as Error)?.name !== 'CliUsageError') throw e;
    process.stderr.write(`${(e as Error).message}\n`);
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
