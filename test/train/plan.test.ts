import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listProfiles, loadProfile } from '../../src/config';
import { phasePlan, phasePlans } from '../../src/train/plan';
import { phasesTable } from '../../src/train';
import { summarySection } from '../../src/results/report-summary';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

test('quick: the top block trains on cached conv_pw_12 maps, and the notebook table and the report say so', () => {
  const quick = loadProfile('quick');
  const top = phasePlans(quick).find((p) => p.name === 'finetune-top');
  assert.ok(top, 'quick has a finetune-top phase');
  assert.equal(top.cached, true);
  assert.equal(top.input, 'cached features');
  assert.match(top.trains, /^base from \S+, head$/);
  const row = phasesTable(quick).find((r) => String(r.phase).endsWith('finetune-top'));
  assert.equal(row?.input, 'cached features');

  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-plan-'));
  fs.writeFileSync(path.join(run, 'profile.json'), JSON.stringify(quick));
  const html = summarySection(run)!.html;
  fs.rmSync(run, { recursive: true, force: true });
  assert.match(html, /finetune-top<\/td><td>base from [^<]+, head<\/td><td>cached features<\/td>/);
});

test('every profile: the rendered phase table says cached features exactly where the plan (the trainer\'s decision) trains on them', () => {
  for (const name of listProfiles()) {
    const profile = loadProfile(name);
    const rows = phasesTable(profile);
    profile.train.phases.forEach((phase, i) => {
      const plan = phasePlan(profile, i);
      // The trainer caches a head phase when train.featureCache is on, and a partial phase when it asks for it.
      const expected = (phase.trainable === 'head' && !!profile.train.featureCache) || (typeof phase.trainable === 'object' && !!phase.featureCache);
      assert.equal(plan.cached, expected, `${name} phase ${i}`);
      assert.equal(rows[i].input === 'cached features', expected, `${name} phase ${i}: table says ${rows[i].input}`);
      if (!expected) assert.equal(rows[i].input, profile.train.augment ? 'augmented images' : 'images');
    });
  }
});

test('phasePlan names a phase that does not exist', () => {
  assert.throws(() => phasePlan(loadProfile('smoke'), 5), /phase 5: the profile has 1 phases/);
});

test('wb.train is the curated surface the notebooks call (at most 40 names), not the stage\'s internals', async () => {
  const wb = await import('../../src');
  const names = Object.keys(wb.train);
  assert.ok(names.length <= 40, `${names.length} names: ${names.join(' ')}`);
  for (const used of ['train', 'history', 'phasesTable', 'lrFind', 'lrFindSpec', 'describeLrFind', 'describeResult', 'summaryTable']) assert.ok(names.includes(used), used);
  for (const internal of ['fitPhase', 'preparePhase', 'saveCheckpoint', 'createOptimizer', 'cacheKey']) assert.ok(!names.includes(internal), internal);
});
