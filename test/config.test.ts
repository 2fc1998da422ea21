import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { deepMerge, listProfiles, loadProfile, paths, profileJsonSchemaFile, profileJsonSchemaText, projectRoot, setPath } from '../src/config';
import { createRun, refuseChangedProfile } from '../src/session';

function tmpDir(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A profile file in `dir` (smoke's fields, changed by `patch`), referenced by explicit path. */
function writeProfile(dir: string, file: string, patch: Record<string, unknown>): string {
  const smoke = JSON.parse(fs.readFileSync(path.join(projectRoot, 'profiles', 'smoke.json'), 'utf8'));
  delete smoke.$schema;
  const full = path.join(dir, file);
  fs.writeFileSync(full, JSON.stringify({ ...smoke, ...patch }));
  return full;
}

test('every committed profile loads and validates', () => {
  const names = listProfiles();
  assert.ok(names.includes('smoke'), `profiles found: ${names.join(', ')}`);
  for (const name of names) assert.equal(loadProfile(name).name, name);
});

test("robust-tune: cpu-best's model with its one phase in place of cpu-best's two (extends replaces arrays), robust-cpu-best's augmentation", () => {
  const tune = loadProfile('robust-tune');
  const best = loadProfile('cpu-best');
  assert.equal(tune.model.initFrom, 'docs/results/mobilenet-finetune-128');
  assert.deepEqual({ ...tune.model, initFrom: undefined }, { ...best.model, initFrom: undefined }, 'the model is built as cpu-best\'s was');
  assert.deepEqual(tune.train.phases.map((p) => p.name), ['robust-tune']);
  const finetune = best.train.phases.find((p) => p.name === 'finetune-all')!;
  assert.deepEqual(Object.keys(tune.train.phases[0]).sort(), Object.keys(finetune).sort(), "the keys of cpu-best's finetune-all phase");
  assert.deepEqual(tune.train.photoAugment, loadProfile('robust-cpu-best').train.photoAugment);
  assert.equal(tune.results.robustness, true);
  assert.deepEqual([tune.data, tune.train.seed], [best.data, best.train.seed], 'the same validation split as the model was trained with');
});

test('overrides reach nested fields and array elements, typed as JSON where they parse', () => {
  const p = loadProfile('smoke', ['train.phases.0.lr=0.5', 'model.arch=resnet50', 'data.trainLimit=7']);
  assert.equal(p.train.phases[0].lr, 0.5);
  assert.equal(p.model.arch, 'resnet50');
  assert.equal(p.data.trainLimit, 7);
});

test('TLWB_SET applies before command-line overrides', () => {
  process.env.TLWB_SET = 'train.batchSize=3; train.seed=9';
  try {
    const p = loadProfile('smoke', ['train.batchSize=5']);
    assert.equal(p.train.batchSize, 5);
    assert.equal(p.train.seed, 9);
  } finally {
    delete process.env.TLWB_SET;
  }
});

test('a bad field is named with the override that set it, over the profile file', () => {
  assert.throws(() => loadProfile('smoke', ['train.batchSize=0']), /--set train\.batchSize=0 \(over .*smoke\.json\): field 'train\.batchSize' should be a positive integer, got 0/);
  assert.throws(() => loadProfile('smoke', ['model.head=huge']), /field 'model\.head'/);
  assert.throws(() => loadProfile('smoke', ['model.cutLayer=7']), /field 'model\.cutLayer' should be a layer name/);
  assert.equal(loadProfile('smoke-mobilenet', ['model.cutLayer=conv_pw_11_relu']).model.cutLayer, 'conv_pw_11_relu');
  assert.throws(() => loadProfile('no-such-profile'), /unknown profile 'no-such-profile'.*available: .*smoke/);
  assert.throws(() => loadProfile('smoke', ['novalue']), /override 'novalue': expected key\.path=value/);
});

test('CIFAR10_DIR fills the data folder only when the profile leaves it empty', () => {
  process.env.CIFAR10_DIR = '/somewhere/cifar';
  try {
    assert.equal(loadProfile('smoke').data.dir, '/somewhere/cifar');
    assert.equal(loadProfile('smoke', ['data.dir=/mine']).data.dir, '/mine');
  } finally {
    delete process.env.CIFAR10_DIR;
  }
});

test('deepMerge merges objects and replaces arrays; setPath creates missing levels', () => {
  assert.deepEqual(deepMerge({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } }), { a: { b: 1, c: [3] } });
  const o: Record<string, unknown> = {};
  setPath(o, 'x.y.z', 1);
  assert.deepEqual(o, { x: { y: { z: 1 } } });
});

test('TLWB_DATA_DIR moves every data path', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  process.env.TLWB_DATA_DIR = dir;
  try {
    const p = paths();
    assert.equal(p.data, dir);
    assert.equal(p.runs, path.join(dir, 'runs'));
    assert.equal(p.cache, path.join(dir, 'cache'));
  } finally {
    delete process.env.TLWB_DATA_DIR;
  }
});

