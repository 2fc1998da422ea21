/**
 * Kernel -> Interrupt through a real tslab kernel, driven by the project's Node client as the
 * Notebook server drives it (interrupt_mode "signal": SIGINT to the kernel process), and Ctrl-C
 * during a headless run. Issue 29: the interrupted cell says where it stopped once, with no stack
 * trace or object dump.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { KernelClient, KernelMessage } from '../../src/jupyter/kernel-client';
import { distSrc, notebookSchemaErrors, readCells, writeNotebook, type Output } from './helpers';

const fixtures = path.resolve(distSrc, '..', 'test', 'train', 'fixtures');

const SETUP = `
import * as wb from ${JSON.stringify(distSrc)};
import * as fx from ${JSON.stringify(fixtures)};
import * as fs from "fs";
const s = await fx.tempSession(fx.testProfile([{ name: "all", trainable: "all", optimizer: "adam", lr: 0.01, epochs: 60 }], { batchSize: 8 }));
// Each batch blocks the thread for 150 ms, as a real wasm training step does, and leaves a mark.
const blocker = new Int32Array(new SharedArrayBuffer(4));
function* slow(set: any, o: any) {
  for (const b of new wb.preprocess.BatchStream(set, { ...o, mode: "unit", numClasses: 3 })) {
    Atomics.wait(blocker, 0, 0, 150);
    fs.appendFileSync(process.env.TLWB_TEST_MARKS!, "b\\n");
    yield b;
  }
}
const opts = { built: fx.tinyResnetLike(), data: fx.syntheticData(), progress: "auto" as const, saveModel: false, imageBatches: slow };
console.log("ready");
`;
const TRAIN = 'const r = await wb.train.train(s, opts);';
const RERUN = 'const again = await wb.train.train(s, { ...opts, built: fx.tinyResnetLike(5), stopAfterEpochs: 1 });\nconsole.log(JSON.stringify({ status: again.status, epochs: again.epochs, resumedFrom: again.resumedFrom }));';


/** Runs code in the kernel; the cell's streams and the last state of each display, as a browser shows them. */
async function run(kernel: KernelClient, code: string, onSent?: () => Promise<unknown>) {
  const streams: string[] = [];
  const displays = new Map<string, string>();
  let untitled = 0;
  const done = kernel.execute(code, (msg: KernelMessage) => {
    const c = msg.content as { name?: string; text?: string; data?: Record<string, string>; transient?: { display_id?: string } };
    if (msg.header.msg_type === 'stream') streams.push(c.text ?? '');
    else if (msg.header.msg_type === 'display_data' || msg.header.msg_type === 'update_display_data') {
      displays.set(c.transient?.display_id ?? `untitled-${untitled++}`, c.data?.['text/plain'] ?? '');
    }
  }, 300);
  const extra = onSent ? await onSent() : undefined;
  const result = await done;
  return { status: result.reply?.content.status, text: streams.join(''), shown: [...streams, ...displays.values()].join('\n'), extra };
}

const count = (marks: string) => (fs.existsSync(marks) ? fs.readFileSync(marks, 'utf8').split('\n').filter(Boolean).length : 0);
const STOP = /rerun this cell to resume/g;

/** The cell's result line (the last JSON object it printed); a warning Node writes after it must not hide it. */
function lastJsonLine(text: string): { status: string; epochs: number; resumedFrom: string } {
  const line = text.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no JSON result line in the cell's output:\n${text}`);
  return JSON.parse(line);
}

