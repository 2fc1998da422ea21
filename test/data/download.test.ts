import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { download, md5File } from '../../src/data/download';
import { extractTarGz } from '../../src/data/archive';
import { fetchCifar10, loadCifar10, resolveCifar10Dir } from '../../src/data/cifar10';
import { loadDataset } from '../../src/data/dataset';
import { syntheticLabel, tempDir, writeCifarArchive } from './fixtures';

const md5 = (b: Uint8Array) => crypto.createHash('md5').update(b).digest('hex');

/** A local server: path -> body; counts requests per path. */
const files = new Map<string, Buffer>();
const hits = new Map<string, number>();
const server = http.createServer((req, res) => {
  const url = req.url ?? '';
  hits.set(url, (hits.get(url) ?? 0) + 1);
  if (url === '/moved') {
    res.writeHead(302, { location: '/payload.bin' });
    res.end();
    return;
  }
  const body = files.get(url);
  if (!body) {
    res.writeHead(404);
    res.end('not here');
    return;
  }
  res.writeHead(200, { 'content-length': body.length });
  res.end(body);
});
let base = '';
const ready = new Promise<void>((resolve) =>
  server.listen(0, '127.0.0.1', () => {
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    resolve();
  }),
);
after(() => server.close());

const payload = crypto.randomBytes(200_000);
files.set('/payload.bin', payload);

test('download streams to the destination, checks md5, and reuses the cached file', async () => {
  await ready;
  const dest = path.join(tempDir(), 'sub', 'payload.bin');
  hits.clear();
  await download(`${base}/payload.bin`, dest, { md5: md5(payload), quiet: true });
  assert.deepEqual(fs.readFileSync(dest), payload);
  assert.equal(await md5File(dest), md5(payload));
  await download(`${base}/payload.bin`, dest, { md5: md5(payload), quiet: true });
  assert.equal(hits.get('/payload.bin'), 1, 'the cached copy was used');
  assert.deepEqual(fs.readdirSync(path.dirname(dest)), ['payload.bin'], 'no .part file left');
});

test('redirects are followed', async () => {
  await ready;
  const dest = path.join(tempDir(), 'r.bin');
  await download(`${base}/moved`, dest, { md5: md5(payload), quiet: true });
  assert.deepEqual(fs.readFileSync(dest), payload);
});

