import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readRunRow, runRows, runsTable, RUN_COLUMNS } from '../../src/results/runs';

function write(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
}

test('runsTable: one row per run folder, newest first, read from each run\'s files', () => {
  const runs = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-runs-'));
  const a = path.join(runs, '20260101-000000-smoke');
  const b = path.join(runs, '20260102-000000-quick');
  write(path.join(a, 'profile.json'), { name: 'smoke', model: { arch: 'darknet-tiny', inputSize: 64 } });
  write(path.join(a, 'train-summary.json'), { epochs: 3, finalValAccuracy: 0.41, wallSeconds: 62.345, backend: { choice: 'wasm', tfName: 'wasm' }, trainableByPhase: {} });
  // An older run's evaluation.json still has the 'first 1,000' subsets: read as before, the field ignored.
  write(path.join(a, 'evaluation.json'), { count: 10000, accuracy: 0.4, tta: { accuracy: 0.42 }, subsets: [{ name: 'first1000', accuracy: 0.43 }] });
  write(path.join(b, 'profile.json'), { name: 'quick', model: { arch: 'resnet50', inputSize: 224 } });
  write(path.join(b, 'train-summary.json'), '{ broken');
  write(path.join(runs, 'not-a-run', 'x.txt'), 'x');

  const rows = runRows(runs);
  assert.deepEqual(rows.map((r) => r.run), ['20260102-000000-quick', '20260101-000000-smoke']);
  assert.deepEqual(rows[1], {
    run: '20260101-000000-smoke', profile: 'smoke', backbone: 'darknet-tiny@64', backend: 'wasm', epochs: 3, wall_seconds: 62.3,
    val_accuracy: 0.41, test_accuracy: 0.4, test_images: 10000, tta_accuracy: 0.42, unreadable: null,
  });
  assert.equal(rows[0].backbone, 'resnet50@224');
  assert.equal(rows[0].epochs, null, 'an unreadable summary leaves its columns empty');
  assert.match(rows[0].unreadable ?? '', /^train-summary\.json: JSON object is not valid JSON \(/, 'and the row names the damaged file');
  assert.equal(readRunRow(b).test_accuracy, null);

  const df = runsTable(runs);
  assert.deepEqual(df.columns, RUN_COLUMNS);
  assert.equal(df.height, 2);
  assert.equal(df.getColumn('test_accuracy').get(1), 0.4);
  assert.deepEqual(df.getColumn('test_images').toArray(), [null, 10000]);
  assert.equal(runsTable(path.join(runs, 'missing')).height, 0);
  // per-phase epoch counts are summed
  write(path.join(b, 'train-summary.json'), { epochs: [{ epochs: 2 }, { epochs: 4 }], backend: 'cpu' });
  assert.equal(readRunRow(b).epochs, 6);
  assert.equal(readRunRow(b).backend, 'cpu');
  fs.rmSync(runs, { recursive: true });
});
