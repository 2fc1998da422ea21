import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadProfile, type Profile } from '../../src/config';
import { profileOverrides, studyCurvesSpec, studyMarkdown, studyRow } from '../../src/results/study';
import { readDivergence } from '../../src/results/divergence';
import { readHeadline } from '../../src/results/report-summary';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli.js');

function write(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
}

/** A run folder as the pipeline leaves it: the resolved profile, the training summary, evaluation and history. */
const EPYC = { cpus: 2, cpuModel: 'AMD EPYC 9B14', cpuFlags: ['avx', 'avx2', 'avx512bw', 'avx512f', 'fma'], memoryGiB: 24 };

function fakeRun(dir: string, opts: { epochs: number[]; testAccuracy?: number; testImages?: number; ttaAccuracy?: number; meanCorruptionAccuracy?: number; featureEngine?: string; machine?: typeof EPYC; set?: (p: Profile) => void }): void {
  const profile = loadProfile('smoke');
  opts.set?.(profile);
  write(path.join(dir, 'profile.json'), profile);
  write(path.join(dir, 'train-summary.json'), {
    profile: 'smoke', finalValAccuracy: 0.5, wallSeconds: 150, backend: 'wasm', threads: 2, valSource: 'split',
    ...(opts.featureEngine ? { featureEngine: opts.featureEngine } : {}),
    ...(opts.machine ? { machine: opts.machine } : {}),
    phases: [
      { name: 'head', ran: true, epochs: opts.epochs[0] },
      { name: 'finetune-all', ran: false, reason: 'too slow', epochs: 0 },
    ],
  });
  if (opts.testAccuracy !== undefined) {
    write(path.join(dir, 'evaluation.json'), {
      count: opts.testImages ?? 10000, accuracy: opts.testAccuracy, tta: opts.ttaAccuracy === undefined ? null : { accuracy: opts.ttaAccuracy, loss: 1 },
      ...(opts.meanCorruptionAccuracy === undefined ? {} : { robustness: { meanAccuracy: opts.meanCorruptionAccuracy, corruptions: [], clean: { accuracy: opts.testAccuracy, ttaAccuracy: null } } }),
    });
  }
  const rows = opts.epochs.length ? Array.from({ length: opts.epochs[0] }, (_, i) => `head,${i + 1},${1 - i / 10},${0.3 + i / 10},1.2,${(0.35 + i / 10).toFixed(2)},0.001,3`) : [];
  write(path.join(dir, 'history.csv'), ['phase,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds', ...rows].join('\n') + '\n');
}

