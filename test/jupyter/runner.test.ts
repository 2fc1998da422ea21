import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ensureKernel, findJupyterPython, INSTALL_HINT, jupyterEnv } from '../../src/jupyter/kernel';
import { NotebookCellError, RunnerEvent, runNotebooks, listNotebooks, cellTimeout, removeStaleJobDirs } from '../../src/jupyter/runner';
import { distSrc, notebookSchemaErrors, readCells, streamText, writeNotebook } from './helpers';

// The runner needs no Python; nbconvert's HTML export does. Without a Python that has Jupyter that
// part is skipped; in CI (.ci/run installs it) that is a failure.
const noJupyter = process.env.CI ? false : findJupyterPython() === null && INSTALL_HINT;

test('listNotebooks finds NN-name.ipynb in numeric order only', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-list-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of ['02-b.ipynb', '01-a.ipynb', 'scratch.ipynb', '10-z.ipynb', '03-c.txt']) fs.writeFileSync(path.join(dir, f), '{}');
  assert.deepEqual(listNotebooks(dir).map((f) => path.basename(f)), ['01-a.ipynb', '02-b.ipynb', '10-z.ipynb']);
  assert.deepEqual(listNotebooks(path.join(dir, 'absent')), []);
});

test('cellTimeout: option, then TLWB_CELL_TIMEOUT, 0 = none, junk rejected', () => {
  assert.equal(cellTimeout('90'), 90);
  assert.equal(cellTimeout(0), null);
  assert.throws(() => cellTimeout('soon'), /expected seconds >= 0.*'soon'/);
});

