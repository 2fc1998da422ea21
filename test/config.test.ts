import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deepMerge, listProfiles, loadProfile, paths, setPath } from '../src/config';

test('every committed profile loads and validates', () => {
  const names = listProfiles();
  assert.ok(names.includes('smoke'), `profiles found: ${names.join(', ')}`);
  for (const name of names) assert.equal(loadProfile(name).name, name);
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

test('a bad field is named with the profile file', () => {
  assert.throws(() => loadProfile('smoke', ['train.batchSize=0']), /smoke\.json: field 'train\.batchSize' should be a positive integer, got 0/);
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

test('TLWB_DATA_DIR moves every data path', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-'));
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
