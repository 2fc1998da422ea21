import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import {
  historyFromRecords, readHistory, phaseSpans, phaseBoundaries, historySpec, trainingCurvesSpec, confusionMatrixSpec,
} from '../../src/results/charts';

async function toSvg(spec: Record<string, unknown>): Promise<string> {
  const compiled = vl.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

const CSV = [
  'phase,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds',
  'head,1,1.9,0.30,1.7,0.40,0.001,2.5',
  'head,2,1.5,0.45,1.4,0.50,0.001,2.4',
  'finetune,1,1.1,0.60,1.2,0.58,0.0001,9.0',
  'finetune,2,0.9,0.70,,,0.0001,9.1',
].join('\n');

function tmpRun(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-results-'));
}

test('readHistory numbers epochs over all phases and keeps missing validation as null', () => {
  const dir = tmpRun();
  fs.writeFileSync(path.join(dir, 'history.csv'), CSV);
  const rows = readHistory(dir);
  // [phase, epoch within the phase (the file's epoch column), epoch over all phases]
  assert.deepEqual(rows.map((r) => [r.phase, r.phase_epoch, r.epoch]), [
    ['head', 1, 1], ['head', 2, 2], ['finetune', 1, 3], ['finetune', 2, 4],
  ]);
  assert.equal(rows[3].val_accuracy, null);
  assert.equal(rows[2].lr, 0.0001);
  assert.deepEqual(phaseSpans(rows), [
    { phase: 'head', start: 1, end: 2 },
    { phase: 'finetune', start: 3, end: 4 },
  ]);
  assert.deepEqual(phaseBoundaries(rows), [{ x: 2.5, label: 'head → finetune' }]);
  fs.rmSync(dir, { recursive: true });
});

test('readHistory names the folder when there is no history, and skips per-step rows', () => {
  const dir = tmpRun();
  assert.throws(() => readHistory(dir), new RegExp(`${dir}: no training history`));
  const rows = historyFromRecords([
    { phase: 'a', epoch: 1, step: 10, loss: 3 },
    { phase: 'a', epoch: 1, step: null, loss: 2 },
  ]);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].loss, 2);
  assert.throws(() => historyFromRecords([{ loss: 1 }], 'h.csv'), /h.csv: row 1 lacks the column 'phase'/);
  fs.rmSync(dir, { recursive: true });
});

test('history specs render: two lines, one dashed rule per phase change, phase labels', async () => {
  const rows = historyFromRecords(CSV.split('\n').slice(1).map((l) => {
    const [phase, epoch, loss, accuracy, val_loss, val_accuracy] = l.split(',');
    return { phase, epoch, loss, accuracy, val_loss, val_accuracy };
  }));
  const spec = historySpec(rows, 'accuracy');
  const layers = spec.layer as { mark: { type: string }; data: { values: unknown[] } }[];
  assert.deepEqual(layers.map((l) => l.mark.type), ['line', 'rule', 'text']);
  assert.equal(layers[0].data.values.length, 7, '4 train + 3 validation points');
  assert.deepEqual(layers[1].data.values, [{ x: 2.5, label: 'head → finetune' }]);
  const svg = await toSvg(spec);
  assert.match(svg, /^<svg/);
  assert.equal((svg.match(/class="mark-line role-mark/g) ?? []).length, 2, 'train and validation lines');
  assert.match(svg, /class="mark-rule role-mark/);
  assert.match(svg, />finetune</);
  // one phase: no rule layer
  const single = historySpec(rows.slice(0, 2), 'loss');
  assert.deepEqual((single.layer as { mark: { type: string } }[]).map((l) => l.mark.type), ['line', 'text']);
  const both = await toSvg(trainingCurvesSpec(rows));
  assert.match(both, /accuracy per epoch/);
  assert.match(both, /loss per epoch/);
});

test('confusion-matrix spec: one rect and one count per cell, classes in given order', async () => {
  const classes = ['cat', 'dog', 'bird'];
  const m = [[5, 3, 0], [4, 6, 1], [0, 3, 2]];
  const spec = confusionMatrixSpec(m, classes);
  const values = (spec.data as { values: { actual: string; predicted: string; count: number; share: number }[] }).values;
  assert.equal(values.length, 9);
  assert.deepEqual(values[3], { actual: 'dog', predicted: 'cat', count: 4, share: 4 / 11 });
  const svg = await toSvg(spec);
  const rects = svg.match(/<path[^>]*aria-roledescription="rect"|role-mark[^"]*"[^>]*>/g);
  assert.ok(rects);
  const rectGroup = svg.split('mark-rect role-mark')[1].split('</g>')[0];
  assert.equal((rectGroup.match(/<path /g) ?? []).length, 9);
  const textGroup = svg.split('mark-text role-mark')[1];
  for (const n of ['5', '3', '4', '6', '1', '2']) assert.match(textGroup, new RegExp(`>${n}</text>`));
  assert.throws(() => confusionMatrixSpec(m, ['a']), /3 rows for 1 classes/);
});
