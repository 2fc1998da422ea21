/** Notebook 03's preset table: what the backbone is and where its weights come from, for each kind of preset. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { presetTable } from '../../src/model/summary';
import type { Row } from '../../src/display';

const field = (rows: Row[], name: string) => rows.find((r) => r.field === name)?.value;

test('presetTable: a TF.js preset names its cut layer and the host of a download, never the full URL', () => {
  const rows = presetTable({ arch: 'darknet-tiny' });
  assert.equal(field(rows, 'kind'), 'TF.js layers model');
  assert.equal(field(rows, "'gap' head cuts at"), 'leaky_re_lu_15');
  const weights = String(field(rows, 'ImageNet weights'));
  assert.ok(weights === 'a download from cdn.jsdelivr.net' || !/^https?:/.test(weights), weights);
});

test('presetTable: an ONNX preset and a model.onnx file of ones own are described as ONNX graphs (sha256 checked, cut point named)', () => {
  const zoo = presetTable({ arch: 'onnx-mobilenet-v2' });
  assert.equal(field(zoo, 'kind'), 'ONNX graph (imported as TF.js layers)');
  assert.equal(field(zoo, 'ImageNet weights'), 'a download from github.com (sha256 checked)');
  assert.equal(field(zoo, 'preprocessing'), 'torch');
  const own = presetTable({ arch: 'mine', onnx: { file: '/models/net.onnx', cut: 'conv_last' } });
  assert.equal(field(own, 'ImageNet weights'), '/models/net.onnx');
  assert.equal(field(own, "'gap' head cuts at"), 'conv_last');
});
