import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { projectRoot } from '../../src/config';
import { describeDataset, formatDescription } from '../../src/data/summary';
import { loadCifar10 } from '../../src/data/cifar10';
import { syntheticLabel, tempDir, writeCifarFolder, writeSolidImage } from './fixtures';

const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  execFileSync(process.execPath, [cli, ...args], { env: { ...process.env, TLWB_BACKEND: 'cpu', TLWB_DATA_DIR: tempDir('tlwb-cli-'), ...env }, encoding: 'utf8' });

test('cli data --json prints exactly {classes, train, test, source, warnings} for a partial CIFAR10_DIR', () => {
  const dir = writeCifarFolder(path.join(tempDir(), 'cifar'), 3, 4);
  const out = JSON.parse(run(['data', '--json'], { CIFAR10_DIR: dir }));
  assert.deepEqual(Object.keys(out), ['classes', 'train', 'test', 'source', 'warnings']);
  assert.equal(out.warnings.length, 6, 'each partial batch file is named');
  assert.equal(out.classes.length, 10);
  assert.equal(out.train.count, 15);
  assert.equal(out.test.count, 4);
  assert.equal(out.train.perClass.reduce((a: number, b: number) => a + b, 0), 15);
  assert.deepEqual(out.train.firstLabels, Array.from({ length: 10 }, (_, i) => syntheticLabel(i)));
  assert.equal(out.source, dir);
});

test('cli data --images describes an image folder; without --json a table', () => {
  const root = tempDir();
  for (const c of ['b', 'a']) for (let i = 0; i < 2; i++) writeSolidImage(path.join(root, c, `${i}.png`), 6, 6, [1, 2, 3]);
  const out = JSON.parse(run(['data', '--json', '--images', root]));
  assert.deepEqual(out, {
    classes: ['a', 'b'],
    train: { count: 4, perClass: [2, 2], firstLabels: [0, 1, 0, 1] },
    test: { count: 0, perClass: [0, 0], firstLabels: [] },
    source: root,
  });
  const text = run(['data', '--images', root, '--size', '8']);
  assert.match(text, /2 classes, 4 training and 0 test images at 8x8/);
  assert.match(text, /^a\s+2\s+0$/m);
});

test('issue 25 item 7: data --images X --size 100000 is refused naming --size and the range, before anything is allocated', () => {
  const root = tempDir();
  for (const c of ['a', 'b']) writeSolidImage(path.join(root, c, '0.png'), 6, 6, [1, 2, 3]);
  const r = spawnSync(process.execPath, [cli, 'data', '--images', root, '--size', '100000'], { env: { ...process.env, TLWB_BACKEND: 'cpu', TLWB_DATA_DIR: tempDir('tlwb-cli-') }, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--size: expected an integer from 1 to 1024 \(the side images are stored at\), got '100000'/);
  assert.doesNotMatch(r.stderr, /Invalid typed array length/);
});

test('formatDescription lists every class with its counts', () => {
  const ds = loadCifar10(writeCifarFolder(path.join(tempDir(), 'cifar'), 1, 2));
  const text = formatDescription(describeDataset(ds), 0.5, 32);
  assert.match(text, /10 classes, 5 training and 2 test images at 32x32, loaded in 0\.50 s/);
  assert.equal(text.split('\n').filter((l) => /^c\d\s/.test(l)).length, 10);
  assert.match(text, /^total\s+5\s+2$/m);
});
