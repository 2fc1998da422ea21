import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadProfile } from '../../src/config';
import { writeReport } from '../../src/results/report';
import { headlineText, readHeadline, summarySection } from '../../src/results/report-summary';
import { profileDifferences } from '../../src/results/compare-page';
import { studyMarkdown, studyRow } from '../../src/results/study';
import { html } from '../../src/html';
import { makeFixtureRun } from './fixtures';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli.js');

function write(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
}

/** The files a finished smoke run leaves: resolved profile, training summary, evaluation (500 test images), history. */
function finishedRun(dir: string, opts: { accuracy: number; count: number; seed?: number }): void {
  const profile = loadProfile('smoke');
  if (opts.seed !== undefined) profile.train.seed = opts.seed;
  write(path.join(dir, 'profile.json'), profile);
  write(path.join(dir, 'train-summary.json'), {
    profile: 'smoke', epochs: 8, finalValAccuracy: 0.605, wallSeconds: 52.4, backend: 'wasm', threads: 2, valSource: 'split',
    phases: [{ name: 'head', ran: true, reason: 'unconditional', epochs: 8 }],
  });
  write(path.join(dir, 'evaluation.json'), {
    classes: ['cat', 'ship', 'frog'], count: opts.count, accuracy: opts.accuracy, loss: 1.2, tta: null, subsets: [],
    perClass: [
      { class: 'cat', precision: 0.3, recall: 0.25, f1: 0.27, support: 10 },
      { class: 'ship', precision: 0.8, recall: 0.9, f1: 0.85, support: 10 },
      { class: 'frog', precision: 0.6, recall: 0.6, f1: 0.6, support: 10 },
    ],
  });
  write(path.join(dir, 'history.csv'), 'phase,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\nhead,1,1.5,0.4,1.4,0.5,0.001,3\nhead,2,1.2,0.5,1.3,0.6,0.001,3\n');
}

test('the report leads with the result: test accuracy, setup and the reproducing command before the first notebook', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-summary-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  await makeFixtureRun(dir);
  finishedRun(dir, { accuracy: 0.5724, count: 500 });
  write(path.join(dir, 'profile.json'), { ...JSON.parse(fs.readFileSync(path.join(dir, 'profile.json'), 'utf8')), description: 'a <b>bold</b> "claim"' });
  const page = fs.readFileSync(await writeReport(dir), 'utf8');
  const accuracy = page.indexOf('57.2%');
  const firstNotebook = page.indexOf('<section class="notebook"');
  assert.ok(accuracy > 0 && accuracy < firstNotebook, `test accuracy at ${accuracy}, first notebook at ${firstNotebook}`);
  assert.match(page, /57\.2%<\/span> test accuracy on 500 test images/);
  assert.match(page, /<title>[^<]*<\/title>[\s\S]*test accuracy 57\.2% on 500 test images \(validation 60\.5%\) · profile smoke/);
  assert.match(page, /best classes \(recall\)<\/th><td>ship 90\.0% · frog 60\.0% · cat 25\.0%/);
  assert.match(page, /worst classes<\/th><td>cat 25\.0% · frog 60\.0%/);
  assert.match(page, /<code>npm start -- --profile smoke<\/code>/);
  assert.match(page, /<details><summary>resolved profile \(profile\.json\)<\/summary><pre>\{/);
  assert.match(page, /a &lt;b&gt;bold&lt;\/b&gt; \\&quot;claim\\&quot;/, 'profile text is escaped');
  assert.doesNotMatch(page, /<b>bold<\/b>/);
  assert.match(page, /<details class="code"><summary>/, 'code cells fold away');
  assert.doesNotMatch(page, /<script/i);
});

test('headlineText says the real test-set size, and what is missing', () => {
  assert.equal(headlineText({ testAccuracy: 0.7, testCount: 10000, valAccuracy: 0.75, status: 'finished' }),
    'test accuracy 70.0% on 10,000 test images (validation 75.0%)');
  assert.equal(headlineText(readHeadline(os.tmpdir())), 'no test accuracy yet (training: not trained)');
});