test('an md5 mismatch is an error naming the URL, and leaves no file behind', async () => {
  await ready;
  const dir = tempDir();
  const dest = path.join(dir, 'payload.bin');
  await assert.rejects(
    download(`${base}/payload.bin`, dest, { md5: '0'.repeat(32), quiet: true }),
    (e: Error) => e.message.includes(`${base}/payload.bin`) && /md5 mismatch/.test(e.message) && e.message.includes(md5(payload)),
  );
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('a corrupt cached file is deleted and fetched again', async () => {
  await ready;
  const dest = path.join(tempDir(), 'payload.bin');
  fs.writeFileSync(dest, payload.subarray(0, 1000));
  hits.clear();
  await download(`${base}/payload.bin`, dest, { md5: md5(payload), quiet: true });
  assert.equal(hits.get('/payload.bin'), 1);
  assert.deepEqual(fs.readFileSync(dest), payload);
});

test('HTTP errors name the URL and status', async () => {
  await ready;
  const dest = path.join(tempDir(), 'x.bin');
  await assert.rejects(download(`${base}/missing.tar.gz`, dest, { quiet: true }), (e: Error) => e.message.includes('/missing.tar.gz') && /HTTP 404/.test(e.message));
  assert.equal(fs.existsSync(dest), false);
});

test('fetchCifar10 downloads the archive, verifies it, extracts it once; a rerun makes no request', async () => {
  await ready;
  const work = tempDir();
  const archive = await writeCifarArchive(path.join(work, 'built.tar.gz'), 2, 3);
  files.set('/cifar-10-binary.tar.gz', archive);
  const saved = { data: process.env.TLWB_DATA_DIR, url: process.env.CIFAR10_URL, dir: process.env.CIFAR10_DIR };
  process.env.TLWB_DATA_DIR = path.join(work, 'data');
  process.env.CIFAR10_URL = `${base}/cifar-10-binary.tar.gz`;
  delete process.env.CIFAR10_DIR;
  try {
    hits.clear();
    const dir = await fetchCifar10({ md5: md5(archive), quiet: true });
    assert.equal(dir, path.join(work, 'data', 'cache', 'cifar-10', 'cifar-10-batches-bin'));
    const ds = loadCifar10(dir);
    assert.equal(ds.train.count, 10);
    assert.equal(ds.test!.count, 3);
    assert.equal(ds.train.labels[7], syntheticLabel(7));
    assert.equal(await resolveCifar10Dir(undefined, { md5: md5(archive), quiet: true }), dir);
    const viaConfig = await loadDataset({ source: 'cifar10', valFraction: 0.1, imageSize: 32, trainLimit: 4 }, { md5: md5(archive), quiet: true });
    assert.equal(viaConfig.train.count, 4);
    assert.equal(hits.get('/cifar-10-binary.tar.gz'), 1, 'one download for three loads');
    assert.deepEqual(fs.readdirSync(path.join(work, 'data', 'cache')), ['cifar-10'], 'no temporary extraction folder left');

    // A corrupt cached archive (and no extracted folder) is fetched again.
    fs.rmSync(path.join(work, 'data', 'cache', 'cifar-10'), { recursive: true });
    fs.writeFileSync(path.join(work, 'data', 'downloads', 'cifar-10-binary.tar.gz'), archive.subarray(0, 100));
    const refetched = await fetchCifar10({ md5: md5(archive), quiet: true });
    assert.equal(loadCifar10(refetched).train.count, 10);
    assert.equal(hits.get('/cifar-10-binary.tar.gz'), 2, 'the corrupt archive was downloaded again');

    // The official md5 does not match our small archive: with the default md5 a fresh cache fails loudly.
    process.env.TLWB_DATA_DIR = path.join(work, 'data2');
    await assert.rejects(fetchCifar10({ quiet: true }), /md5 mismatch.*c32a1d4ab5d03f1284b67883e8d87530/);
    assert.equal(fs.existsSync(path.join(work, 'data2', 'cache', 'cifar-10')), false);
  } finally {
    for (const [k, v] of Object.entries({ TLWB_DATA_DIR: saved.data, CIFAR10_URL: saved.url, CIFAR10_DIR: saved.dir })) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('a truncated archive fails extraction naming it and leaves no folder that looks complete', async () => {
  const work = tempDir();
  const good = await writeCifarArchive(path.join(work, 'good.tar.gz'), 2, 2);
  const bad = path.join(work, 'bad.tar.gz');
  fs.writeFileSync(bad, good.subarray(0, Math.floor(good.length / 2)));
  const dest = path.join(work, 'out');
  await assert.rejects(extractTarGz(bad, dest), (e: Error) => e.message.includes(bad) && /cannot extract/.test(e.message));
  assert.deepEqual(fs.readdirSync(work).sort(), ['bad.tar.gz', 'good.tar.gz']);
  await extractTarGz(path.join(work, 'good.tar.gz'), dest);
  assert.ok(fs.existsSync(path.join(dest, 'cifar-10-batches-bin', 'test_batch.bin')));
  await assert.rejects(extractTarGz(path.join(work, 'good.tar.gz'), dest), /already exists/);
});

test('fetchCifar10 with an undecodable archive and no md5 drops the cached archive', async () => {
  await ready;
  const work = tempDir();
  files.set('/garbage.tar.gz', Buffer.from('this is not a gzip stream at all'));
  const saved = process.env.TLWB_DATA_DIR;
  process.env.TLWB_DATA_DIR = work;
  try {
    await assert.rejects(fetchCifar10({ url: `${base}/garbage.tar.gz`, md5: '', quiet: true }), /cifar-10-binary\.tar\.gz: cannot extract/);
    assert.equal(fs.existsSync(path.join(work, 'downloads', 'cifar-10-binary.tar.gz')), false);
    assert.equal(fs.existsSync(path.join(work, 'cache', 'cifar-10')), false);
  } finally {
    if (saved === undefined) delete process.env.TLWB_DATA_DIR;
    else process.env.TLWB_DATA_DIR = saved;
  }
});

test('progress off a terminal: a line per 10% step reached, on stderr', async () => {
  await ready;
  const dest = path.join(tempDir(), 'p.bin');
  const written: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  const wasTTY = process.stderr.isTTY;
  (process.stderr as { isTTY?: boolean }).isTTY = false;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    await download(`${base}/payload.bin`, dest, { md5: md5(payload) });
  } finally {
    process.stderr.write = original;
    (process.stderr as { isTTY?: boolean }).isTTY = wasTTY;
  }
  const text = written.join('');
  assert.match(text, /p\.bin: downloading 200 kB/);
  assert.match(text, /p\.bin: 100% \(200 kB\)/);
  assert.match(text, /downloaded, md5 ok/);
});
