/**
 * Which folders the project may write (issue 25): a run folder it created (the marker; older runs by
 * their resolved profile.json; published folders by published.json) or a new or empty one. A user's
 * folder is refused by name before anything in it changes, and an --out never lands in a run's files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertOutTarget, assertRunFolderTarget, enclosingRunFolder, isRunFolder, readJsonFile, readJsonIfExists, readJsonObjectIfExists, replaceFileAtomic, RUN_MARKER, verifyChecksums, checksumsOf } from '../src/fsutil';
import { createRun } from '../src/session';
import { loadProfile, projectRoot } from '../src/config';

const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');

function tmpDir(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-fsutil-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file under `dir` with its content: what "nothing changed" compares. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }).map(String).sort()) {
    const p = path.join(dir, f);
    out[f] = fs.statSync(p).isDirectory() ? '<dir>' : fs.readFileSync(p).toString('base64');
  }
  return out;
}

function runCli(args: string[], data: string) {
  return spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, TLWB_DATA_DIR: data, TLWB_BACKEND: 'cpu', TLWB_SET: '', TLWB_PROFILE: '', TLWB_RUN_DIR: '' },
    timeout: 120_000,
  });
}

/** The user folder: notes, a model/ of the user's, a history.csv. */
function userFolder(root: string): string {
  const u = path.join(root, 'u');
  fs.mkdirSync(path.join(u, 'model'), { recursive: true });
  fs.writeFileSync(path.join(u, 'notes.txt'), 'precious\n');
  fs.writeFileSync(path.join(u, 'model', 'mine.txt'), 'mine\n');
  fs.writeFileSync(path.join(u, 'history.csv'), 'x\n');
  return u;
}

/** A run as the project leaves it (marker, profile, summary, a model folder): enough for the --out checks, which come first. */
function fakeRun(data: string): string {
  process.env.TLWB_DATA_DIR = data;
  try {
    const run = createRun(loadProfile('smoke'));
    fs.writeFileSync(path.join(run, 'train-summary.json'), JSON.stringify({ profile: 'smoke', status: 'finished', epochs: 1 }));
    fs.mkdirSync(path.join(run, 'model'));
    fs.writeFileSync(path.join(run, 'model', 'model.json'), '{"modelTopology":{}}');
    return run;
  } finally {
    delete process.env.TLWB_DATA_DIR;
  }
}

test('isRunFolder: the marker, a published folder, or (runs from before the marker) a resolved profile.json; nothing else', (t) => {
  const root = tmpDir(t);
  const run = fakeRun(root);
  assert.ok(fs.existsSync(path.join(run, RUN_MARKER)), 'createRun writes the marker');
  assert.ok(isRunFolder(run));
  const old = path.join(root, 'old-run');
  fs.mkdirSync(old);
  fs.copyFileSync(path.join(run, 'profile.json'), path.join(old, 'profile.json'));
  assert.ok(isRunFolder(old), 'an old run: its profile.json holds a resolved profile');
  const published = path.join(root, 'pub');
  fs.mkdirSync(published);
  fs.writeFileSync(path.join(published, 'published.json'), '{}');
  assert.ok(isRunFolder(published));
  const stray = path.join(root, 'stray');
  fs.mkdirSync(stray);
  fs.writeFileSync(path.join(stray, 'profile.json'), '{"name":"mine"}');
  assert.ok(!isRunFolder(stray), 'a profile.json that is not a resolved profile does not make a run');
  assert.ok(!isRunFolder(userFolder(root)));
  assert.equal(enclosingRunFolder(path.join(run, 'model', 'model.json')), run);
  assert.equal(enclosingRunFolder(root), undefined);
});

test('assertRunFolderTarget: new, empty and run folders pass; a folder of the user\'s is refused by name', (t) => {
  const root = tmpDir(t);
  assertRunFolderTarget(path.join(root, 'new'));
  fs.mkdirSync(path.join(root, 'empty'));
  assertRunFolderTarget(path.join(root, 'empty'));
  assertRunFolderTarget(fakeRun(root));
  const u = userFolder(root);
  assert.throws(() => assertRunFolderTarget(u), new RegExp(`--run-dir ${u}: an existing folder that is not a run folder .*holds history\\.csv, model, notes\\.txt.*Nothing was changed`));
  fs.writeFileSync(path.join(root, 'file'), 'x');
  assert.throws(() => assertRunFolderTarget(path.join(root, 'file')), /file: exists and is not a folder/);
});

test('issue 25 case 1: train --run-dir into an existing folder that is not a run is refused, nothing in it changed', (t) => {
  const root = tmpDir(t);
  const data = path.join(root, 'data');
  const u = userFolder(root);
  const before = snapshot(u);
  const r = runCli(['train', '--profile', 'smoke', '--set', 'data.trainLimit=300', '--set', 'train.phases.0.epochs=1', '--run-dir', u], data);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`--run-dir ${u}: an existing folder that is not a run folder`));
  assert.doesNotMatch(r.stdout, /finished/);
  assert.deepEqual(snapshot(u), before, 'every file of the folder as it was');
});

