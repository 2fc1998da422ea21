/**
 * Kernel -> Interrupt through a real tslab kernel, driven by jupyter_client as the Notebook server
 * drives it (interrupt_mode "signal": SIGINT to the kernel process).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { ensureKernel, findJupyterPython, INSTALL_HINT, jupyterEnv } from '../../src/jupyter/kernel';
import { distSrc, writeNotebook } from './helpers';

const noJupyter = process.env.CI ? false : findJupyterPython() === null && INSTALL_HINT;
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
const opts = { built: fx.tinyResnetLike(), data: fx.syntheticData(), progress: "none" as const, saveModel: false, imageBatches: slow };
console.log("ready");
`;
const TRAIN = 'const r = await wb.train.train(s, opts);';
const RERUN = 'const again = await wb.train.train(s, { ...opts, built: fx.tinyResnetLike(5), stopAfterEpochs: 1 });\nconsole.log(JSON.stringify({ status: again.status, epochs: again.epochs, resumedFrom: again.resumedFrom }));';

const DRIVER = `
import json, os, sys, time
from jupyter_client.manager import start_new_kernel
job = json.load(open(sys.argv[1]))
marks = job["marks"]
def count():
    try:
        return len(open(marks).read().splitlines())
    except FileNotFoundError:
        return 0
km, kc = start_new_kernel(kernel_name="tslab", cwd=job["cwd"], startup_timeout=120)
def run(code, on_sent=None):
    msg_id = kc.execute(code)
    extra = on_sent() if on_sent else None
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=300)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        t = msg["msg_type"]
        if t == "stream":
            out.append(msg["content"]["text"])
        elif t == "error":
            out.append(msg["content"].get("evalue", ""))
        elif t == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]["status"], "".join(out), extra
result = {}
try:
    result["setup"] = run(job["setup"])[:2]
    def interrupt_when_training():
        deadline = time.time() + 120
        while count() < 15 and time.time() < deadline:
            time.sleep(0.05)
        at = count()
        t0 = time.time()
        km.interrupt_kernel()
        return {"at": at, "t0": t0}
    status, text, info = run(job["train"], interrupt_when_training)
    result["train"] = {"status": status, "text": text, "at": info["at"], "after": count(), "seconds": time.time() - info["t0"]}
    time.sleep(0.5)  # tslab aborts requests that arrive within 200 ms of an error, as Run All's queued cells
    result["rerun"] = run(job["rerun"])[:2]
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print(json.dumps(result))
`;

test('Kernel -> Interrupt stops a training cell within one batch with a checkpoint, and rerunning the cell resumes', { skip: noJupyter }, (t) => {
  const { python } = ensureKernel({ quiet: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-interrupt-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const marks = path.join(dir, 'marks.txt');
  const job = path.join(dir, 'job.json');
  fs.writeFileSync(job, JSON.stringify({ cwd: dir, marks, setup: SETUP, train: TRAIN, rerun: RERUN }));
  const r = spawnSync(python, ['-c', DRIVER, job], {
    encoding: 'utf8',
    env: jupyterEnv({ TLWB_BACKEND: 'cpu', TLWB_TEST_MARKS: marks }),
    timeout: 400_000,
  });
  assert.equal(r.status, 0, `driver failed: ${r.stderr}`);
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual(result.setup[0], 'ok', result.setup[1]);

  const train = result.train;
  // 12 training and 6 validation batches per epoch; interrupted in epoch 1's validation or later.
  assert.equal(train.status, 'error', 'the cell ends as interrupted (queued cells are not run on a half-trained model)');
  const m = /interrupted at epoch (\d+), batch (\d+): rerun to resume/.exec(train.text);
  assert.ok(m, `the cell says where it stopped:\n${train.text}`);
  assert.ok(train.after - train.at <= 2, `${train.after - train.at} batches ran after the interrupt (at most the one in progress and the next)`);
  t.diagnostic(`interrupt at mark ${train.at}, ${train.after - train.at} batch(es) after it, cell ended ${train.seconds.toFixed(2)} s later`);
  assert.ok(train.seconds < 10, `the cell ended ${train.seconds.toFixed(1)} s after the interrupt (60 epochs would take minutes)`);
  assert.equal(Number(m[1]), Math.floor((train.after - 1) / 18) + 1, 'epoch of the last batch');
  assert.equal(Number(m[2]), Math.min(12, ((train.after - 1) % 18) + 1), 'training batch within that epoch (12 when stopped in validation)');

  // The rerun continues from the interrupt's checkpoint and finishes that epoch.
  assert.equal(result.rerun[0], 'ok', result.rerun[1]);
  const again = JSON.parse(result.rerun[1].trim().split('\n').pop());
  assert.equal(again.status, 'interrupted');
  assert.equal(again.epochs, Number(m[1]));
  // The interrupt's checkpoint: epoch-NNNN+BBBBBB is NNNN epochs done and BBBBBB batches of the next.
  const epochsDone = String(Number(m[1]) - 1).padStart(4, '0');
  assert.match(again.resumedFrom, new RegExp(`epoch-${epochsDone}\\+${m[2].padStart(6, '0')}$`));
});

test('Ctrl-C during a headless run interrupts the kernel: the training cell stops with a checkpoint and the driver reports it', { skip: noJupyter }, async (t) => {
  const { python } = ensureKernel({ quiet: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-ctrlc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const marks = path.join(dir, 'marks.txt');
  const nb = writeNotebook(path.join(dir, '04-train.ipynb'), [SETUP, TRAIN, 'console.log("not reached");']);
  const job = path.join(dir, 'job.json');
  fs.writeFileSync(job, JSON.stringify({ notebooks: [{ input: nb, output: path.join(dir, 'out.ipynb'), cwd: dir }], timeout: 300, startupTimeout: 120, kernel: 'tslab', echo: false }));
  const driver = path.resolve(distSrc, '..', '..', 'src', 'jupyter', 'execute_notebooks.py');
  const child = spawn(python, [driver, job], { env: jupyterEnv({ TLWB_BACKEND: 'cpu', TLWB_TEST_MARKS: marks }), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const count = () => (fs.existsSync(marks) ? fs.readFileSync(marks, 'utf8').split('\n').filter(Boolean).length : 0);
  const deadline = Date.now() + 180_000;
  while (count() < 15 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 1, `driver exit (1: a cell failed)\n${stderr}`);
  const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
  const failed = events.find((e) => e.event === 'failed');
  assert.ok(failed, stdout);
  assert.match(failed.error, /interrupted at epoch \d+, batch \d+: rerun to resume/);
  assert.match(stderr, /interrupting the kernel/);
  assert.ok(fs.existsSync(path.join(dir, 'out.ipynb')), 'the executed copy up to the interrupt is written');
});