test('issue 11: --set values of the wrong type or range are refused, naming the override and the field', () => {
  assert.throws(() => loadProfile('smoke', ['data.trainLimit=abc']), /--set data\.trainLimit=abc .*field 'data\.trainLimit' should be a positive integer, got "abc"/);
  assert.throws(() => loadProfile('smoke', ['data.trainLimit=-5']), /field 'data\.trainLimit' should be a positive integer, got -5/);
  assert.throws(() => loadProfile('smoke', ['data.trainLimit=1.5']), /--set data\.trainLimit=1\.5 .*field 'data\.trainLimit' should be a positive integer, got 1\.5/);
  assert.throws(() => loadProfile('smoke', ['train.phases.0.lr=0']), /field 'train\.phases\.0\.lr' should be a finite positive number, got 0/);
  assert.throws(() => loadProfile('smoke', ['data.valFraction=1']), /field 'data\.valFraction' should be a number in \[0, 1\)/);
  assert.throws(() => loadProfile('smoke', ['train.phases.0.schedule={"kind":"linear"}']), /train\.phases\.0\.schedule/);
  assert.equal(loadProfile('smoke', ['data.trainLimit=100']).data.trainLimit, 100);
});

test('issue 11: an unknown field is refused with a did-you-mean, from --set or from a profile file', (t) => {
  assert.throws(() => loadProfile('smoke', ['data.trainLimt=100']), /--set data\.trainLimt=100 .*unknown field 'data\.trainLimt'; did you mean 'data\.trainLimit'\?/);
  assert.throws(() => loadProfile('smoke', ['train.phases.0.optimzer=sgd']), /unknown field 'train\.phases\.0\.optimzer'; did you mean 'train\.phases\.0\.optimizer'\?/);
  const dir = tmpDir(t);
  const file = writeProfile(dir, 'typo.json', { resutls: { tta: false, galleryCount: 1 } });
  assert.throws(() => loadProfile(file), (e: Error) => e.message.startsWith(`${file}: unknown field 'resutls'; did you mean 'results'?`));
});

test('issue 11: an extends cycle is named instead of overflowing the stack', (t) => {
  const dir = tmpDir(t);
  const self = writeProfile(dir, 'self.json', { extends: './self.json' });
  assert.throws(() => loadProfile(self), /profile cycle: .*self\.json extends .*self\.json/);
  writeProfile(dir, 'a.json', { extends: './b.json' });
  writeProfile(dir, 'b.json', { extends: './a.json' });
  assert.throws(() => loadProfile(path.join(dir, 'a.json')), /profile cycle: .*a\.json extends .*b\.json extends .*a\.json/);
  // a chain without a cycle still merges child over parent
  writeProfile(dir, 'parent.json', {});
  fs.writeFileSync(path.join(dir, 'child.json'), JSON.stringify({ extends: './parent.json', data: { trainLimit: 10 } }));
  const p = loadProfile(path.join(dir, 'child.json'));
  assert.equal(p.data.trainLimit, 10);
  assert.equal(p.name, 'child');
});

test('issue 11: a profile name resolves only inside profiles/; a file elsewhere needs an explicit .json path', (t) => {
  const dir = tmpDir(t);
  const evil = writeProfile(dir, 'evil.json', {});
  const rel = path.relative(process.cwd(), evil).replace(/\.json$/, '');
  for (const spec of [rel, `../../${path.basename(dir)}/evil`, '/etc/passwd', 'smoke/../smoke', 'smoke.json']) {
    assert.throws(() => loadProfile(spec), /not a profile name .* give its path ending in \.json/, spec);
  }
  const p = loadProfile(evil);
  assert.equal(p.name, 'evil');
  const rel2 = `./${path.relative(process.cwd(), evil)}`;
  assert.equal(loadProfile(rel2).name, 'evil');
  // a run's saved profile.json (resolved, with its name) can be reused as a profile file
  fs.writeFileSync(path.join(dir, 'saved.json'), JSON.stringify(loadProfile('smoke')));
  assert.equal(loadProfile(path.join(dir, 'saved.json')).name, 'saved');
});

test('issue 11: run folders never leave data/runs, whatever the profile name', (t) => {
  const data = tmpDir(t);
  process.env.TLWB_DATA_DIR = data;
  try {
    const p = loadProfile('smoke');
    for (const name of ['../../x/evil', '/abs/olute', '..']) {
      const dir = createRun({ ...p, name });
      assert.equal(path.dirname(dir), path.join(data, 'runs'), dir);
    }
  } finally {
    delete process.env.TLWB_DATA_DIR;
  }
});

