import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as path from 'node:path';
import { train, latestCheckpoint, readCheckpointState } from '../../src/train';
import type { Callback, CallbackState } from '../../src/train/loop';
import { syntheticData, testProfile, tempSession, tinyResnetLike } from './fixtures';
import type { Phase } from '../../src/config';

const phase: Phase = { name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 3 };

/** A caller's callback with state to keep: the batches it has seen over the whole run. */
class BatchCounter implements Callback {
  readonly stateKey = 'batchCounter';
  seen = 0;
  restored: unknown = 'never';
  state(): CallbackState {
    return { json: { seen: this.seen } };
  }
  restore(json: unknown): void {
    this.restored = json;
    this.seen = (json as { seen: number } | undefined)?.seen ?? 0;
  }
  onBatchEnd(): void {
    this.seen++;
  }
}

test("a caller's callback with state()/restore() rides in the checkpoint and continues after a resume", async () => {
  const s = await tempSession(testProfile([phase]));
  const first = new BatchCounter();
  const stopped = await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false, stopAfterEpochs: 1, callbacks: [first] });
  assert.equal(stopped.status, 'interrupted');
  assert.equal(first.restored, 'never', 'a fresh run has nothing to restore');
  assert.equal(first.seen, 3); // 96 images / 32
  assert.deepEqual(readCheckpointState(latestCheckpoint(s.runDir)!).batchCounter, { seen: 3 });

  const second = new BatchCounter();
  const done = await train(s, { built: tinyResnetLike(99), data: syntheticData(), progress: 'none', saveModel: false, callbacks: [second] });
  assert.equal(done.status, 'finished');
  assert.deepEqual(second.restored, { seen: 3 });
  assert.equal(second.seen, 9, 'three epochs of three batches over both calls');
});

test('a resumed start hashes the newest checkpoint once; a finished run is told by train-state.json without reading a checkpoint', async () => {
  const s = await tempSession(testProfile([phase]));
  await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false, stopAfterEpochs: 1 });
  const original = fs.readFileSync;
  const reads: string[] = [];
  (fs as { readFileSync: unknown }).readFileSync = (file: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    if (typeof file === 'string' && path.basename(file) === 'weights.bin' && file.includes(`${path.sep}checkpoints${path.sep}`)) reads.push(path.basename(path.dirname(file)));
    return (original as (...a: unknown[]) => unknown)(file, ...rest);
  };
  try {
    const resumed = await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false });
    assert.equal(resumed.status, 'finished');
    // Once for its checksum, once to decode it: before, the finished-run check hashed it first.
    assert.deepEqual(
      reads.filter((d) => d === 'epoch-0001'),
      ['epoch-0001', 'epoch-0001'],
    );
    reads.length = 0;
    const again = await train(s, { built: tinyResnetLike(), data: syntheticData(), progress: 'none', saveModel: false });
    assert.equal(again.status, 'already-finished');
    assert.deepEqual(reads, [], 'no checkpoint read to tell a finished run');
  } finally {
    (fs as { readFileSync: unknown }).readFileSync = original;
  }
  const pointer = JSON.parse(fs.readFileSync(path.join(s.runDir, 'checkpoints', 'latest.json'), 'utf8')) as Record<string, unknown>;
  assert.ok(!('done' in pointer), 'the status is train-state.json\'s alone');
});
