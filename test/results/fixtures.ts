/**
 * A run folder as the pipeline leaves it, made by the tests: profile, history, evaluation and
 * executed notebooks whose outputs are what the display helpers really emit (SVG charts, HTML
 * tables, PNG image grids, streams, an error), plus outputs that point outside the page.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { chartBundle, tableHtml, imageGridHtml, pngBytes } from '../../src/display';
import { confusionMatrixSpec, historyFromRecords, trainingCurvesSpec } from '../../src/results/charts';
import { perClassTable } from '../../src/results/metrics';

export const FIXTURE_CLASSES = ['cat', 'dog', 'bird'];
export const FIXTURE_CONFUSION = [[5, 3, 0], [4, 6, 1], [0, 3, 2]];

const HISTORY = [
  { phase: 'head', epoch: 1, loss: 1.9, accuracy: 0.3, val_loss: 1.7, val_accuracy: 0.4 },
  { phase: 'head', epoch: 2, loss: 1.5, accuracy: 0.45, val_loss: 1.4, val_accuracy: 0.5 },
  { phase: 'finetune', epoch: 1, loss: 1.1, accuracy: 0.6, val_loss: 1.2, val_accuracy: 0.58 },
];

let cellId = 0;
function cell(type: 'markdown' | 'code', source: string, outputs: unknown[] = [], n?: number): Record<string, unknown> {
  const id = `cell-${++cellId}`;
  return type === 'markdown'
    ? { id, cell_type: 'markdown', metadata: {}, source }
    : { id, cell_type: 'code', metadata: {}, source, execution_count: n ?? null, outputs };
}

function notebook(cells: unknown[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'tslab', display_name: 'TypeScript', language: 'typescript' }, language_info: { name: 'typescript' } },
    cells,
  }, null, 1);
}

/** A 2x2 red/green/blue/white PNG as base64. */
export function tinyPngBase64(): string {
  return pngBytes(Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]), 2, 2).toString('base64');
}

/** Writes the fixture run into `runDir` (created) and returns the notebook paths. */
export async function makeFixtureRun(runDir: string): Promise<string[]> {
  const nbDir = path.join(runDir, 'notebooks');
  fs.mkdirSync(nbDir, { recursive: true });
  fs.writeFileSync(path.join(runDir, 'profile.json'), JSON.stringify({ name: 'fixture', data: { source: 'cifar10', imageSize: 32 }, model: { arch: 'darknet-tiny', inputSize: 64 } }));
  fs.writeFileSync(path.join(runDir, 'history.csv'), 'phase,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n' +
    HISTORY.map((h) => `${h.phase},${h.epoch},${h.loss},${h.accuracy},${h.val_loss},${h.val_accuracy},0.001,1`).join('\n'));
  const curves = await chartBundle(trainingCurvesSpec(historyFromRecords(HISTORY)) as never);
  const heat = await chartBundle(confusionMatrixSpec(FIXTURE_CONFUSION, FIXTURE_CLASSES) as never);
  const grid = imageGridHtml([0, 1, 2].map((i) => ({ rgb: new Uint8Array(8 * 8 * 3).fill(60 * i + 40), width: 8, height: 8, caption: `image ${i}` })));
  // a local picture referenced from markdown by a relative path (inlined by the report)
  const png = new PNG({ width: 3, height: 3 });
  png.data.fill(200);
  fs.writeFileSync(path.join(nbDir, 'figure.png'), PNG.sync.write(png));

  const nb1 = notebook([
    cell('markdown', '# 01 Fetch the data\n\nCIFAR-10, as in the [article](https://www.cs.toronto.edu/~kriz/cifar.html).\n\n![a figure](figure.png)\n\n![remote](https://example.com/remote.png)'),
    cell('code', 'import * as wb from "../dist/src";', [{ output_type: 'stream', name: 'stdout', text: ['backend: cpu\n', 'progress 10%\r progress 100%\n'] }], 1),
    cell('markdown', '## Sample images'),
    cell('code', 'wb.display.imageGrid(items);', [{ output_type: 'display_data', data: { 'text/html': grid, 'text/plain': '[image grid]' }, metadata: {} }], 2),
    cell('code', 'png', [{ output_type: 'display_data', data: { 'image/png': tinyPngBase64(), 'text/plain': '<img>' }, metadata: {} }], 3),
  ]);
  const nb5 = notebook([
    cell('markdown', '# 05 Results\n\nHow the model did.'),
    cell('markdown', '## Training curves'),
    cell('code', 'await wb.display.chart(curves);', [{ output_type: 'display_data', data: curves, metadata: {} }], 1),
    cell('markdown', '## Confusion matrix'),
    cell('code', 'await wb.display.chart(heat);', [{ output_type: 'display_data', data: heat, metadata: {} }], 2),
    cell('code', 'wb.display.table(perClass);', [{ output_type: 'display_data', data: { 'text/html': tableHtml(perClassTable(FIXTURE_CONFUSION, FIXTURE_CLASSES)), 'text/plain': 'table' }, metadata: {} }], 3),
    cell('code', 'wb.display.html(widget);', [{
      output_type: 'display_data',
      data: { 'text/html': '<script src="https://cdn.example.com/require.js"></script><link rel="stylesheet" href="https://cdn.example.com/x.css"><img src="file:///nonexistent/x.png" alt="gone"><div style="background:url(https://example.com/bg.png)">styled</div>' },
      metadata: {},
    }], 4),
    cell('code', 'throw new Error("boom")', [{ output_type: 'error', ename: 'Error', evalue: 'boom', traceback: ['\u001b[31mError: boom\u001b[0m', '    at cell 5'] }], 5),
  ]);
  const files = [path.join(nbDir, '01-fetch.ipynb'), path.join(nbDir, '05-results.ipynb')];
  fs.writeFileSync(files[0], nb1);
  fs.writeFileSync(files[1], nb5);
  return files;
}

