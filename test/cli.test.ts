import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { didYouMean, editDistance } from '../src/cli';
import { helpText, optionNames, parseCommand, type CliCommand } from '../src/cli-options';

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'dist', 'src', 'cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('--help lists the commands and --version names the package', () => {
  const help = run('--help');
  assert.equal(help.status, 0);
  for (const c of ['run', 'train', 'report', 'compare', 'predict', 'bench', 'kernel', 'data', 'model', 'robustness']) assert.match(help.stdout, new RegExp(`^  ${c} `, 'm'));
  const v = run('--version');
  assert.equal(v.status, 0);
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert.equal(v.stdout.trim().split(' ').slice(0, 2).join(' '), `${pkg.name} ${pkg.version}`);
});

test('an unknown command or option gets a did-you-mean, and a profile field given as an option points at --set', () => {
  const typo = run('trian');
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /unknown command 'trian': did you mean 'train'\?/);
  const option = run('train', '--profle', 'smoke');
  assert.equal(option.status, 2);
  assert.match(option.stderr, /train: unknown option --profle\ndid you mean --profile\?/);
  const field = run('train', '--epochs', '3');
  assert.equal(field.status, 2);
  assert.match(field.stderr, /it is a profile field: --set train\.phases\.0\.epochs=3/);
  assert.match(field.stderr, /options of train: --profile --set --resume --run-dir --backend --progress --json --help/);
});

/** Every command's declaration, as the CLI loads it. */
async function declaredCommands(): Promise<CliCommand[]> {
  return [
    (await import('../src/data/command')).DATA_COMMAND,
    (await import('../src/model/command')).MODEL_COMMAND,
    (await import('../src/train/command')).TRAIN_COMMAND,
    (await import('../src/train/command')).LR_FIND_COMMAND,
    (await import('../src/jupyter/command')).RUN_COMMAND,
    (await import('../src/jupyter/command')).KERNEL_COMMAND,
    (await import('../src/results/command')).REPORT_COMMAND,
    (await import('../src/results/command')).PREDICT_COMMAND,
    (await import('../src/results/command')).COMPARE_COMMAND,
    (await import('../src/results/command')).ROBUSTNESS_COMMAND,
    (await import('../src/results/export')).EXPORT_COMMAND,
    (await import('../src/results/publish')).PUBLISH_COMMAND,
    (await import('../bench/command')).BENCH_COMMAND,
    (await import('../bench/decode')).BENCH_DECODE_COMMAND,
    (await import('../bench/onnx-import')).ONNX_IMPORT_BENCH,
  ] as CliCommand[];
}

test('issue 20: every option a command parses is described in its --help, both made from one declaration', async () => {
  const commands = await declaredCommands();
  assert.equal(commands.length, 15);
  // npm run notebook passes other options on to Jupyter (no did-you-mean), but its help is made the same way
  const { NOTEBOOK_COMMAND, notebookUsage } = await import('../src/jupyter/serve');
  assert.ok(notebookUsage().startsWith(helpText(NOTEBOOK_COMMAND).split('  -h, --help')[0]));
  for (const c of [...commands, NOTEBOOK_COMMAND as CliCommand]) {
    const help = helpText(c);
    assert.ok(optionNames(c).length > 1, `${c.name}: declares options`);
    for (const o of optionNames(c)) {
      // the option at the start of its row, followed by a description on that row or the next
      assert.match(help, new RegExp(`^  (-\\w, )?--${o}\\b[^\\n]*(\\S[^\\n]*\\S|\\n {6,}\\S)`, 'm'), `${c.name} --help describes --${o}`);
    }
  }
  // what the CLI prints is that text (no other copy): one command checked end to end
  const data = commands.find((c) => c.name === 'data')!;
  assert.equal(run('data', '--help').stdout, helpText(data));
  assert.equal(run('lr-find', '-h').stdout, helpText(commands.find((c) => c.name === 'lr-find')!));
});

test('issue 20: an unknown option of any command names the nearest option it declares', async () => {
  for (const c of await declaredCommands()) {
    const names = optionNames(c);
    const longest = names.reduce((a, b) => (b.length > a.length ? b : a));
    // a typo: two letters swapped in its longest option
    const typo = longest.slice(0, 1) + longest[2] + longest[1] + longest.slice(3);
    assert.throws(() => parseCommand(c, [`--${typo}`]), (e: Error) => {
      assert.equal(e.name, 'CliUsageError');
      assert.match(e.message, new RegExp(`^${c.name}: unknown option --${typo}\\ndid you mean --${longest}\\?\\noptions of ${c.name}: ${names.map((n) => `--${n}`).join(' ')} `));
      return true;
    }, c.name);
  }
  const r = run('publish', '--evalute');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^publish: unknown option --evalute\ndid you mean --evaluate\?/);
});

test('didYouMean: typos, swaps and prefixes, nothing for unrelated words', () => {
  assert.equal(editDistance('trian', 'train'), 1);
  assert.equal(didYouMean('trian', ['train', 'data']), 'train');
  assert.equal(didYouMean('rep', ['report', 'run']), 'report');
  assert.equal(didYouMean('epochs', ['profile', 'set', 'resume']), null);
});

test('ensure-built rebuilds only when a source is newer than the last build', () => {
  const stamp = path.join(root, 'dist', '.build-stamp');
  const script = path.join(root, 'scripts', 'ensure-built.js');
  const first = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  const before = fs.statSync(stamp).mtimeMs;
  const again = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  assert.equal(again.status, 0);
  assert.equal(fs.statSync(stamp).mtimeMs, before, 'up to date: no build');
});
