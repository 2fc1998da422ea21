#!/usr/bin/env node
/**
 * The command line: one subcommand per job, each implemented beside its stage.
 *   data | model | train | run | report | predict | export | compare | bench | kernel
 * Every subcommand parses its own flags (node:util parseArgs) and prints JSON with --json.
 */
type Command = (argv: string[]) => Promise<void>;

const commands: Record<string, { summary: string; load: () => Command }> = {
  data: { summary: 'describe the configured data set (CIFAR-10 or an image folder)', load: () => require('./data/command').dataCommand },
  model: { summary: 'build a model and print its parameter counts', load: () => require('./model/command').modelCommand },
  train: { summary: 'train a profile (or --resume a run folder)', load: () => require('./train/command').trainCommand },
  run: { summary: 'run notebooks 01..05 headless for a profile and write the report', load: () => require('./jupyter/command').runCommand },
  report: { summary: 'write the self-contained HTML report of a run', load: () => require('./results/command').reportCommand },
  predict: { summary: 'top-3 classes for image files with a trained run', load: () => require('./results/command').predictCommand },
  export: { summary: 'write a trained run as an ONNX file (preprocessing and class names inside)', load: () => require('./results/export').exportCommand },
  compare: { summary: 'a Markdown table and curves of several runs side by side', load: () => require('./results/command').compareCommand },
  bench: { summary: 'images per second per backend (and against PyTorch when present)', load: () => require('../bench/command').benchCommand },
  kernel: { summary: 'register the tslab kernel in the project-local Jupyter folder', load: () => require('./jupyter/command').kernelCommand },
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
  await command.load()(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const err = e as Error;
  process.stderr.write(`error: ${err?.message ?? String(e)}\n`);
  if (process.env.TLWB_DEBUG) process.stderr.write(`${err?.stack}\n`);
  process.exitCode = 1;
});
