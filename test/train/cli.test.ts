/**
 * The command line on real data (skipped without ../shared/data): kill a training process after
 * its first checkpoint, resume it, and compare with an uninterrupted run. And the smoke profile's
 * accuracy on a small real CIFAR-10 subset.
 */
import { inferenceEngine } from '../../src/model/engine';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pl from 'nodejs-polars';
import { loadProfile, projectRoot } from '../../src/config';

const cifar = process.env.CIFAR10_DIR ?? path.resolve(projectRoot, '../shared/data/cifar-10-batches-bin');
const darknet = process.env.DARKNET_TINY_DIR ?? path.resolve(projectRoot, '../shared/data/darknet-tiny');
const missing = !fs.existsSync(path.join(cifar, 'data_batch_1.bin')) || !fs.existsSync(path.join(darknet, 'model.json'))
  ? 'needs ../shared/data (CIFAR-10 binary and darknet-tiny)'
  : false;
const cli = path.join(projectRoot, 'dist/src/cli.js');

function env(dataDir: string): NodeJS.ProcessEnv {
  return { ...process.env, TLWB_DATA_DIR: dataDir, CIFAR10_DIR: cifar, TLWB_SET: '', TLWB_PROFILE: '', TLWB_RUN_DIR: '' };
}

// Slow enough epochs to kill in the middle: no feature cache, so the base runs in every epoch.
const SETS = ['data.trainLimit=500', 'data.testLimit=10', 'model.inputSize=32', 'train.featureCache=false', 'train.phases.0.epochs=3', 'train.batchSize=50'];
const setArgs = SETS.flatMap((s) => ['--set', s]);

function records(runDir: string, file = 'history.csv'): Record<string, unknown>[] {
  return pl.readCSV(path.join(runDir, file)).toRecords().map(({ seconds: _s, ...r }) => r);
}