test('Kernel -> Interrupt stops a training cell within one batch with a checkpoint, says so once, and rerunning the cell resumes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-interrupt-'));
  const marks = path.join(dir, 'marks.txt');
  const kernel = await KernelClient.start({ cwd: dir, runtimeDir: dir, env: { TLWB_BACKEND: 'cpu', TLWB_TEST_MARKS: marks } });
  t.after(async () => {
    await kernel.shutdown(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const setup = await run(kernel, SETUP);
  assert.equal(setup.status, 'ok', setup.text);

  const train = await run(kernel, TRAIN, async () => {
    const deadline = Date.now() + 120_000;
    while (count(marks) < 15 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const at = count(marks);
    const t0 = Date.now();
    await kernel.interrupt();
    return { at, t0 };
  });
  const { at, t0 } = train.extra as { at: number; t0: number };
  const seconds = (Date.now() - t0) / 1000;
  const after = count(marks);
  // 12 training and 6 validation batches per epoch; interrupted in epoch 1's validation or later.
  assert.equal(train.status, 'error', 'the cell ends as interrupted (queued cells are not run on a half-trained model)');
  const m = /interrupted at epoch (\d+), batch (\d+): rerun this cell to resume from there \(checkpoint (epoch-\d+\+\d+)\)/.exec(train.text);
  assert.ok(m, `the cell says where it stopped, the checkpoint, and to rerun the cell:\n${train.text}`);
  assert.equal(train.shown.match(STOP)?.length, 1, `one stop sentence in what the cell shows:\n${train.shown}`);
  assert.doesNotMatch(train.shown, /^\s+at /m, 'no stack trace');
  assert.doesNotMatch(train.shown, /\{ epoch:|TrainingInterrupted/, 'no error object dump');
  assert.ok(after - at <= 2, `${after - at} batches ran after the interrupt (at most the one in progress and the next)`);
  t.diagnostic(`interrupt at mark ${at}, ${after - at} batch(es) after it, cell ended ${seconds.toFixed(2)} s later`);
  assert.ok(seconds < 10, `the cell ended ${seconds.toFixed(1)} s after the interrupt (60 epochs would take minutes)`);
  assert.equal(Number(m[1]), Math.floor((after - 1) / 18) + 1, 'epoch of the last batch');
  assert.equal(Number(m[2]), Math.min(12, ((after - 1) % 18) + 1), 'training batch within that epoch (12 when stopped in validation)');

  // tslab aborts requests that arrive within 200 ms of an error, as Run All's queued cells.
  await new Promise((r) => setTimeout(r, 500));
  // The rerun continues from the interrupt's checkpoint and finishes that epoch.
  const rerun = await run(kernel, RERUN);
  assert.equal(rerun.status, 'ok', rerun.text);
  const again = lastJsonLine(rerun.text);
  const warnings = rerun.text.split('\n').filter((l) => /Warning/.test(l));
  if (warnings.length) t.diagnostic(`the rerun cell also printed: ${warnings.join(' | ')}`);
  assert.equal(again.status, 'interrupted');
  assert.equal(again.epochs, Number(m[1]));
  // The interrupt's checkpoint: epoch-NNNN+BBBBBB is NNNN epochs done and BBBBBB batches of the next.
  const epochsDone = String(Number(m[1]) - 1).padStart(4, '0');
  assert.match(again.resumedFrom, new RegExp(`epoch-${epochsDone}\\+${m[2].padStart(6, '0')}$`));
  assert.equal(path.basename(again.resumedFrom), m[3], 'resumed from the checkpoint the stop sentence named');
});

test('Ctrl-C during a headless run interrupts the kernel: the training cell stops with a checkpoint, and the executed copy says so once', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-ctrlc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const marks = path.join(dir, 'marks.txt');
  const nb = writeNotebook(path.join(dir, '04-train.ipynb'), [SETUP, TRAIN, 'console.log("not reached");']);
  const out = path.join(dir, 'out');
  const runner = path.resolve(distSrc, 'jupyter', 'runner.js');
  const script = `require(${JSON.stringify(runner)}).runNotebooks([${JSON.stringify(nb)}], { outDir: ${JSON.stringify(out)}, timeoutSeconds: 300, echo: true })
    .then(() => process.exit(0), (e) => { console.log(JSON.stringify({ name: e.name, message: e.message, errorText: e.errorText, interrupted: e.interrupted })); process.exit(1); });`;
  const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, TLWB_BACKEND: 'cpu', TLWB_TEST_MARKS: marks }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const deadline = Date.now() + 180_000;
  while (count(marks) < 15 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 1, `runner exit (1: a cell failed)\n${stderr}`);
  const err = JSON.parse(stdout.trim().split('\n').pop()!);
  assert.equal(err.name, 'NotebookCellError');
  assert.equal(err.interrupted, true);
  assert.match(err.errorText, /^interrupted at epoch \d+, batch \d+: rerun this cell to resume from there \(checkpoint epoch-\d+\+\d+\)$/);
  assert.match(err.message, /04-train\.ipynb: cell 2 stopped by the interrupt; executed copy:/, 'the sentence was relayed already: not repeated');
  assert.match(stderr, /interrupting the kernel/);
  assert.equal(stderr.match(STOP)?.length, 1, `the terminal shows the stop sentence once:\n${stderr}`);
  // The executed copy up to the interrupt: the train cell's outputs hold the sentence once, no stack.
  const file = path.join(out, '04-train.ipynb');
  assert.deepEqual(notebookSchemaErrors(file), []);
  const outputs: Output[] = readCells(file)[1].outputs ?? [];
  const shown = outputs.map((o) => [o.text ?? '', o.data?.['text/plain'] ?? ''].flat().join('')).join('\n');
  assert.equal(shown.match(STOP)?.length, 1, shown);
  assert.doesNotMatch(shown, /^\s+at |\{ epoch:/m);
});
