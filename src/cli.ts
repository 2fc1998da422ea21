#!/usr/bin/env node
/**
 * The command line: one subcommand per job, each implemented beside its stage.
 *   data | model | train | lr-find | run | report | predict | export | compare | bench | kernel
 * Every subcommand parses its own flags (node:util parseArgs) and prints JSON with --json.
 */
type Command = (argv: string[]) => Promise<void>;

// Loaded on demand with import(): `cli --help` or `cli kernel` should not pay for loading
// TensorFlow.js, polars and vega. import() keeps each module visible to the type checker.
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  data: { summary: 'describe the configured data set (CIFAR-10 or an image folder)', load: async () => (await import('./data/command')).dataCommand },
  model: { summary: 'build a model and print its parameter counts', load: async () => (await import('./model/command')).modelCommand },
  train: { summary: 'train a profile (or --resume a run folder)', load: async () => (await import('./train/command')).trainCommand },
  'lr-find': { summary: 'sweep the learning rate of a phase and suggest one (fastai lr_find)', load: async () => (await import('./train/command')).lrFindCommand },
  run: { summary: 'run notebooks 01..05 headless for a profile and write the report', load: async () => (await import('./jupyter/command')).runCommand },
  report: { summary: 'write the self-contained HTML report of a run', load: async () => (await import('./results/command')).reportCommand },
  predict: { summary: 'top-3 classes for image files with a trained run', load: async () => (await import('./results/command')).predictCommand },
  export: { summary: 'write a trained run as an ONNX file (preprocessing and class names inside)', load: async () => (await import('./results/export')).exportCommand },
  compare: { summary: 'a Markdown table and curves of several runs side by side', load: async () => (await import('./results/command')).compareCommand },
  bench: { summary: 'images per second per backend (and against PyTorch when present)', load: async () => (await import('../bench/command')).benchCommand },
  kernel: { summary: 'register the tslab kernel in the project-local Jupyter folder', load: async () => (await import('./jupyter/command')).kernelCommand },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `usage: npm run -s cli -- <command> [options]\n\ncommands:\n${rows.join('\n')}\n`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`unknown command '${name}'\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  await (await command.load())(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const err = e as Error;
  process.stderr.write(`error: ${err?.message ?? String(e)}\n`);
  if (process.env.TLWB_DEBUG) process.stderr.write(`${err?.stack}\n`);
  process.exitCode = 1;
});