/** The uninterrupted run of SETS, trained once for the kill tests (in a folder removed at exit). */
let uninterrupted: string | undefined;
function uninterruptedRun(): string {
  if (uninterrupted) return uninterrupted;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-cli-full-'));
  process.on('exit', () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const fullDir = path.join(dataDir, 'full');
  const full = spawnSync(process.execPath, [cli, 'train', '--profile', 'smoke', ...setArgs, '--run-dir', fullDir, '--json', '--progress', 'none'], { env: env(dataDir), encoding: 'utf8' });
  assert.equal(full.status, 0, full.stderr);
  return (uninterrupted = fullDir);
}

/** Starts `cli train` with `args`, waits until `ready(runDir)`, then SIGKILLs it as a session's end would. */
async function killWhen(dataDir: string, runDir: string, args: string[], ready: () => boolean): Promise<void> {
  const child = spawn(process.execPath, [cli, 'train', ...args, '--run-dir', runDir, '--json', '--progress', 'none'], {
    env: env(dataDir),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!ready()) {
    if (child.exitCode !== null) throw new Error(`train exited (${child.exitCode}) before it was killed: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`not ready to kill within 90 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  await exited;
}

test('cli train: killed after the first checkpoint, resumed, equals an uninterrupted run', { skip: missing, timeout: 120_000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-cli-'));
  const killedDir = path.join(dataDir, 'killed');
  const pointer = path.join(killedDir, 'checkpoints', 'latest.json');
  await killWhen(dataDir, killedDir, ['--profile', 'smoke', ...setArgs], () => fs.existsSync(pointer));
  assert.ok(!fs.existsSync(path.join(killedDir, 'train-summary.json')), 'the run was killed before it finished');
  const state = JSON.parse(fs.readFileSync(path.join(killedDir, 'train-state.json'), 'utf8')).status;
  assert.equal(state, 'running');

  const resumed = spawnSync(process.execPath, [cli, 'train', '--resume', killedDir, '--json', '--progress', 'none'], { env: env(dataDir), encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  const out = JSON.parse(resumed.stdout.trim().split('\n').pop()!);
  assert.equal(out.runDir, killedDir);
  assert.equal(out.epochs, 3);
  assert.equal(out.history, path.join(killedDir, 'history.csv'));

  const fullDir = uninterruptedRun();
  const a = records(killedDir);
  assert.deepEqual(a.map((r) => r.epoch), [1, 2, 3], 'each epoch exactly once');
  assert.deepEqual(a, records(fullDir), 'same numbers as the uninterrupted run');

  // A finished run reports itself and trains no further.
  const again = spawnSync(process.execPath, [cli, 'train', '--resume', killedDir, '--json', '--progress', 'none'], { env: env(dataDir), encoding: 'utf8' });
  assert.equal(JSON.parse(again.stdout.trim()).status, 'already-finished');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('cli train with checkpointEveryMinutes: SIGKILLed inside an epoch, resumed inside it, equals an uninterrupted run batch for batch', { skip: missing, timeout: 180_000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-cli-periodic-'));
  const killedDir = path.join(dataDir, 'killed');
  const pointer = path.join(killedDir, 'checkpoints', 'latest.json');
  const latest = () => (fs.existsSync(pointer) ? (JSON.parse(fs.readFileSync(pointer, 'utf8')).checkpoint as string) : '');
  // 0.001 minutes: a checkpoint after nearly every batch. Killed once one lands inside epoch 2.
  await killWhen(dataDir, killedDir, ['--profile', 'smoke', ...setArgs, '--set', 'train.checkpointEveryMinutes=0.001'], () => /^epoch-0001\+\d{6}$/.test(latest()));
  assert.ok(!fs.existsSync(path.join(killedDir, 'train-summary.json')), 'killed before it finished');

  const resumed = spawnSync(process.execPath, [cli, 'train', '--resume', killedDir, '--json', '--progress', 'lines'], { env: env(dataDir), encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  const out = JSON.parse(resumed.stdout.trim().split('\n').pop()!);
  assert.equal(out.epochs, 3);
  assert.match(out.resumedFrom, /epoch-0001\+\d{6}$/, 'resumed inside epoch 2');
  assert.match(resumed.stderr, /resuming .* \(phase 'head', 1 epochs done, and \d+ batches of epoch 2\)/);

  const fullDir = uninterruptedRun();
  assert.deepEqual(records(killedDir), records(fullDir), 'epochs: same numbers as the uninterrupted run');
  assert.deepEqual(records(killedDir, 'history-batches.csv'), records(fullDir, 'history-batches.csv'), 'batches: same numbers');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('smoke profile: well above chance on a small real CIFAR-10 subset, in about a minute', { skip: missing, timeout: 180_000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-smoke-'));
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cli, 'train', '--profile', 'smoke', '--json', '--progress', 'none'], { env: env(dataDir), encoding: 'utf8' });
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim());
  assert.ok(out.finalValAccuracy > 0.35, `val accuracy ${out.finalValAccuracy} (chance 0.10) after ${seconds.toFixed(0)} s`);
  const summary = JSON.parse(fs.readFileSync(path.join(out.runDir, 'train-summary.json'), 'utf8'));
  assert.equal(summary.profile, 'smoke');
  assert.ok(summary.trainableByPhase.head > 0 && summary.trainableByPhase.head < 20_000, JSON.stringify(summary.trainableByPhase));
  assert.ok(fs.existsSync(path.join(out.runDir, 'model', 'model.json')));
  assert.ok(fs.readdirSync(path.join(dataDir, 'cache', 'features')).length === 1, 'features cached once');
  // The cached features came from the inference engine this machine chooses (ONNX Runtime where it loads).
  assert.equal(summary.featureEngine, inferenceEngine({ quiet: true }).name);
  process.stderr.write(`smoke: val accuracy ${out.finalValAccuracy} in ${seconds.toFixed(1)} s\n`);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** sha256 of every checkpoint file of a run. */
function checkpointHashes(runDir: string): Record<string, string> {
  const root = path.join(runDir, 'checkpoints');
  const out: Record<string, string> = {};
  for (const d of fs.readdirSync(root)) {
    const p = path.join(root, d);
    const files = fs.statSync(p).isDirectory() ? fs.readdirSync(p).map((f) => path.join(d, f)) : [d];
    for (const f of files) out[f] = crypto.createHash('sha256').update(fs.readFileSync(path.join(root, f))).digest('hex');
  }
  return out;
}

test('cli lr-find --profile smoke --json: a finite suggested rate inside the sweep; the run folder\'s weights unchanged', { skip: missing, timeout: 180_000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-lrfind-'));
  const trained = spawnSync(process.execPath, [cli, 'train', '--profile', 'smoke', '--set', 'train.phases.0.epochs=2', '--json', '--progress', 'none'], { env: env(dataDir), encoding: 'utf8' });
  assert.equal(trained.status, 0, trained.stderr);
  const runDir = JSON.parse(trained.stdout.trim()).runDir;
  const before = checkpointHashes(runDir);
  // A newer smoke run made on another (since removed) image folder is not "the newest run of smoke" for
  // a command that asks for smoke's own settings, nor for one that asks for other --set values.
  const other = path.join(dataDir, 'runs', '99991231-235959-smoke');
  fs.mkdirSync(other, { recursive: true });
  fs.writeFileSync(path.join(other, 'profile.json'), JSON.stringify(loadProfile('smoke', ['data.source=folder', `data.dir=${path.join(dataDir, 'gone')}`])));
  const r = spawnSync(process.execPath, [cli, 'lr-find', '--profile', 'smoke', '--set', 'train.phases.0.epochs=2', '--json'], { env: env(dataDir), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim());
  assert.equal(out.runDir, runDir, 'the newest smoke run with these settings');
  const asked = spawnSync(process.execPath, [cli, 'lr-find', '--profile', 'smoke', '--set', 'data.trainLimit=500', '--iterations', '10', '--json'], { env: env(dataDir), encoding: 'utf8' });
  assert.equal(asked.status, 0, asked.stderr);
  const setup = JSON.parse(asked.stdout.trim());
  assert.equal(setup.profile.data.trainLimit, 500, 'the --set value is measured');
  assert.ok(![runDir, other].includes(setup.runDir), `a run of its own, not ${setup.runDir}`);
  assert.ok(Number.isFinite(out.suggestedLr) && out.suggestedLr >= out.minLr && out.suggestedLr <= out.maxLr, JSON.stringify({ ...out, points: out.points.length }));
  assert.ok(out.points.length >= 10 && out.points.length <= 100);
  assert.deepEqual(checkpointHashes(runDir), before);
  process.stderr.write(`lr-find smoke: suggested ${out.suggestedLr} (${out.points.length} points, ${out.stopped})\n`);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('cli train smoke with sgd at lr 1e38: exits non-zero, train-summary.json says diverged with the step', { skip: missing, timeout: 180_000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-diverge-'));
  const runDir = path.join(dataDir, 'run');
  const r = spawnSync(process.execPath, [cli, 'train', '--profile', 'smoke', '--set', 'train.phases.0.optimizer=sgd', '--set', 'train.phases.0.lr=1e38', '--run-dir', runDir, '--json', '--progress', 'none'], { env: env(dataDir), encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /training diverged/);
  const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'train-summary.json'), 'utf8'));
  assert.equal(summary.status, 'diverged');
  assert.equal(summary.diverged.phase, 'head');
  assert.ok(summary.diverged.step >= 1);
  assert.equal(JSON.parse(fs.readFileSync(path.join(runDir, 'train-state.json'), 'utf8')).status, 'diverged');
  fs.rmSync(dataDir, { recursive: true, force: true });
});