/** Class names that hold markup, quotes, src=, onload= and </svg>: each must show as written and run nothing. */
export const HOSTILE_CLASSES = [
  'p src=data:, onload=alert(1) q',
  '<img src=x onerror=alert(2)>',
  '"quoted" & \'single\'',
  '</svg><svg onload=alert(3)>',
  'x" onmouseover="alert(4)',
  // issue 25: text that looks like a script URL, in alt and title, is escaped and shown, not refused
  'javascript:alert(3)',
];

/**
 * A run whose notebooks show HOSTILE_CLASSES the way the pipeline does: an image grid captioned
 * with them, a per-class table, a confusion-matrix chart (SVG and its <img> form), a markdown cell,
 * and a text/html output that tries the sanitizer's old weak spot (src= inside an escaped alt).
 */
export async function makeHostileRun(runDir: string): Promise<string[]> {
  const nbDir = path.join(runDir, 'notebooks');
  fs.mkdirSync(nbDir, { recursive: true });
  fs.writeFileSync(path.join(runDir, 'profile.json'), JSON.stringify({ name: 'hostile', data: { source: 'folder', imageSize: 8 }, model: { arch: 'darknet-tiny', inputSize: 64 } }));
  const confusion = HOSTILE_CLASSES.map((_c, i) => HOSTILE_CLASSES.map((_d, j) => (i === j ? 4 : 1)));
  const heat = await chartBundle(confusionMatrixSpec(confusion, HOSTILE_CLASSES) as never);
  const grid = imageGridHtml(HOSTILE_CLASSES.map((c, i) => ({ rgb: new Uint8Array(8 * 8 * 3).fill(30 * i + 40), width: 8, height: 8, caption: c })));
  const oldAttack = `<img src="data:image/png;base64,${tinyPngBase64()}" alt="${'p src=data:, onload=alert(1) q'.replace(/"/g, '&quot;')}"/>`;
  const nb = notebook([
    cell('markdown', '# 01 Hostile names\n\nClasses: ' + HOSTILE_CLASSES.map((c) => '`' + c + '`').join(', ')),
    cell('code', 'wb.display.imageGrid(items);', [{ output_type: 'display_data', data: { 'text/html': grid, 'text/plain': '[grid]' }, metadata: {} }], 1),
    cell('code', 'wb.display.table(perClass);', [{ output_type: 'display_data', data: { 'text/html': tableHtml(perClassTable(confusion, HOSTILE_CLASSES)), 'text/plain': 'table' }, metadata: {} }], 2),
    cell('code', 'await wb.display.chart(heat);', [{ output_type: 'display_data', data: heat, metadata: {} }], 3),
    cell('code', 'await wb.display.chart(heat);', [{ output_type: 'display_data', data: { 'text/html': heat['text/html'] }, metadata: {} }], 4),
    cell('code', 'wb.display.html(old);', [{ output_type: 'display_data', data: { 'text/html': oldAttack }, metadata: {} }], 5),
    cell('code', 'names', [{ output_type: 'execute_result', data: { 'text/plain': HOSTILE_CLASSES.join('\n') }, metadata: {} }], 6),
  ]);
  const file = path.join(nbDir, '01-hostile.ipynb');
  fs.writeFileSync(file, nb);
  return [file];
}
