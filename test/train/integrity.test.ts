/**
 * Issue 11, the trainer's side: divergence caught at the source, checkpoints with integrity, one
 * trainer per run folder. Each case failed before the fix (see notes/issue-11-trainer-parts.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Phase } from '../../src/config';
import { train, history, readTrainState, RunFolderBusyError, LOCK_FILE, TRAIN_STATE_FILE } from '../../src/train';
import { syntheticData, testProfile, tempSession, tinyResnetLike, numbersOf } from './fixtures';

const allPhase: Phase = { name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 3 };
const opts = () => ({ built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none' as const, saveModel: false });

/** A run interrupted after 2 epochs (checkpoints epoch-0001 and epoch-0002) and the uninterrupted run's history. */
async function interruptedRun(): Promise<{ runDir: string; full: Record<string, unknown>[] }> {
  const a = await tempSession(testProfile([allPhase]));
  await train(a, opts());
  const full = numbersOf(history(a.runDir).toRecords());
  const b = await tempSession(testProfile([allPhase]));
  await train(b, { ...opts(), stopAfterEpochs: 2 });
  return { runDir: b.runDir, full };
}

const ck = (runDir: string, epoch: number, file: string) => path.join(runDir, 'checkpoints', `epoch-000${epoch}`, file);

for (const [what, damage, why] of [
  ['a truncated weights.bin', (f: string) => fs.truncateSync(f, 100), /weights\.bin: 100 bytes, expected \d+ \(truncated\?\)/],
  ['random bytes of the right size in weights.bin', (f: string) => fs.writeFileSync(f, crypto.randomBytes(fs.statSync(f).size)), /weights\.bin: sha256 .* \(corrupted\)/],
] as const) {
  test(`resume skips ${what} for the previous checkpoint, names it, and ends as the uninterrupted run`, async () => {
    const { runDir, full } = await interruptedRun();
    damage(ck(runDir, 2, 'weights.bin'));
    const r = await train({ ...(await tempSessionFor(runDir)) }, opts());
    assert.equal(r.status, 'finished');
    assert.ok(r.resumedFrom?.endsWith('epoch-0001'), r.resumedFrom);
    assert.equal(r.skipped!.length, 1);
    assert.match(r.skipped![0].why, why);
    assert.ok(r.skipped![0].path.endsWith('epoch-0002'));
    assert.deepEqual(numbersOf(history(runDir).toRecords()), full);
  });
}

test('a broken state.json is skipped with its file named; a broken latest.json is named and the newest intact checkpoint used', async () => {
  const { runDir, full } = await interruptedRun();
  fs.writeFileSync(ck(runDir, 2, 'state.json'), '{"version": 1, "sta');
  fs.writeFileSync(path.join(runDir, 'checkpoints', 'latest.json'), '{not json');
  const r = await train(await tempSessionFor(runDir), opts());
  assert.ok(r.resumedFrom?.endsWith('epoch-0001'));
  const whys = r.skipped!.map((s) => `${s.path}: ${s.why}`).join('\n');
  assert.match(whys, /latest\.json: the latest-checkpoint pointer is not valid JSON/);
  assert.match(whys, /epoch-0002\/state\.json: \d+ bytes, expected \d+|epoch-0002\/state\.json: sha256/);
  assert.deepEqual(numbersOf(history(runDir).toRecords()), full);
});

test('issue 25 case 8: checkpoints that latest.json names but that are gone are named; the resume falls back, or says it starts over', async () => {
  const { runDir, full } = await interruptedRun();
  fs.rmSync(path.join(runDir, 'checkpoints', 'epoch-0002'), { recursive: true });
  const r = await train(await tempSessionFor(runDir), opts());
  assert.ok(r.resumedFrom?.endsWith('epoch-0001'), r.resumedFrom);
  assert.equal(r.skipped!.length, 1);
  assert.ok(r.skipped![0].path.endsWith(path.join('checkpoints', 'epoch-0002')));
  assert.match(r.skipped![0].why, /missing \(.*latest\.json names it as the latest checkpoint, 2 epochs done\)/);
  assert.deepEqual(numbersOf(history(runDir).toRecords()), full);

  // Every checkpoint gone: the resume says what it looked for and that it starts over.
  const again = await interruptedRun();
  for (const n of ['epoch-0001', 'epoch-0002']) fs.rmSync(path.join(again.runDir, 'checkpoints', n), { recursive: true });
  const s = await tempSessionFor(again.runDir);
  const r2 = await train(s, opts());
  assert.equal(r2.resumedFrom, undefined, 'started over');
  assert.match(r2.skipped!.map((k) => `${k.path}: ${k.why}`).join('\n'), /epoch-0002: missing \(.*latest\.json names it/);
  assert.deepEqual(numbersOf(history(again.runDir).toRecords()), again.full);
});

test('a temporary checkpoint folder left by a failed write (full disk) is removed and does not block the resume', async () => {
  const { runDir, full } = await interruptedRun();
  const stale = path.join(runDir, 'checkpoints', '.tmp-epoch-0003-999999');
  fs.mkdirSync(stale);
  fs.writeFileSync(path.join(stale, 'weights.bin'), Buffer.alloc(10));
  const r = await train(await tempSessionFor(runDir), opts());
  assert.ok(r.resumedFrom?.endsWith('epoch-0002'));
  assert.ok(!fs.existsSync(stale));
  assert.deepEqual(numbersOf(history(runDir).toRecords()), full);
});

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

test('train-state "running" of a process that is gone reads as interrupted', async () => {
  const { runDir } = await interruptedRun();
  fs.writeFileSync(path.join(runDir, TRAIN_STATE_FILE), JSON.stringify({ status: 'running', pid: deadPid(), updated: new Date().toISOString() }));
  const st = readTrainState(runDir)!;
  assert.equal(st.status, 'interrupted');
  assert.match(st.note!, /is gone/);
  fs.writeFileSync(path.join(runDir, TRAIN_STATE_FILE), JSON.stringify({ status: 'running', pid: process.pid, updated: new Date().toISOString() }));
  assert.equal(readTrainState(runDir)!.status, 'running');
});

test('one trainer per run folder: a live holder is named, a dead holder\'s lock is recovered', async () => {
  const { runDir, full } = await interruptedRun();
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    fs.writeFileSync(path.join(runDir, LOCK_FILE), JSON.stringify({ pid: holder.pid, host: os.hostname(), started: '2026-01-01T00:00:00Z', command: 'cli.js train' }));
    await assert.rejects(train(await tempSessionFor(runDir), opts()), (e: unknown) => e instanceof RunFolderBusyError && new RegExp(`in use by process ${holder.pid} `).test((e as Error).message));
    assert.equal(history(runDir).height, 2, 'the refused trainer changed nothing');
  } finally {
    holder.kill('SIGKILL');
  }
  fs.writeFileSync(path.join(runDir, LOCK_FILE), JSON.stringify({ pid: deadPid(), host: os.hostname(), started: '2026-01-01T00:00:00Z', command: 'cli.js train' }));
  const r = await train(await tempSessionFor(runDir), opts());
  assert.equal(r.status, 'finished');
  assert.ok(!fs.existsSync(path.join(runDir, LOCK_FILE)), 'the lock is released');
  assert.deepEqual(numbersOf(history(runDir).toRecords()), full);
});

/** The session of an existing run folder (as a new process would open it). */
async function tempSessionFor(runDir: string) {
  const profile = JSON.parse(fs.readFileSync(path.join(runDir, 'profile.json'), 'utf8'));
  const s = await tempSession(profile);
  return { ...s, runDir };
}