test('issue 25 case 2: --out of export, report --compare, compare and publish never lands in a run\'s files, nor on a folder', (t) => {
  const root = tmpDir(t);
  const data = path.join(root, 'data');
  const run = fakeRun(data);
  const run2 = fakeRun(data);
  const before = snapshot(run);
  const refused = (args: string[], re: RegExp) => {
    const r = runCli(args, data);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  };
  const inside = (p: string) => new RegExp(`--out ${p}: inside the run folder ${run} \\(its own files\\)`);
  refused(['export', '--run', run, '--out', path.join(run, 'model', 'model.json')], inside(path.join(run, 'model', 'model.json')));
  refused(['export', '--run', run, '--out', path.join(run, 'profile.json')], inside(path.join(run, 'profile.json')));
  refused(['export', '--run', run2, '--out', path.join(run, 'model.onnx')], inside(path.join(run, 'model.onnx')));
  refused(['report', '--compare', run, run2, '--out', path.join(run, 'profile.json')], inside(path.join(run, 'profile.json')));
  refused(['compare', run, run2, '--out', path.join(run, 'model')], inside(path.join(run, 'model')));
  refused(['compare', run, run2, '--out', run], new RegExp(`--out ${run}: is the run folder ${run} itself`));
  refused(['publish', '--run', run2, '--out', run], new RegExp(`--out ${run}: is the run folder ${run} itself`));
  refused(['publish', '--run', run2, '--out', path.join(run, 'model')], inside(path.join(run, 'model')));
  // An existing folder where a file is expected: named, not EISDIR.
  const folder = path.join(root, 'somewhere');
  fs.mkdirSync(folder);
  refused(['export', '--run', run, '--out', folder], new RegExp(`--out ${folder}: is a folder; expected the path of a file to write`));
  assert.deepEqual(snapshot(run), before, 'the run is as it was');
});

test('assertOutTarget: a command\'s own file in its own run passes; a folder it did not write is not replaced', (t) => {
  const root = tmpDir(t);
  const run = fakeRun(root);
  assertOutTarget(path.join(run, 'model.onnx'), { kind: 'file', allowedInRun: ['model.onnx'], ownRun: run });
  assertOutTarget(path.join(root, 'elsewhere', 'x.onnx'), { kind: 'file' });
  const u = userFolder(root);
  assert.throws(() => assertOutTarget(u, { kind: 'folder' }), /a folder with other files .*that this command did not write/);
  assertOutTarget(u, { kind: 'folder', addsFiles: true }); // compare adds table.md beside what is there
  const pub = path.join(root, 'pub');
  fs.mkdirSync(pub);
  fs.writeFileSync(path.join(pub, 'published.json'), '{}');
  assertOutTarget(pub, { kind: 'folder', replaceable: (d) => fs.existsSync(path.join(d, 'published.json')) });
});

test('issue 25 item 7: a failed write (a full disk) names the file and leaves the old one as it was', (t) => {
  const root = tmpDir(t);
  const file = path.join(root, 'history.csv');
  fs.writeFileSync(file, 'old\n');
  const full = () => {
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
  };
  assert.throws(() => replaceFileAtomic(file, full), (e: NodeJS.ErrnoException) => {
    assert.match(e.message, new RegExp(`^${file}: cannot write \\(the disk is full: ENOSPC`));
    assert.equal(e.code, 'ENOSPC');
    return true;
  });
  assert.equal(fs.readFileSync(file, 'utf8'), 'old\n');
  assert.deepEqual(fs.readdirSync(root), ['history.csv'], 'no temporary file left');
});

test('verifyChecksums names the file that changed since it was saved', (t) => {
  const root = tmpDir(t);
  fs.writeFileSync(path.join(root, 'weights.bin'), Buffer.alloc(64, 1));
  const sums = checksumsOf(root, ['weights.bin']);
  verifyChecksums(root, sums, 'checksums.json');
  const fd = fs.openSync(path.join(root, 'weights.bin'), 'r+');
  fs.writeSync(fd, Buffer.alloc(8, 2), 0, 8, 10);
  fs.closeSync(fd);
  assert.throws(() => verifyChecksums(root, sums, 'checksums.json'), /weights\.bin: weights\.bin changed since it was saved \(sha256 .*as recorded in checksums\.json\)/);
  fs.rmSync(path.join(root, 'weights.bin'));
  assert.throws(() => verifyChecksums(root, sums, 'checksums.json'), /weights\.bin: missing/);
});

test('the one JSON reader: an absent optional file is null; a damaged one is an error naming it and what was expected', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-json-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const good = path.join(dir, 'good.json');
  const broken = path.join(dir, 'broken.json');
  const list = path.join(dir, 'list.json');
  const absent = path.join(dir, 'absent.json');
  fs.writeFileSync(good, '{"a": 1}');
  fs.writeFileSync(broken, '{ "a": ');
  fs.writeFileSync(list, '[1, 2]');
  assert.deepEqual(readJsonFile(good), { a: 1 });
  assert.throws(() => readJsonFile(absent, 'the run summary'), new RegExp(`^Error: ${absent}: cannot read the run summary \\(ENOENT\\)`));
  assert.throws(() => readJsonFile(broken, 'the run summary'), new RegExp(`^Error: ${broken}: the run summary is not valid JSON \\(`));
  assert.equal(readJsonIfExists(absent), null);
  assert.deepEqual(readJsonIfExists(list), [1, 2]);
  assert.throws(() => readJsonIfExists(broken, 'evaluation'), new RegExp(`^Error: ${broken}: evaluation is not valid JSON`), 'present but damaged is not taken for absent');
  assert.deepEqual(readJsonObjectIfExists(good), { a: 1 });
  assert.equal(readJsonObjectIfExists(absent), null);
  assert.throws(() => readJsonObjectIfExists(list, 'an evaluation object'), new RegExp(`^Error: ${list}: expected an evaluation object, got an array`));
});