test('runner executes real tslab notebooks in order and stops at the first failing cell', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-nb-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'out');
  const ok = writeNotebook(path.join(dir, '01-ok.ipynb'), [
    { markdown: '# A tiny notebook' },
    `import * as display from ${JSON.stringify(path.join(distSrc, 'display'))};\nconsole.log("env", process.env.TLWB_TEST_MARK);`,
    // A spec held in a variable (mark widened to string) must still be accepted.
    `const spec = {data: {values: [{k: "a", n: 1}, {k: "b", n: 2}]}, mark: "bar",\n  encoding: {x: {field: "k", type: "nominal"}, y: {field: "n", type: "quantitative"}}};\nawait display.chart(spec);`,
    `display.table([{cls: "cat", count: 7}]);\nconsole.log(6 * 7);`,
    `const progress = display.live();\nfor (const step of [1, 2, 3]) progress.html(\`<p>step \${step}</p>\`);`,
  ]);
  const bad = writeNotebook(path.join(dir, '02-bad.ipynb'), [
    { markdown: 'fails in its third cell' },
    'const fine = 1;',
    `function explode(): never { throw new Error("the answer is not " + (fine + 1)); }\nexplode();`,
    'console.log("must not run");',
  ]);
  const never = writeNotebook(path.join(dir, '03-never.ipynb'), ['console.log("after the failure");']);

  const events: RunnerEvent[] = [];
  const err = await runNotebooks([ok, bad, never], {
    outDir: out,
    env: { TLWB_TEST_MARK: 'marked-42' },
    timeoutSeconds: 120,
    onEvent: (e) => events.push(e),
  }).then(
    () => assert.fail('the failing notebook should reject'),
    (e: unknown) => e,
  );

  assert.ok(err instanceof NotebookCellError, String(err));
  assert.equal(err.notebook, bad);
  assert.equal(err.cellNumber, 3, 'third cell of the notebook');
  assert.equal(err.codeCellNumber, 2);
  assert.match(err.errorText, /the answer is not 2/);
  assert.doesNotMatch(err.errorText, /tslab[/\\]dist/, 'kernel frames trimmed');
  assert.match(err.message, /02-bad\.ipynb: cell 3 \(code cell 2\) failed/);
  assert.match(err.message, /the answer is not 2/);

  // The good notebook ran completely, with env, chart (SVG + Vega-Lite) and table outputs.
  const cells = readCells(path.join(out, '01-ok.ipynb'));
  assert.match(streamText(cells[1].outputs), /env marked-42/);
  const chart = cells[2].outputs?.find((o) => o.output_type === 'display_data');
  assert.ok(chart?.data, 'chart display_data');
  assert.match(String(chart.data['image/svg+xml']), /<svg[\s\S]*role-mark/);
  assert.ok(chart.data['application/vnd.vegalite.v5+json'], 'vega-lite mime');
  assert.match([chart.data['text/html']].flat().join(''), /^<img src="data:image\/svg\+xml;base64,/);
  const table = cells[3].outputs?.find((o) => o.output_type === 'display_data');
  assert.match(String(table?.data?.['text/html']), /<td>cat<\/td>/);
  assert.match(streamText(cells[3].outputs), /^42$/m);
  // A live display is one output, updated in place to its last content.
  const live = cells[4].outputs ?? [];
  assert.equal(live.length, 1, JSON.stringify(live));
  assert.equal([live[0].data?.['text/html']].flat().join(''), '<p>step 3</p>');
  assert.deepEqual(cells.filter((c) => c.cell_type === 'code').map((c) => c.execution_count), [1, 2, 3, 4]);
  // Two console.log calls are one stream output, as Jupyter saves them.
  assert.equal(cells[3].outputs?.filter((o) => o.output_type === 'stream').length, 1);
  // Both executed copies are valid nbformat 4 (the published schema, as nbformat.validate checks).
  for (const f of ['01-ok.ipynb', '02-bad.ipynb']) assert.deepEqual(notebookSchemaErrors(path.join(out, f)), []);
  // nbclient's timing record: busy, reply and idle, in order.
  const timing = (JSON.parse(fs.readFileSync(path.join(out, '01-ok.ipynb'), 'utf8')).cells[1].metadata.execution ?? {}) as Record<string, string>;
  assert.ok(timing['iopub.status.busy'] <= timing['shell.execute_reply'] && timing['shell.execute_reply'] <= timing['iopub.status.idle'], JSON.stringify(timing));

  // Its HTML export carries the chart as inline SVG and the table as HTML: nothing to fetch.
  await t.test('nbconvert exports the executed notebook to HTML', { skip: noJupyter }, () => {
    const exported = spawnSync(ensureKernel({ quiet: true }).python, ['-m', 'nbconvert', '--to', 'html', '--stdout', path.join(out, '01-ok.ipynb')], {
      encoding: 'utf8',
      env: jupyterEnv(),
      maxBuffer: 64 << 20,
    });
    assert.equal(exported.status, 0, exported.stderr);
    const svgUri = exported.stdout.match(/<img src="data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)"/);
    assert.ok(svgUri, 'the chart as an SVG data-URI image');
    assert.match(Buffer.from(svgUri[1], 'base64').toString('utf8'), /^<svg[\s\S]*role-mark[\s\S]*<\/svg>$/);
    assert.match(exported.stdout, /<td>cat<\/td>/);
  });

  // The failing notebook's executed copy stops at the failure; the next notebook never ran.
  const badCells = readCells(path.join(out, '02-bad.ipynb'));
  assert.match(streamText(badCells[2].outputs, 'stderr'), /the answer is not 2/);
  assert.equal(streamText(badCells[3].outputs), '');
  assert.equal(fs.existsSync(path.join(out, '03-never.ipynb')), false);
  assert.deepEqual(
    events.filter((e) => e.event !== 'cell').map((e) => `${e.event} ${path.basename(e.notebook)}`),
    ['start 01-ok.ipynb', 'done 01-ok.ipynb', 'start 02-bad.ipynb', 'failed 02-bad.ipynb'],
  );
});

test('issue 11: job folders of dead runs (a SIGKILLed run) are removed, those of live runs kept', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-jobs-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const job = (name: string, content: unknown, ageDays = 0) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'job.json'), JSON.stringify(content));
    const when = new Date(Date.now() - ageDays * 24 * 3600 * 1000);
    fs.utimesSync(dir, when, when);
    return dir;
  };
  // a process that has exited: its pid names no live process now
  const gone = spawnSync(process.execPath, ['-e', '0']).pid as number;
  const dead = job('tlwb-run-dead', { pid: gone, notebooks: [] });
  const live = job('tlwb-run-live', { pid: process.pid, notebooks: [] });
  const oldUnowned = job('tlwb-run-old', { notebooks: [] }, 8);
  const newUnowned = job('tlwb-run-new', { notebooks: [] }, 0);
  const other = job('someone-else', { pid: gone });
  assert.deepEqual(removeStaleJobDirs(tmp).sort(), [dead, oldUnowned].sort());
  for (const d of [live, newUnowned, other]) assert.ok(fs.existsSync(d), d);
});

