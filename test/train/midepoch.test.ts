/**
 * Periodic mid-epoch checkpoints (train.checkpointEveryMinutes): a process that dies inside an epoch
 * loses at most the batches since the last one, and the resume continues inside that epoch with the
 * numbers of an uninterrupted run. A crash is a callback throwing after a batch (the process would
 * die there); the checkpoints on disk are what a SIGKILL leaves (test/train/cli.test.ts kills one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Phase } from '../../src/config';
import { train, history, latestCheckpoint, readCheckpointState, type Callback } from '../../src/train';
import { stableWeights } from '../../src/model/split';
import { syntheticData, testProfile, tempSession, tinyResnetLike, numbersOf } from './fixtures';

const phases: Phase[] = [
  { name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 2, schedule: { kind: 'cosine', warmupEpochs: 1 } },
  { name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 2 },
];
// 64 images in batches of 16: 4 batches per epoch. 0.0001 minutes = 6 ms: a checkpoint after every batch (each takes longer).
const extra = { augment: true, batchSize: 16 };
const periodic = { ...extra, checkpointEveryMinutes: 0.0001 };
const opts = (seed = 1) => ({ built: tinyResnetLike(seed, 0.3), data: syntheticData(64, 32), progress: 'none' as const, saveModel: false });

/** Throws after the n-th batch of the run, as if the process died there. */
function crashAfter(n: number): Callback {
  let batches = 0;
  return {
    // At least the checkpoint period per batch, whatever the machine's speed.
    onBatchBegin: () => new Promise((r) => setTimeout(r, 10)),
    onBatchEnd: () => {
      if (++batches === n) throw new Error(`crash after batch ${n}`);
    },
  };
}

const stateVersion = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')).version;

let reference: { epochs: unknown[]; batches: unknown[] } | undefined;
async function uninterrupted() {
  if (!reference) {
    const a = await tempSession(testProfile(phases, extra));
    await train(a, opts());
    reference = { epochs: numbersOf(history(a.runDir).toRecords()), batches: numbersOf(history(a.runDir, 'batches').toRecords()) };
  }
  return reference;
}

test('checkpointEveryMinutes: a run dying inside an epoch resumes from its last mid-epoch checkpoint with the numbers of an uninterrupted run', async () => {
  const full = await uninterrupted();
  // Inside epoch 2 (images, dropout, augmentation, cosine warm-up) and epoch 4 (cached features).
  for (const [crashAt, expected] of [
    [6, 'epoch-0001+000001'],
    [14, 'epoch-0003+000001'],
  ] as const) {
    const b = await tempSession(testProfile(phases, periodic));
    await assert.rejects(train(b, { ...opts(), callbacks: [crashAfter(crashAt)] }), new RegExp(`crash after batch ${crashAt}`));
    const last = latestCheckpoint(b.runDir)!;
    assert.equal(path.basename(last), expected, 'the batch in progress is lost, the one before was saved');
    const st = readCheckpointState(last);
    assert.equal(st.partial?.step, 1);
    assert.equal(st.partial?.batchRows.length, 1);
    assert.equal(stateVersion(last), 2);
    const kept = fs.readdirSync(path.join(b.runDir, 'checkpoints')).filter((n) => n.startsWith('epoch-')).sort();
    assert.equal(kept.filter((n) => n.includes('+')).length, 1, `one mid-epoch checkpoint kept: ${kept.join(' ')}`);

    const resumed = await train(b, opts(99));
    assert.equal(resumed.status, 'finished');
    assert.equal(resumed.resumedFrom, last);
    assert.deepEqual(numbersOf(history(b.runDir).toRecords()), full.epochs, `crashed after batch ${crashAt}`);
    assert.deepEqual(numbersOf(history(b.runDir, 'batches').toRecords()), full.batches);
    const after = fs.readdirSync(path.join(b.runDir, 'checkpoints')).filter((n) => n.startsWith('epoch-'));
    assert.deepEqual(after.sort(), ['epoch-0003', 'epoch-0004'], 'an epoch end supersedes the mid-epoch checkpoints');
    assert.equal(stateVersion(path.join(b.runDir, 'checkpoints', 'epoch-0004')), 1, 'epoch-end checkpoints keep version 1');
  }
});

