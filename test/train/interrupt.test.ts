import { test } from 'node:test';
import assert from 'node:assert/strict';
import { train, history, TrainingInterruptedError, latestCheckpoint, readCheckpointState } from '../../src/train';
import { syntheticData, testProfile, tempSession, tinyResnetLike, numbersOf } from './fixtures';
import type { Phase } from '../../src/config';

const phases: Phase[] = [
  { name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 2, schedule: { kind: 'cosine', warmupEpochs: 1 } },
  { name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 2 },
];
const extra = { augment: true, batchSize: 16 };

test('a real SIGINT stops training after the current batch; a rerun resumes inside the epoch with the numbers of an uninterrupted run', async () => {
  const a = await tempSession(testProfile(phases, extra));
  await train(a, { built: tinyResnetLike(1, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false });
  const full = history(a.runDir).toRecords();

  // Interrupt once in the image phase (epoch 2) and once in the cached-feature phase (epoch 4).
  for (const afterEpoch of [1, 3]) {
    const b = await tempSession(testProfile(phases, extra));
    let sent = false;
    const onEpoch = (row: { epoch: number }) => {
      if (row.epoch === afterEpoch && !sent) {
        sent = true;
        process.kill(process.pid, 'SIGINT'); // delivered by the event loop, as a kernel interrupt is
      }
    };
    const err = await train(b, { built: tinyResnetLike(1, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false, onEpoch }).then(
      () => assert.fail('training should have been interrupted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TrainingInterruptedError, String(err));
    assert.equal(err.epoch, afterEpoch + 1);
    assert.ok(err.batch >= 1 && err.batch <= 2, `stopped at batch ${err.batch} of 4: within a batch of the signal`);
    assert.match(err.message, new RegExp(`^interrupted at epoch ${afterEpoch + 1}, batch ${err.batch}: rerun to resume`));
    const state = readCheckpointState(latestCheckpoint(b.runDir)!);
    assert.equal(state.partial?.step, err.batch);
    assert.equal(err.checkpoint, latestCheckpoint(b.runDir));
    assert.ok(err.message.endsWith(`rerun to resume from there (checkpoint epoch-000${afterEpoch}+00000${err.batch})`), err.message);
    assert.equal(process.listeners('SIGINT').length, 0, 'SIGINT is given back after training');

    const second = await train(b, { built: tinyResnetLike(99, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false });
    assert.equal(second.status, 'finished');
    assert.deepEqual(numbersOf(history(b.runDir).toRecords()), numbersOf(full), `interrupted after epoch ${afterEpoch}`);
    assert.deepEqual(numbersOf(history(b.runDir, 'batches').toRecords()), numbersOf(history(a.runDir, 'batches').toRecords()));
  }
});

test('an interrupt while base features are cached stops there, says nothing was trained, and a rerun starts again', async () => {
  const s = await tempSession(testProfile([{ name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 2 }], { batchSize: 16 }));
  const { batches } = await import('../../src/preprocess');
  let pulled = 0;
  const imageBatches = function* (set: Parameters<typeof batches>[0], o: { batchSize: number; shuffle: boolean; rng: never; augment: boolean }) {
    for (const b of batches(set, { ...o, mode: 'unit', numClasses: 3 })) {
      if (++pulled === 2) process.kill(process.pid, 'SIGINT');
      yield b;
    }
  };
  const err = await train(s, { built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none', saveModel: false, imageBatches: imageBatches as never }).then(
    () => assert.fail('should have been interrupted'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof TrainingInterruptedError, String(err));
  assert.match(err.message, /^interrupted while computing base features \(train\), (16|32) of 64 images: nothing trained yet; rerun to start again$/);
  assert.equal(latestCheckpoint(s.runDir), undefined);
  const again = await train(s, { built: tinyResnetLike(), data: syntheticData(64, 32), progress: 'none', saveModel: false, imageBatches: imageBatches as never });
  assert.equal(again.status, 'finished');
});

test('an interrupt during validation keeps the trained epoch: the rerun validates it again and the numbers match an uninterrupted run', async () => {
  const cosine: Phase[] = [{ name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 3, schedule: { kind: 'cosine', warmupEpochs: 1 } }];
  const a = await tempSession(testProfile(cosine, extra));
  await train(a, { built: tinyResnetLike(1, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false });
  const full = history(a.runDir).toRecords();

  const { batches } = await import('../../src/preprocess');
  let validations = 0;
  const imageBatches = function* (set: Parameters<typeof batches>[0], o: { batchSize: number; shuffle: boolean; rng: never; augment: boolean }) {
    const validation = !o.shuffle && ++validations === 2; // epoch 2's validation
    for (const b of batches(set, { ...o, mode: 'unit', numClasses: 3 })) {
      yield b;
      if (validation) process.kill(process.pid, 'SIGINT');
    }
  };
  const b = await tempSession(testProfile(cosine, extra));
  const err = await train(b, { built: tinyResnetLike(1, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false, imageBatches: imageBatches as never }).then(
    () => assert.fail('should have been interrupted'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof TrainingInterruptedError, String(err));
  assert.equal(err.epoch, 2);
  assert.equal(err.batch, 4, 'all 4 training batches of epoch 2 were done (64 images / 16)');
  const second = await train(b, { built: tinyResnetLike(99, 0.3), data: syntheticData(64, 32), progress: 'none', saveModel: false });
  assert.equal(second.status, 'finished');
  assert.deepEqual(numbersOf(history(b.runDir).toRecords()), numbersOf(full));
  assert.deepEqual(numbersOf(history(b.runDir, 'batches').toRecords()), numbersOf(history(a.runDir, 'batches').toRecords()));
});