test('html escapes every interpolation but its own fragments', () => {
  const evil = '"><script>alert(1)</script>\'';
  const frag = html`<td title="${evil}">${evil}</td>`;
  assert.equal(frag.html, '<td title="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;</td>');
  assert.equal(html`<tr>${[frag, 'a&b']}</tr>`.html, `<tr>${frag.html}a&amp;b</tr>`);
});

test('report --compare: one self-contained page with the table (real test-set sizes), curves and profile differences', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-compare-page-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  finishedRun(path.join(root, 'a'), { accuracy: 0.57, count: 500 });
  finishedRun(path.join(root, 'b'), { accuracy: 0.61, count: 10000, seed: 7 });
  const out = path.join(root, 'page.html');
  const r = spawnSync(process.execPath, [cli, 'report', '--compare', path.join(root, 'a'), path.join(root, 'b'), '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), out);
  const page = fs.readFileSync(out, 'utf8');
  // No size most runs share: the first is named in the header, the other in its cell.
  assert.match(page, /<th>test \(500 images\)<\/th>/);
  assert.match(page, /<td>57\.00%<\/td>[\s\S]*<td>61\.00% \(10,000 images\)<\/td>/);
  assert.match(page, /<svg[\s\S]*validation accuracy/);
  assert.match(page, /<tr><td><code>train\.seed<\/code><\/td><td>\d+<\/td><td>7<\/td><\/tr>/);
  assert.match(page, /--set train\.seed=7/);
  assert.doesNotMatch(page, /<script/i);
  const one = spawnSync(process.execPath, [cli, 'report', '--compare', path.join(root, 'a')], { encoding: 'utf8' });
  assert.equal(one.status, 1);
  assert.match(one.stderr, /give two or more run folders/);
  // The Markdown table of `compare` labels the size too.
  assert.match(studyMarkdown([studyRow(path.join(root, 'a'))]), /^\| run \| test \(500 images\) \|/);
});

test('profileDifferences lists the fields that are not the same in every run', () => {
  const d = profileDifferences([{ a: 1, b: { c: [1, 2] }, description: 'x' }, { a: 1, b: { c: [1, 3] }, description: 'y', e: true }]);
  assert.deepEqual(d, [{ field: 'b.c.1', values: ['2', '3'] }, { field: 'e', values: [null, 'true'] }]);
});

test('the report shows the training images per class (imbalance marked), class weights and unreadable files skipped', async () => {
  const { summarySection } = await import('../../src/results/report-summary');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-imbalance-'));
  finishedRun(dir, { accuracy: 0.7, count: 30 });
  const summary = JSON.parse(fs.readFileSync(path.join(dir, 'train-summary.json'), 'utf8'));
  write(path.join(dir, 'train-summary.json'), {
    ...summary,
    valSplit: 'stratified',
    trainPerClass: [120, 20, 8],
    classWeights: [148 / 360, 148 / 60, 148 / 24],
    unreadableFiles: [{ file: '/photos/cat/<broken>.jpg', reason: 'empty file (0 bytes)' }],
  });
  const text = String(summarySection(dir));
  assert.match(text, /training images per class<\/th><td>cat 120 · ship 20 · frog 8 <b>imbalanced: the largest class has 15\.0x the images of the smallest<\/b>/);
  assert.match(text, /class weights \(balanced\)<\/th><td>cat 0\.411 · ship 2\.467 · frog 6\.167/);
  assert.match(text, /1 file<\/summary><ul><li><code>\/photos\/cat\/&lt;broken&gt;\.jpg<\/code>: empty file \(0 bytes\)/);
  assert.match(text, /held out from the training set, the same share of every class/);
  fs.rmSync(dir, { recursive: true });
});

test('a run started from a trained model (model.initFrom) says so beside the backbone, and its reproducing command sets it', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-summary-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  finishedRun(dir, { accuracy: 0.6, count: 500 });
  const profile = loadProfile('smoke', ['model.initFrom=data/runs/earlier-smoke']);
  write(path.join(dir, 'profile.json'), profile);
  const section = summarySection(dir)!.html;
  assert.match(section, /<th>backbone<\/th><td>darknet-tiny, head gap, weights imagenet; training started from the trained model data\/runs\/earlier-smoke \(model\.initFrom\)<\/td>/);
  assert.match(section, /<code>npm start -- --profile smoke --set model\.initFrom=data\/runs\/earlier-smoke<\/code>/);
});
