import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { decodeMessage, encodeMessage, listening, newConnectionInfo } from '../../src/jupyter/kernel-client';
import { notebookJson, splitLines } from '../../src/jupyter/notebook-format';

const header = { msg_id: 'm1', msg_type: 'execute_request', session: 's', username: 'u', date: '2026-01-01T00:00:00.000Z', version: '5.3' };

test('messages are signed with HMAC-SHA256 over header, parent, metadata and content; a wrong key or a changed part is refused', () => {
  const frames = encodeMessage('secret', { header, parent_header: {}, metadata: {}, content: { code: '1+1' } });
  assert.equal(frames[0].toString(), '<IDS|MSG>');
  assert.match(frames[1].toString(), /^[0-9a-f]{64}$/);
  const back = decodeMessage('secret', [Buffer.from('routing-id'), ...frames]);
  assert.deepEqual(back.content, { code: '1+1' });
  assert.equal(back.header.msg_type, 'execute_request');
  assert.throws(() => decodeMessage('other', frames), /wrong HMAC signature/);
  const tampered = [...frames];
  tampered[5] = Buffer.from(JSON.stringify({ code: 'rm -rf' }));
  assert.throws(() => decodeMessage('secret', tampered), /wrong HMAC signature/);
  assert.throws(() => decodeMessage('secret', frames.slice(1)), /malformed/);
});

test('a connection file has five distinct loopback ports and a fresh key', async () => {
  const a = await newConnectionInfo();
  const b = await newConnectionInfo();
  const ports = [a.shell_port, a.iopub_port, a.stdin_port, a.control_port, a.hb_port];
  assert.equal(new Set(ports).size, 5);
  assert.equal(a.ip, '127.0.0.1');
  assert.equal(a.signature_scheme, 'hmac-sha256');
  assert.match(a.key, /^[0-9a-f]{64}$/);
  assert.notEqual(a.key, b.key);
});

test('notebooks are written as nbformat.write writes them: sorted keys, one-space indent, text split into lines', () => {
  assert.deepEqual(splitLines('a\nb\r\nc'), ['a\n', 'b\r\n', 'c']);
  assert.deepEqual(splitLines(''), []);
  const text = notebookJson({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: [
      {
        id: 'x',
        cell_type: 'code',
        source: 'const a = 1;\na',
        metadata: {},
        execution_count: 1,
        outputs: [{ output_type: 'display_data', data: { 'text/plain': 'one\ntwo', 'application/vnd.vegalite.v5+json': { mark: 'bar' } }, metadata: {} }],
      },
    ],
  });
  assert.ok(text.endsWith('}\n'));
  const nb = JSON.parse(text);
  assert.deepEqual(Object.keys(nb), ['cells', 'metadata', 'nbformat', 'nbformat_minor']);
  assert.deepEqual(Object.keys(nb.cells[0]), ['cell_type', 'execution_count', 'id', 'metadata', 'outputs', 'source']);
  assert.deepEqual(nb.cells[0].source, ['const a = 1;\n', 'a']);
  assert.deepEqual(nb.cells[0].outputs[0].data['text/plain'], ['one\n', 'two']);
  assert.deepEqual(nb.cells[0].outputs[0].data['application/vnd.vegalite.v5+json'], { mark: 'bar' }, 'JSON mime types stay objects');
  assert.ok(text.startsWith('{\n "cells": [\n  {\n   "cell_type": "code",'), text.slice(0, 60));
});

test('listening: true while a server accepts on the port, false once it is closed (the probe before the first request)', async () => {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  assert.equal(await listening('127.0.0.1', port), true);
  await new Promise<void>((r) => server.close(() => r()));
  assert.equal(await listening('127.0.0.1', port), false);
});
