import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { didYouMean, editDistance } from '../src/cli';

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

test('every option a command parses is described in its --help', () => {
  // The option names each command gives parseArgs, read from the compiled sources.
  const sources: Record<string, string> = {
    train: 'src/train/command.js', model: 'src/model/command.js', bench: 'bench/command.js', run: 'src/jupyter/command.js', report: 'src/results/command.js',
    predict: 'src/results/command.js', compare: 'src/results/command.js', kernel: 'src/jupyter/command.js', data: 'src/data/command.js',
    'lr-find': 'src/train/command.js', export: 'src/results/export.js', publish: 'src/results/publish.js', robustness: 'src/results/command.js',
  };
  for (const [name, file] of Object.entries(sources)) {
    const help = run(name, '--help').stdout;
    const text = fs.readFileSync(path.join(root, 'dist', file), 'utf8');
    // The options object of the command's own function (several commands share a file).
    const fnName = `${name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())}Command`;
    const own = text.slice(Math.max(0, text.indexOf(`function ${fnName}(`)));
    const block = own.slice(own.indexOf('options:'), own.indexOf('values.help'));
    const options = [...block.matchAll(/'?([a-z][a-z-]*)'?: \{ type/g)].map((m) => m[1]);
    assert.ok(options.length > 1, `${name}: found its options`);
    for (const o of options) assert.match(help, new RegExp(`--${o}\\b[^\\n]*\\S`), `${name} --help describes --${o}`);
  }
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
