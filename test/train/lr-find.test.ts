import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Phase } from '../../src/config';
import { train, history, lrFind, lrFindSpec } from '../../src/train';
import { minimumLr, suggestLr, valleyLr, type LrPoint } from '../../src/train/lr-find';
import { stableWeights } from '../../src/model/split';
import { chartSvg } from '../../src/display';
import { syntheticData, testProfile, tempSession, tinyResnetLike, numbersOf } from './fixtures';

/** sha256 of every file under `dir`, by relative path. */
function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

test('suggestLr: the steepest descent of the smoothed loss, before its minimum', () => {
  // A loss that falls fastest at lr = 1e-3 (in log10 lr), then rises again after 1e-1.
  const points: LrPoint[] = [];
  for (let i = 0; i <= 60; i++) {
    const lr = 10 ** (-6 + i * 0.1);
    const x = Math.log10(lr);
    const loss = 2 - Math.tanh(2 * (x + 3)) + (x > -1 ? 5 * (x + 1) ** 2 : 0);
    points.push({ lr, loss, smoothed: loss });
  }
  const lr = suggestLr(points);
  assert.ok(lr > 10 ** -3.3 && lr < 10 ** -2.7, `suggested ${lr}`);
  // valley: halfway along the fall from 1e-5.4 (the first tenth is left out) to the minimum near 1e-1.2.
  const v = valleyLr(points);
  assert.ok(v > 10 ** -3.6 && v < 10 ** -3, `valley ${v}`);
  assert.ok(Math.abs(Math.log10(minimumLr(points)) - (Math.log10(points.reduce((m, p) => (p.smoothed < m.smoothed ? p : m)).lr) - 1)) < 1e-9);
});

test('valleyLr: a flat, noisy loss that blows up past 1e-3 (a trained head fine-tuned) gets a rate below the blow-up', () => {
  // As measured in lr-find on MobileNet's top block with a trained head: flat within noise up to 4e-4, then rising.
  const points: LrPoint[] = [];
  let average = 0;
  for (let i = 0; i < 90; i++) {
    const lr = 10 ** (-7 + i * 0.09);
    const noise = 0.05 * Math.sin(i * 2.7) + 0.03 * Math.cos(i * 1.3);
    const loss = 0.9 + noise + (lr > 1e-3 ? 3 * Math.log10(lr / 1e-3) ** 2 : 0);
    average = 0.98 * average + 0.02 * loss; // fastai's debiased running average
    points.push({ lr, loss, smoothed: average / (1 - 0.98 ** (i + 1)) });
  }
  const v = valleyLr(points);
  assert.ok(v >= 1e-5 && v <= 1e-3, `valley ${v} should sit below the blow-up`);
  assert.ok(suggestLr(points) < 1e-5, 'the steepest-descent rule follows the noise down to a rate that would not train');
});

test('lr-find: a bounded exponential sweep, a suggested rate inside it, the run untouched (files, weights, later training)', async () => {
  const phases: Phase[] = [
    { name: 'head', trainable: 'head', optimizer: 'adam', lr: 0.05, epochs: 1 },
    { name: 'finetune-all', trainable: 'all', optimizer: 'adam', lr: 0.01, epochs: 2 },
  ];
  const data = () => syntheticData(64, 32);
  const full = await tempSession(testProfile(phases));
  await train(full, { built: tinyResnetLike(), data: data(), progress: 'none', saveModel: false });

  const s = await tempSession(testProfile(phases));
  const built = tinyResnetLike();
  await train(s, { built, data: data(), progress: 'none', saveModel: false, stopAfterEpochs: 1 });
  const before = filesOf(s.runDir);
  const weights = stableWeights(built.model).map((w) => Array.from(w.read().dataSync()));

  const r = await lrFind(s, { built, data: data(), phase: 1, iterations: 20, minLr: 1e-6, maxLr: 1, progress: 'none' });
  assert.equal(r.phase, 'finetune-all');
  assert.ok(r.points.length >= 5 && r.points.length <= 20, `${r.points.length} points`);
  assert.ok(r.points.every((p, i) => i === 0 || p.lr > r.points[i - 1].lr), 'rates grow');
  assert.equal(r.points[0].lr, 1e-6);
  assert.ok(Number.isFinite(r.suggestedLr) && r.suggestedLr >= 1e-6 && r.suggestedLr <= 1, `suggested ${r.suggestedLr}`);
  assert.equal(r.suggestedLr, r.suggestions.valley);
  for (const v of Object.values(r.suggestions)) assert.ok(v > 0 && v <= 10, `suggestions ${JSON.stringify(r.suggestions)}`);
  assert.match(r.rule, /^valley: halfway along the longest stretch/);
  assert.ok((await chartSvg(lrFindSpec(r))).includes('<svg'));

  assert.deepEqual(filesOf(s.runDir), before, 'no file of the run folder changed');
  assert.deepEqual(stableWeights(built.model).map((w) => Array.from(w.read().dataSync())), weights, 'the model weights are restored');
  // The run goes on as if lr-find had never run.
  await train(s, { built: tinyResnetLike(5), data: data(), progress: 'none', saveModel: false });
  assert.deepEqual(numbersOf(history(s.runDir).toRecords()), numbersOf(history(full.runDir).toRecords()));
});
