import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineCommand, helpText, parseCommand } from '../src/cli-options';

const DEMO = defineCommand({
  name: 'demo',
  usage: ['npm run -s cli -- demo [--top N] <file>...', 'npm run -s cli -- demo --list'],
  about: '  Shows what a declaration makes.',
  positionals: true,
  options: {
    top: { type: 'string', value: 'N', default: '3', help: 'how many' },
    limit: { type: 'string', value: 'N', default: '9', help: 'at most this many (default 9 per file)' },
    set: { type: 'string', value: 'a.b=v', multiple: true, help: 'an override' },
    'a-very-long-option-name': { type: 'string', value: 'VALUE', help: 'first line\nsecond line' },
    list: { type: 'boolean', short: 'l', help: 'list instead' },
  },
  notes: '  A note after the options.',
});

test('helpText: synopsis, about, one row per option (default and repeatable said once), notes', () => {
  assert.equal(
    helpText(DEMO),
    [
      'usage: npm run -s cli -- demo [--top N] <file>...',
      '       npm run -s cli -- demo --list',
      '  Shows what a declaration makes.',
      '  --top N               how many (default 3)',
      '  --limit N             at most this many (default 9 per file)',
      '  --set a.b=v           an override (repeatable)',
      '  --a-very-long-option-name VALUE',
      '                        first line',
      '                        second line',
      '  -l, --list            list instead',
      '  -h, --help            this text',
      '  A note after the options.',
      '',
    ].join('\n'),
  );
});

test('parseCommand: typed values with their defaults, positionals, --help printed and null returned', (t) => {
  const parsed = parseCommand(DEMO, ['--set', 'a=1', 'x.png', '-l', '--set=b=2'])!;
  assert.deepEqual({ ...parsed.values }, { top: '3', limit: '9', set: ['a=1', 'b=2'], list: true });
  assert.deepEqual(parsed.positionals, ['x.png']);
  const written: string[] = [];
  t.mock.method(process.stdout, 'write', (chunk: string) => (written.push(chunk), true));
  assert.equal(parseCommand(DEMO, ['-h']), null);
  t.mock.restoreAll();
  assert.deepEqual(written, [helpText(DEMO)]);
  assert.throws(() => parseCommand(DEMO, ['--lits']), /^CliUsageError: demo: unknown option --lits\ndid you mean --list\?\noptions of demo: --top --limit --set --a-very-long-option-name --list --help/);
  assert.throws(() => parseCommand(DEMO, ['--epochs', '3']), /it is a profile field: --set train\.phases\.0\.epochs=3/);
  assert.throws(() => defineCommand({ name: 'x', usage: ['x'], options: { help: { type: 'boolean', help: 'mine' } } }), /--help is added to every command/);
});
