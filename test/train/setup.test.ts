/** The training data a profile asks for: a split that leaves nothing to train or validate on is refused by name (issue 25). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTrainData } from '../../src/train/setup';
import { writeSolidImage } from '../data/fixtures';
import { testProfile, tempSession } from './fixtures';

test('issue 25 item 7: one image per class leaves no validation images: the folder and what is needed are named', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-setup-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const c of ['cat', 'dog']) writeSolidImage(path.join(root, c, '0.png'), 6, 6, [10, 20, 30]);
  const profile = testProfile([{ name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.01, epochs: 1 }]);
  profile.data = { source: 'folder', dir: root, valFraction: 0.1, imageSize: 8 };
  const s = await tempSession(profile);
  await assert.rejects(
    loadTrainData(s),
    new RegExp(`^Error: ${root}: 2 training image\\(s\\) in 2 class\\(es\\) leave 2 to train on and 0 to validate on \\(data\\.valFraction 0\\.1\\); expected at least 10 images`),
  );
});