test('issue 11: __proto__, constructor and prototype are refused in --set, TLWB_SET and profile files', (t) => {
  for (const key of ['__proto__.polluted', 'constructor.prototype.polluted', 'data.__proto__.polluted', 'train.prototype']) {
    assert.throws(() => loadProfile('smoke', [`${key}=1`]), /is not a profile field/, key);
  }
  process.env.TLWB_SET = '__proto__.polluted=1';
  try {
    assert.throws(() => loadProfile('smoke'), /is not a profile field/);
  } finally {
    delete process.env.TLWB_SET;
  }
  const dir = tmpDir(t);
  const file = path.join(dir, 'proto.json');
  fs.writeFileSync(file, '{"extends": "smoke", "__proto__": {"polluted": 1}}');
  assert.throws(() => loadProfile(file), /'__proto__' is not a profile field/);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.throws(() => deepMerge({}, JSON.parse('{"__proto__": {"polluted": 1}}')), /not a profile field/);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('issue 11: an existing run refuses another profile or other --set values, saying how to resume or start anew', () => {
  const saved = loadProfile('smoke');
  assert.doesNotThrow(() => refuseChangedProfile('/r', saved, 'smoke', []));
  assert.throws(
    () => refuseChangedProfile('/r', saved, 'smoke', ['train.seed=3']),
    /\/r already holds a run of profile 'smoke'.*train\.seed: 42 -> 3.*train --resume \/r.*start anew/,
  );
  assert.throws(() => refuseChangedProfile('/r', saved, 'quick-darknet', []), /model\.inputSize: 64 -> 128/);
});

test('issue 11: cli train --profile ../../x/evil is refused before any file outside profiles/ is read', (t) => {
  const data = tmpDir(t);
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'train', '--profile', '../../x/evil'], {
    encoding: 'utf8',
    env: { ...process.env, TLWB_DATA_DIR: data, TLWB_BACKEND: 'cpu' },
    timeout: 60_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /profile '\.\.\/\.\.\/x\/evil': not a profile name/);
  assert.doesNotMatch(r.stdout + r.stderr, /backend:/, 'refused before the backend (or anything else) was loaded');
  assert.deepEqual(fs.readdirSync(data), [], 'no run folder was made');
});

test('cli train --run-dir on an existing run with other --set values is refused', (t) => {
  const data = tmpDir(t);
  process.env.TLWB_DATA_DIR = data;
  let run: string;
  try {
    run = createRun(loadProfile('smoke'));
  } finally {
    delete process.env.TLWB_DATA_DIR;
  }
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'train', '--run-dir', run, '--set', 'train.seed=7'], {
    encoding: 'utf8',
    env: { ...process.env, TLWB_DATA_DIR: data, TLWB_BACKEND: 'cpu' },
    timeout: 120_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /already holds a run of profile 'smoke'.*train\.seed: 42 -> 7/);
  assert.deepEqual(fs.readdirSync(run).sort(), ['.tl-workbench-run', 'profile.json'], 'nothing was trained');
});

test('issue 25: --set indexes an array only by a canonical non-negative integer within it', () => {
  assert.equal(loadProfile('smoke', ['train.phases.0.epochs=1']).train.phases[0].epochs, 1);
  for (const [key, index] of [['train.phases.00.epochs', '00'], ['train.phases.foo.x', 'foo'], ['train.phases.-1.x', '-1'], ['train.phases.1.epochs', '1'], ['train.phases.1e0.epochs', '1e0'], ['train.phases. 0.epochs', ' 0']]) {
    assert.throws(
      () => loadProfile('smoke', [`${key}=1`]),
      new RegExp(`--set ${key.replace(/\./g, '\\.')}: '${index}' is not an index of train\\.phases \\(an array of 1: expected 0\\.\\.0\\)`),
      key,
    );
  }
  // the last key too, and under TLWB_SET
  assert.throws(() => loadProfile('smoke', ['train.phases.01={}']), /'01' is not an index of train\.phases/);
  const o: Record<string, unknown> = { a: [1, 2] };
  setPath(o, 'a.1', 5);
  assert.deepEqual(o, { a: [1, 5] });
  assert.throws(() => setPath(o, 'a.2', 5), /'2' is not an index of a \(an array of 2: expected 0\.\.1\)/);
});

test('issue 25: cli train --set train.phases.00.epochs=1 is refused and makes no run folder', (t) => {
  const data = tmpDir(t);
  const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'train', '--profile', 'smoke', '--set', 'train.phases.00.epochs=1'], {
    encoding: 'utf8',
    env: { ...process.env, TLWB_DATA_DIR: data, TLWB_BACKEND: 'cpu', TLWB_SET: '' },
    timeout: 120_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /--set train\.phases\.00\.epochs: '00' is not an index of train\.phases/);
  assert.deepEqual(fs.readdirSync(data), [], 'no run folder was made');
});

test('profiles/profile.schema.json is generated from src/profile-schema.ts and every profile points to it', () => {
  const file = profileJsonSchemaFile();
  assert.ok(fs.existsSync(file), 'run `npm run schema`');
  assert.equal(fs.readFileSync(file, 'utf8'), profileJsonSchemaText(), 'profiles/profile.schema.json is stale: run `npm run schema`');
  const schema = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(schema.additionalProperties, false);
  assert.equal(schema.properties.data.additionalProperties, false);
  assert.ok(schema.properties.data.properties.trainLimit.description);
  for (const name of listProfiles()) {
    const j = JSON.parse(fs.readFileSync(path.join(paths().profiles, `${name}.json`), 'utf8'));
    assert.equal(j.$schema, './profile.schema.json', name);
  }
});