test('studyRow reads each run\'s own files, and the command names every field the run changed', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-study-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const plain = path.join(root, 'plain');
  const changed = path.join(root, 'changed');
  fakeRun(plain, { epochs: [3], testAccuracy: 0.5678, machine: EPYC });
  fakeRun(changed, { epochs: [2], set: (p) => { p.train.phases[0].epochs = 2; p.model.inputSize = 48; p.description = 'edited since'; } });
  const small = path.join(root, 'small');
  fakeRun(small, { epochs: [1], testAccuracy: 0.6, testImages: 500 });

  const a = studyRow(plain);
  assert.deepEqual(a, {
    run: 'plain', profile: 'smoke', testAccuracy: 0.5678, testImages: 10000, ttaAccuracy: null, valAccuracy: 0.5, trainMinutes: 2.5,
    backend: 'wasm, 2 threads', resolution: 64, epochs: 'head 3', command: 'npm start -- --profile smoke',
    machine: 'AMD EPYC 9B14, 2 cores, 24 GiB, AVX-512 (avx512bw avx512f)', diverged: null, meanCorruptionAccuracy: null,
  });
  const b = studyRow(changed);
  assert.equal(b.command, 'npm start -- --profile smoke --set model.inputSize=48 --set train.phases.0.epochs=2');
  assert.equal(b.testAccuracy, null, 'no evaluation yet');

  const md = studyMarkdown([a, b, studyRow(small)]).trim().split('\n');
  assert.equal(md.length, 7);
  assert.equal(md[6], 'Trained on: AMD EPYC 9B14, 2 cores, 24 GiB, AVX-512 (avx512bw avx512f): plain; machine not recorded (trained before train-summary.json kept it): changed, small.');
  assert.match(md[0], /^\| run \| test \(10,000 images\) \| val \|/, 'the header names the test-set size the runs share');
  assert.equal(md[2], '| plain | 56.78% | 50.00% | 2.5 min | wasm, 2 threads | 64x64 | head 3 | `npm start -- --profile smoke` |');
  assert.match(md[3], /^\| changed \| - \| 50\.00% \|/);
  assert.match(md[4], /^\| small \| 60\.00% \(500 images\) \| 50\.00% \|/, 'a run scored on another number of images says so');
  assert.match(studyMarkdown([studyRow(small)]), /^\| run \| test \(500 images\) \|/);
  assert.match(studyMarkdown([b]), /^\| run \| test \| val \|/, 'no run evaluated yet: no size to name');
  // Flip TTA: a column when some run has it ('-' for the others).
  const withTta = path.join(root, 'tta');
  fakeRun(withTta, { epochs: [1], testAccuracy: 0.7, ttaAccuracy: 0.7123, machine: EPYC });
  const ttaMd = studyMarkdown([studyRow(withTta), a]).trim().split('\n');
  assert.match(ttaMd[0], /^\| run \| test \(10,000 images\) \| with flip TTA \| val \|/);
  assert.match(ttaMd[2], /^\| tta \| 70\.00% \| 71\.23% \| 50\.00% \|/);
  assert.match(ttaMd[3], /^\| plain \| 56\.78% \| - \| 50\.00% \|/);
  assert.equal(ttaMd[5], 'Trained on: AMD EPYC 9B14, 2 cores, 24 GiB, AVX-512 (avx512bw avx512f): all runs.');
  // Robustness: a "mean corruption accuracy" column when some run's evaluation has the table.
  const robust = path.join(root, 'robust');
  fakeRun(robust, { epochs: [1], testAccuracy: 0.7, meanCorruptionAccuracy: 0.6543 });
  assert.equal(studyRow(robust).meanCorruptionAccuracy, 0.6543);
  const robustMd = studyMarkdown([studyRow(robust), a]).trim().split('\n');
  assert.match(robustMd[0], /^\| run \| test \(10,000 images\) \| mean corruption accuracy \| val \|/);
  assert.match(robustMd[2], /^\| robust \| 70\.00% \| 65\.43% \| 50\.00% \|/);
  assert.match(robustMd[3], /^\| plain \| 56\.78% \| - \| 50\.00% \|/);

  const spec = studyCurvesSpec([plain, changed]) as { data: { values: { run: string; metric: string; value: number }[] } };
  const val = spec.data.values.filter((p) => p.metric === 'validation accuracy');
  assert.deepEqual(val.map((p) => `${p.run}:${p.value}`), ['plain:0.35', 'plain:0.45', 'plain:0.55', 'changed:0.35', 'changed:0.45']);

  assert.throws(() => studyRow(path.join(root, 'nothing')), /nothing: not a run folder \(no profile\.json\)/);

  // Cached features computed by ONNX Runtime: the backend column says so (training stays on the backend).
  const onOrt = path.join(root, 'ort');
  fakeRun(onOrt, { epochs: [1], featureEngine: 'onnx' });
  assert.equal(studyRow(onOrt).backend, 'wasm, 2 threads, features on ONNX Runtime');
  fakeRun(path.join(root, 'tfjs'), { epochs: [1], featureEngine: 'tfjs' });
  assert.equal(studyRow(path.join(root, 'tfjs')).backend, 'wasm, 2 threads');
});

test('profileOverrides lists changed leaves as --set paths, arrays by index (an array of another length whole)', () => {
  const base = { a: 1, b: { c: 'x', d: [{ e: 1 }, { e: 2 }] } };
  assert.deepEqual(profileOverrides(base, { a: 1, b: { c: 'y', d: [{ e: 1 }, { e: 3 }] } }), ['b.c=y', 'b.d.1.e=3']);
  assert.deepEqual(profileOverrides(base, base), []);
  assert.deepEqual(profileOverrides(base, { a: 1, b: { c: 'x', d: [{ e: 1 }, { e: 2 }, { e: 3 }] } }), ['b.d=[{"e":1},{"e":2},{"e":3}]']);
});

