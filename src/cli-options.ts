/**
 * A command's options declared once, as data: the node:util parseArgs config, the --help text and
 * the "did you mean --xyz?" for an unknown option are all made from the same declaration, so an
 * option cannot be parsed without being documented, nor documented under another name.
 */
import { parseArgs } from 'node:util';

export interface CliOption {
  type: 'string' | 'boolean';
  /** What the option does, for --help; further lines are indented under the first. */
  help: string;
  /** The value's name in --help (`--profile NAME`); strings only. */
  value?: string;
  short?: string;
  /** Repeatable: the values come as a list. */
  multiple?: boolean;
  /** parseArgs' default; a string default is shown in --help unless the help text names one. */
  default?: string | boolean;
}

export type CliOptions = Record<string, CliOption>;

export interface CliCommand<O extends CliOptions = CliOptions> {
  /** The subcommand, as typed after `npm run -s cli --`. */
  name: string;
  /** How it is started, for the hint after an unknown option (default `npm run -s cli -- <name>`). */
  invocation?: string;
  /** The synopsis lines after "usage: ". */
  usage: string[];
  /** What the command does, printed between the synopsis and the options (lines as written). */
  about?: string;
  options: O;
  /** Whether it takes arguments that are not options (image files, run folders). */
  positionals?: boolean;
  /** Printed after the options (lines as written). */
  notes?: string;
}

/** Declares a command; `const` keeps each option's literal type, so the parsed values are typed. */
export function defineCommand<const O extends CliOptions>(command: CliCommand<O>): CliCommand<O> {
  if ('help' in command.options) throw new Error(`${command.name}: --help is added to every command; do not declare it`);
  return command;
}

const HELP_OPTION: CliOption = { type: 'boolean', short: 'h', help: 'this text' };

/** Every option a command takes, --help included, in --help's order. */
export function optionNames(command: CliCommand): string[] {
  return [...Object.keys(command.options), 'help'];
}

/** The widest option column before a description moves to its own line. */
const LABEL_WIDTH = 22;

function optionLabel(name: string, o: CliOption): string {
  const flag = `${o.short ? `-${o.short}, ` : ''}--${name}`;
  return o.type === 'string' ? `${flag} ${o.value ?? 'VALUE'}` : flag;
}

function optionHelp(o: CliOption): string {
  const shownDefault = typeof o.default === 'string' && !/\bdefault\b/.test(o.help) ? ` (default ${o.default})` : '';
  return o.help + shownDefault + (o.multiple && !/\brepeatable\b/.test(o.help) ? ' (repeatable)' : '');
}

/** The --help text of a command, made from its declaration. */
export function helpText(command: CliCommand): string {
  const entries = [...Object.entries(command.options), ['help', HELP_OPTION] as const];
  const labels = entries.map(([name, o]) => `  ${optionLabel(name, o)}`);
  const column = Math.min(LABEL_WIDTH, Math.max(...labels.map((l) => l.length))) + 2;
  const rows = entries.map(([, o], i) => {
    const [first, ...more] = optionHelp(o).split('\n');
    const indent = ' '.repeat(column);
    const head = labels[i].length + 2 > column ? `${labels[i]}\n${indent}${first}` : `${labels[i].padEnd(column)}${first}`;
    return [head, ...more.map((line) => `${indent}${line.trimStart()}`)].join('\n');
  });
  const [synopsis, ...alternatives] = command.usage;
  return [
    `usage: ${synopsis}`,
    ...alternatives.map((u) => `       ${u}`),
    ...(command.about ? [command.about.replace(/\n$/, '')] : []),
    ...rows,
    ...(command.notes ? [command.notes.replace(/\n$/, '')] : []),
  ].join('\n') + '\n';
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

/** A mistake in how a command was called (an unknown option): the CLI prints the message and exits 2. */
export class CliUsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'CliUsageError';
  }
}

/** "train: unknown option --profle / did you mean --profile? / options of train: ..." */
export function unknownOptionMessage(command: CliCommand, option: string): string {
  const known = optionNames(command);
  const bare = option.replace(/^-+/, '').split('=')[0];
  const close = didYouMean(bare, known);
  const lines = [`${command.name}: unknown option --${bare}`];
  if (close) lines.push(`did you mean --${close}?`);
  else if (PROFILE_FIELDS[bare] && known.includes('set')) lines.push(`it is a profile field: --set ${PROFILE_FIELDS[bare]}`);
  lines.push(`options of ${command.name}: ${known.map((o) => `--${o}`).join(' ')} (${command.invocation ?? `npm run -s cli -- ${command.name}`} --help)`);
  return lines.join('\n');
}

type ParsedCommand<O extends CliOptions> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

/**
 * Parses `argv` by the command's declaration. --help prints the help text and gives null (the
 * command has nothing more to do); an unknown option is a CliUsageError naming the nearest known one.
 */
export function parseCommand<const O extends CliOptions>(command: CliCommand<O>, argv: string[]): ParsedCommand<O> | null {
  const options = Object.fromEntries(
    [...Object.entries(command.options), ['help', HELP_OPTION] as const].map(([name, o]) => [
      name,
      { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}), ...(o.default !== undefined ? { default: o.default } : {}) },
    ]),
  );
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: !!command.positionals, strict: true }) as typeof parsed;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const option = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']+)'/.exec(err.message ?? '')?.[1] : undefined;
    if (option) throw new CliUsageError(unknownOptionMessage(command, option));
    throw e;
  }
  if (parsed.values.help) {
    process.stdout.write(helpText(command));
    return null;
  }
  return parsed as unknown as ParsedCommand<O>;
}