test('with echo, the runner relays the training log of a live progress display as it arrives (not the status line)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-relay-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const nb = writeNotebook(path.join(dir, '01-train.ipynb'), [
    `import * as progress from ${JSON.stringify(path.join(distSrc, 'train', 'progress'))};
const p = progress.createProgress("live", 3);
p.phaseStart({ phase: "head", phaseIndex: 0, phases: 1, epochs: 3, startEpoch: 0, stepsPerEpoch: 2, cached: true });
const rows: any[] = [];
for (let e = 1; e <= 3; e++) {
  p.batch(1, 1 / e, 0.5, 0.001);
  const row = { phase: "head", phase_index: 0, epoch: e, phase_epoch: e, loss: 1 / e, accuracy: 0.5, val_loss: 1, val_accuracy: 0.4, lr: 0.001, seconds: 0.1, cached: true };
  rows.push(row);
  await p.epochEnd(row, rows);
}
p.end();`,
  ]);
  let relayed = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => ((relayed += String(chunk)), true)) as typeof process.stderr.write;
  try {
    await runNotebooks([nb], { outDir: path.join(dir, 'out'), echo: true, timeoutSeconds: 120 });
  } finally {
    process.stderr.write = write;
  }
  assert.match(relayed, /phase 1\/1 'head': epochs 1\.\.3, 2 steps each/);
  const epochs = relayed.split('\n').filter((l) => /^\[head \d\] epoch \d\/3: loss/.test(l));
  assert.deepEqual(epochs.map((l) => l.slice(0, 18)), ['[head 1] epoch 1/3', '[head 2] epoch 2/3', '[head 3] epoch 3/3'], 'each epoch line once');
  assert.doesNotMatch(relayed, /step 1\/2 loss/, 'the per-batch status line stays in the notebook');
  // The executed notebook keeps the whole log in the display and drops the live chart at the end.
  const out = readCells(path.join(dir, 'out', '01-train.ipynb'))[0].outputs ?? [];
  const html = [out.find((o) => o.output_type === 'display_data')?.data?.['text/html']].flat().join('');
  assert.match(html, /\[head 3\] epoch 3\/3/);
  assert.doesNotMatch(html, /<svg|<img/, 'no chart left in the final state');
});

test('a cell over the time limit and a kernel that dies each stop the run, named', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-limits-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const slow = writeNotebook(path.join(dir, '01-slow.ipynb'), ['console.log("before");', 'await new Promise((r) => setTimeout(r, 60_000));']);
  const t0 = Date.now();
  const timedOut = await runNotebooks([slow], { outDir: path.join(dir, 'out'), timeoutSeconds: 2 }).then(
    () => assert.fail('the slow cell should time out'),
    (e: unknown) => e,
  );
  assert.ok(timedOut instanceof NotebookCellError, String(timedOut));
  assert.equal(timedOut.cellNumber, 2);
  assert.match(timedOut.errorText, /^timed out after 2 s \(set --timeout or TLWB_CELL_TIMEOUT\)/);
  assert.ok(Date.now() - t0 < 40_000, 'the kernel was stopped, not waited for');
  assert.match(streamText(readCells(path.join(dir, 'out', '01-slow.ipynb'))[0].outputs), /before/);

  const dying = writeNotebook(path.join(dir, '02-dies.ipynb'), ['process.exit(3);', 'console.log("not reached");']);
  const died = await runNotebooks([dying], { outDir: path.join(dir, 'out'), timeoutSeconds: 60 }).then(
    () => assert.fail('the kernel exit should fail the run'),
    (e: unknown) => e,
  );
  assert.ok(died instanceof NotebookCellError, String(died));
  assert.equal(died.cellNumber, 1);
  assert.match(died.errorText, /the kernel died \(exit code 3\)/);
  assert.deepEqual(notebookSchemaErrors(path.join(dir, 'out', '02-dies.ipynb')), []);
});
