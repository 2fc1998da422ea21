import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { session, listRuns, readRunProfile, writeFileAtomic } from '../src/session';
import { RUN_MARKER } from '../src/fsutil';

function withDataDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-session-'));
  const saved = { data: process.env.TLWB_DATA_DIR, run: process.env.TLWB_RUN_DIR, profile: process.env.TLWB_PROFILE };
  process.env.TLWB_DATA_DIR = dir;
  delete process.env.TLWB_RUN_DIR;
  delete process.env.TLWB_PROFILE;
  return fn(dir).finally(() => {
    for (const [k, v] of [['TLWB_DATA_DIR', saved.data], ['TLWB_RUN_DIR', saved.run], ['TLWB_PROFILE', saved.profile]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

test('a session reuses the newest run of its profile and starts a new one only when asked', () =>
  withDataDir(async () => {
    const first = await session({ profile: 'smoke', backend: 'cpu', quiet: true });
    assert.ok(fs.existsSync(path.join(first.runDir, 'profile.json')));
    const again = await session({ profile: 'smoke', backend: 'cpu', quiet: true });
    assert.equal(again.runDir, first.runDir);
    const fresh = await session({ profile: 'smoke', backend: 'cpu', quiet: true, newRun: true });
    assert.notEqual(fresh.runDir, first.runDir);
    assert.equal(listRuns('smoke')[0], fresh.runDir);
    assert.equal(listRuns('smoke').length, 2);
  }));

test('TLWB_RUN_DIR pins the run folder and its saved profile wins over overrides', () =>
  withDataDir(async (dir) => {
    const runDir = path.join(dir, 'runs', 'pinned-smoke');
    process.env.TLWB_RUN_DIR = runDir;
    const s = await session({ profile: 'smoke', overrides: ['train.seed=7'], backend: 'cpu', quiet: true });
    assert.equal(s.runDir, runDir);
    assert.equal(s.profile.train.seed, 7);
    const later = await session({ profile: 'smoke', overrides: ['train.seed=8'], backend: 'cpu', quiet: true });
    assert.equal(later.profile.train.seed, 7, 'a run keeps the profile it started with');
  }));

test('writeFileAtomic leaves no temporary file behind', () =>
  withDataDir(async (dir) => {
    const file = path.join(dir, 'a', 'b.txt');
    writeFileAtomic(file, 'hello');
    assert.equal(fs.readFileSync(file, 'utf8'), 'hello');
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['b.txt']);
  }));

test('a new run leaves no folder until something asks for runDir; with no profile named, the newest run of any profile is used', () =>
  withDataDir(async (dir) => {
    const runs = path.join(dir, 'runs');
    const planned = await session({ profile: 'smoke', backend: 'cpu', quiet: true });
    assert.equal(planned.profile.name, 'smoke');
    assert.equal(fs.existsSync(runs), false, 'a session alone writes nothing');
    const made = planned.runDir;
    assert.ok(fs.existsSync(path.join(made, 'profile.json')), 'asking for runDir (to write) makes the folder');
    // No profile named: the newest run, whatever its profile (not a new run of the default profile).
    const lines: string[] = [];
    const log = console.log;
    console.log = (s: string) => lines.push(String(s));
    try {
      const s = await session({ backend: 'cpu' });
      assert.equal(s.runDir, made);
      assert.equal(s.profile.name, 'smoke');
    } finally {
      console.log = log;
    }
    assert.match(lines.join('\n'), /run .*-smoke \(profile smoke; the newest run\)/);
    assert.deepEqual(fs.readdirSync(runs), [path.basename(made)]);
  }));

test('a profile with --set values reuses only a run made with exactly those settings, and says why it starts anew', () =>
  withDataDir(async () => {
    const plain = (await session({ profile: 'smoke', backend: 'cpu', quiet: true })).runDir;
    const limited = await session({ profile: 'smoke', overrides: ['data.trainLimit=500'], backend: 'cpu', quiet: true });
    assert.notEqual(limited.runDir, plain, 'other --set values: not the plain smoke run');
    assert.equal(limited.profile.data.trainLimit, 500);
    const limitedDir = limited.runDir;
    assert.equal((await session({ profile: 'smoke', overrides: ['data.trainLimit=500'], backend: 'cpu', quiet: true })).runDir, limitedDir);
    assert.equal((await session({ profile: 'smoke', backend: 'cpu', quiet: true })).runDir, plain, 'the plain setup finds its own run, not the newer one');
    const lines: string[] = [];
    const log = console.log;
    console.log = (s: string) => lines.push(String(s));
    try {
      await session({ profile: 'smoke', overrides: ['train.seed=99'], backend: 'cpu' });
    } finally {
      console.log = log;
    }
    assert.match(lines.join('\n'), /new: .*the newest run of smoke, .* has other settings: .*train\.seed: 42 -> 99/);
  }));

test('issue 25: a run profile.json that is not valid JSON is named, with what was expected', async () => {
  await withDataDir(async (dir) => {
    const run = path.join(dir, 'runs', '20260101-000000-broken');
    fs.mkdirSync(run, { recursive: true });
    const file = path.join(run, 'profile.json');
    fs.writeFileSync(file, '{"name": "smoke", "data" {');
    assert.throws(() => readRunProfile(run), new RegExp(`^Error: ${file}: the run's profile \\(expected the JSON object written when the run was made\\) is not valid JSON \\(`));
  });
});

test('issue 25: a new run folder carries the marker; a folder of the user\'s named as the run is refused before anything is written', async () => {
  await withDataDir(async (dir) => {
    const s = await session({ profile: 'smoke', newRun: true, backend: 'cpu', quiet: true });
    assert.ok(fs.existsSync(path.join(s.runDir, RUN_MARKER)));
    const mine = path.join(dir, 'mine');
    fs.mkdirSync(mine);
    fs.writeFileSync(path.join(mine, 'notes.txt'), 'precious');
    const u = await session({ profile: 'smoke', runDir: mine, backend: 'cpu', quiet: true });
    assert.throws(() => u.runDir, /run folder .*mine: an existing folder that is not a run folder/);
    assert.deepEqual(fs.readdirSync(mine), ['notes.txt']);
  });
});