test('issue 25: compare\'s reproducing command survives a POSIX shell word for word, and a diverged run is marked', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-study-sh-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const run = path.join(root, 'boom');
  const hostile = `it's $HOME \`touch ${path.join(root, 'pwned')}\` ; | & * "q"`;
  fakeRun(run, {
    epochs: [1],
    set: (p) => {
      p.train.phases.push({ ...p.train.phases[0], name: hostile, lr: 0.25, epochs: 1 });
      p.description = 'changed';
    },
  });
  fs.writeFileSync(path.join(run, 'train-summary.json'), JSON.stringify({ status: 'diverged', diverged: { phase: hostile, epoch: 2, step: 5, reason: 'the loss is NaN' } }));
  const row = studyRow(run);
  assert.match(row.command, /^npm start -- --profile smoke --set /);
  // The stand-in for npm prints the words the shell handed it.
  const standIn = `'${process.execPath}' -e 'process.stdout.write(JSON.stringify(process.argv.slice(1)))' --`;
  const r = spawnSync('sh', ['-c', row.command.replace(/^npm start --/, standIn)], { encoding: 'utf8', cwd: root });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!fs.existsSync(path.join(root, 'pwned')), 'nothing in the command ran');
  const words = JSON.parse(r.stdout) as string[];
  assert.deepEqual(words.slice(0, 2), ['--profile', 'smoke']);
  const sets = words.slice(2).filter((_w, i) => i % 2 === 1);
  assert.deepEqual(words.slice(2).filter((_w, i) => i % 2 === 0), sets.map(() => '--set'));
  const again = loadProfile('smoke', sets);
  const saved = JSON.parse(fs.readFileSync(path.join(run, 'profile.json'), 'utf8')) as Profile;
  assert.deepEqual(again.train, saved.train, 'the command makes the same profile');
  assert.equal(again.train.phases[1].name, hostile);
  // Diverged: marked in the table (and in the row) with where it happened.
  assert.equal(row.diverged, `training diverged in phase ${hostile}, epoch 2, step 5: the loss is NaN`);
  assert.match(studyMarkdown([row]).split('\n')[2], /^\| boom \*\*diverged\*\* \(training diverged in phase .*epoch 2, step 5/);
});

test('cli compare prints the table and writes table.md and curves.svg', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-compare-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fakeRun(path.join(root, 'one'), { epochs: [2], testAccuracy: 0.7 });
  const out = path.join(root, 'out');
  const r = spawnSync(process.execPath, [cli, 'compare', path.join(root, 'one'), '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| one \| 70\.00% \|/);
  assert.equal(fs.readFileSync(path.join(out, 'table.md'), 'utf8'), r.stdout);
  const svg = fs.readFileSync(path.join(out, 'curves.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.match(svg, /validation accuracy/);
  const none = spawnSync(process.execPath, [cli, 'compare'], { encoding: 'utf8' });
  assert.equal(none.status, 1);
  assert.match(none.stderr, /compare: no run folders given/);
});

test('issue 20: compare, the report and predict name a run file that is there but damaged, instead of reading it as absent', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-damaged-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const run = path.join(root, 'damaged');
  fakeRun(run, { epochs: [2], testAccuracy: 0.5 });
  const evaluation = path.join(run, 'evaluation.json');
  const summary = path.join(run, 'train-summary.json');
  fs.writeFileSync(evaluation, '{"count": 10000, "accur');
  assert.throws(() => studyRow(run), new RegExp(`^Error: ${evaluation}: JSON object is not valid JSON \\(`), 'compare');
  assert.throws(() => readHeadline(run), new RegExp(`${evaluation}: JSON object is not valid JSON`), 'the report');
  fs.rmSync(evaluation);
  assert.equal(studyRow(run).testAccuracy, null, 'an absent evaluation is only an empty column');
  fs.writeFileSync(summary, '');
  assert.throws(() => readDivergence(run), new RegExp(`${summary}: JSON object is not valid JSON`), 'predict and the report check divergence first');
});