test('a damaged mid-epoch checkpoint is skipped for the newest intact one (the epoch end before it), and the numbers still match', async () => {
  const full = await uninterrupted();
  const b = await tempSession(testProfile(phases, periodic));
  await assert.rejects(train(b, { ...opts(), callbacks: [crashAfter(7)] }), /crash after batch 7/);
  const last = latestCheckpoint(b.runDir)!;
  assert.equal(path.basename(last), 'epoch-0001+000002');
  const st = path.join(last, 'state.json');
  fs.writeFileSync(st, fs.readFileSync(st, 'utf8').replace('"step":2', '"step":3')); // same size, other content
  const resumed = await train(b, opts(99));
  assert.equal(resumed.status, 'finished');
  assert.ok(resumed.resumedFrom?.endsWith('epoch-0001'), resumed.resumedFrom);
  assert.equal(resumed.skipped?.length, 1);
  assert.match(resumed.skipped![0].why, /state\.json: sha256 .* \(corrupted\)/);
  assert.deepEqual(numbersOf(history(b.runDir).toRecords()), full.epochs);
  assert.deepEqual(numbersOf(history(b.runDir, 'batches').toRecords()), full.batches);
});

test('restoreBestWeights across a mid-epoch resume: the best copy rides in the mid-epoch checkpoint, the phase ends as uninterrupted', async () => {
  const one: Phase[] = [{ name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.05, epochs: 3 }];
  const best = { ...extra, restoreBestWeights: { monitor: 'val_loss' as const } };
  const a = await tempSession(testProfile(one, best));
  const ra = await train(a, opts());
  const b = await tempSession(testProfile(one, { ...best, checkpointEveryMinutes: 0.0001 }));
  await assert.rejects(train(b, { ...opts(), callbacks: [crashAfter(10)] }), /crash after batch 10/);
  const last = latestCheckpoint(b.runDir)!;
  assert.equal(path.basename(last), 'epoch-0002+000001');
  assert.ok(fs.existsSync(path.join(last, 'best.bin')), 'the best weights so far are in the mid-epoch checkpoint');
  const rb = await train(b, opts(99));
  assert.deepEqual(numbersOf(history(b.runDir).toRecords()), numbersOf(history(a.runDir).toRecords()));
  const weights = (r: typeof ra) => stableWeights(r.built!.model).map((w) => Array.from(w.read().dataSync()));
  assert.deepEqual(weights(rb), weights(ra), 'the same weights at the end (the best epoch\'s)');
  assert.deepEqual(readCheckpointState(latestCheckpoint(b.runDir)!).best, readCheckpointState(latestCheckpoint(a.runDir)!).best);
});

test('photoAugment (JPEG, blur, noise, colour jitter) resumes mid-epoch with the numbers of an uninterrupted run, and changes them', async () => {
  const photo = {
    colorJitter: { probability: 0.5, brightness: 0.3, contrast: 0.3, saturation: 0.3 },
    blur: { probability: 0.3, sigma: [0.3, 1] as [number, number] },
    noise: { probability: 0.3, std: [0.01, 0.06] as [number, number] },
    jpeg: { probability: 0.5, quality: [40, 95] as [number, number] },
  };
  const a = await tempSession(testProfile(phases, { ...extra, photoAugment: photo }));
  await train(a, opts());
  const full = numbersOf(history(a.runDir, 'batches').toRecords());
  assert.notDeepEqual(full, (await uninterrupted()).batches, 'the corruptions reach the training batches');
  const b = await tempSession(testProfile(phases, { ...periodic, photoAugment: photo }));
  await assert.rejects(train(b, { ...opts(), callbacks: [crashAfter(6)] }), /crash after batch 6/);
  assert.equal(path.basename(latestCheckpoint(b.runDir)!), 'epoch-0001+000001');
  await train(b, opts(99));
  assert.deepEqual(numbersOf(history(b.runDir, 'batches').toRecords()), full);
});
