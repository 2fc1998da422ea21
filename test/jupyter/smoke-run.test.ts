/**
 * Issue 24's "done when": with no Python at all on PATH and TLWB_PYTHON unset, `cli run --profile
 * smoke` (what `npm start -- --profile smoke` runs) executes the five notebooks, ends with the test
 * accuracy and a report, and every executed notebook is valid nbformat 4. One real run (1-3 min on
 * CIFAR-10's shared copy) serves every assertion; without the data the test is skipped.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { projectRoot } from '../../src/config';
import { findChromium, launchChromium } from '../../src/results/browser';
import { ensureKernel, findJupyterPython, jupyterEnv } from '../../src/jupyter/kernel';
import { distSrc, notebookSchemaErrors } from './helpers';
import { freePort, stopServer, waitForServer } from '../server-helpers';

const cifar = process.env.CIFAR10_DIR || path.resolve(projectRoot, '../shared/data/cifar-10-batches-bin');
const noData = !fs.existsSync(path.join(cifar, 'data_batch_1.bin')) && `no CIFAR-10 binary batches in ${cifar} (set CIFAR10_DIR)`;

/** Per code cell, the kinds of its outputs (stream name or mime types), runs of one stream counted once. */
function outputKinds(file: string): string[] {
  const nb = JSON.parse(fs.readFileSync(file, 'utf8'));
  return nb.cells
    .filter((c: { cell_type: string }) => c.cell_type === 'code')
    .map((c: { outputs: { output_type: string; name?: string; data?: object }[] }) => {
      const kinds: string[] = [];
      for (const o of c.outputs) {
        // stderr carries warnings whose timing (which cell they land in) varies between kernels and Node versions.
        if (o.output_type === 'stream' && o.name === 'stderr') continue;
        const k = o.output_type === 'stream' ? `stream:${o.name}` : `${o.output_type}:${Object.keys(o.data ?? {}).sort().join(',')}`;
        if (!(o.output_type === 'stream' && kinds[kinds.length - 1] === k)) kinds.push(k);
      }
      return kinds.join(' ');
    });
}

/** nbformat's own check, as the Notebook server makes it when it opens a notebook. */
function signatures(python: string, files: string[], env: NodeJS.ProcessEnv): boolean[] {
  const script = 'import sys, json\nfrom nbformat import read, NO_CONVERT\nfrom nbformat.sign import NotebookNotary\nn = NotebookNotary()\nprint(json.dumps([n.check_signature(read(open(f, encoding="utf8"), NO_CONVERT)) for f in sys.argv[1:]]))';
  const r = spawnSync(python, ['-c', script, ...files], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const jupyterPython = findJupyterPython();
const noJupyter = !process.env.CI && jupyterPython === null && 'no Python with Jupyter (nbconvert, the Notebook server)';
const noChromium = !findChromium() && 'no Chromium (apt-get install chromium, or set CHROMIUM_PATH)';

/** Everything a notebook's cells wrote to stderr, joined (warnings; shown as a diagnostic). */
function stderrText(file: string): string {
  const nb = JSON.parse(fs.readFileSync(file, 'utf8'));
  return nb.cells
    .flatMap((c: { outputs?: { output_type: string; name?: string; text?: string | string[] }[] }) => c.outputs ?? [])
    .filter((o: { output_type: string; name?: string }) => o.output_type === 'stream' && o.name === 'stderr')
    .map((o: { text?: string | string[] }) => (Array.isArray(o.text) ? o.text.join('') : (o.text ?? '')))
    .join('');
}

interface CellOutput {
  output_type: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  metadata?: { tlwb?: { run?: unknown } };
}
interface CodeCell {
  source: string | string[];
  outputs: CellOutput[];
}

/** The plain text of a stream or a text-only result (null for tables, charts and images). */
function outputText(o: CellOutput): string | null {
  const join = (v: string | string[]) => (Array.isArray(v) ? v.join('') : v);
  if (o.output_type === 'stream' && o.text !== undefined) return join(o.text);
  if (o.data && Object.keys(o.data).every((k) => k === 'text/plain')) return join(o.data['text/plain']);
  return null;
}

test('npm start -- --profile smoke with Node alone: five notebooks executed, valid nbformat 4, the test accuracy and a report', { skip: noData }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-smoke-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Only node's own folder on PATH: no python3, no jupyter.
    PATH: path.dirname(process.execPath),
    CIFAR10_DIR: cifar,
    TLWB_DATA_DIR: path.join(dir, 'data'),
    JUPYTER_DATA_DIR: path.join(dir, 'jupyter'),
    TLWB_PROFILE: '',
  };
  delete env.TLWB_PYTHON;
  const cli = path.join(distSrc, 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'run', '--profile', 'smoke', '--quiet'], { encoding: 'utf8', env, timeout: 900_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^test accuracy \d+\.\d% on 500 test images/);
  const runDir = /^run folder: (.+)$/m.exec(r.stdout)?.[1];
  const report = /^report: (.+)$/m.exec(r.stdout)?.[1];
  assert.ok(runDir && report && fs.existsSync(report), r.stdout);
  const executed = fs.readdirSync(path.join(runDir, 'notebooks')).filter((f) => f.endsWith('.ipynb')).sort();
  assert.deepEqual(executed, ['01-fetch.ipynb', '02-preprocess.ipynb', '03-model.ipynb', '04-train.ipynb', '05-results.ipynb']);
  for (const f of executed) {
    const file = path.join(runDir, 'notebooks', f);
    assert.deepEqual(notebookSchemaErrors(file), [], `${f} against nbformat's schema`);
    const nb = JSON.parse(fs.readFileSync(file, 'utf8'));
    const code = nb.cells.filter((c: { cell_type: string }) => c.cell_type === 'code');
    assert.deepEqual(code.map((c: { execution_count: number }) => c.execution_count), code.map((_: unknown, i: number) => i + 1), `${f}: every code cell ran, in order`);
    // Issue 20: a cell ends in a table, a chart or a sentence, never in a raw object or array dump.
    for (const [i, c] of (code as CodeCell[]).entries()) {
      const last = c.outputs.length ? outputText(c.outputs[c.outputs.length - 1]) : null;
      // util.inspect of an array or object: "[ 1, 2 ]", "{ a: 1 }", "[\n  ...", "{}" (a log line such as "[head 1] epoch" is not one).
      if (last !== null && /^\s*[[{](\s|[\]}])/.test(last)) {
        assert.fail(`${f}: code cell ${i + 1} ends in an object dump:\n${c.source}\n---\n${last.slice(0, 400)}`);
      }
    }
    // Issue 29: the session line records the run it works in, and it is this run.
    const runs = (code as CodeCell[]).flatMap((c) => c.outputs.map((o) => o.metadata?.tlwb?.run).filter((v): v is string => typeof v === 'string'));
    assert.ok(runs.length > 0, `${f}: no output carries the run in its metadata`);
    assert.deepEqual([...new Set(runs)], [path.basename(runDir)], `${f}: outputs name the run they were made in`);
  }

  // nbclient (Jupyter's own executor, via nbconvert) on the same notebook makes outputs of the same
  // kinds and number: the HTML export and the report render them the same way.
  await t.test('05-results executed by nbclient has the same outputs (kinds and counts)', { skip: noJupyter }, (st) => {
    const { python } = ensureKernel({ quiet: true });
    const out = path.join(dir, 'nbclient');
    const input = path.join(projectRoot, 'notebooks', '05-results.ipynb');
    const nbc = spawnSync(
      python,
      ['-m', 'nbconvert', '--to', 'notebook', '--execute', '--ExecutePreprocessor.kernel_name=tslab', '--ExecutePreprocessor.timeout=600', '--output-dir', out, input],
      { encoding: 'utf8', env: jupyterEnv({ ...env, PATH: process.env.PATH, TLWB_RUN_DIR: runDir, TLWB_PROFILE: 'smoke', TLWB_HEADLESS: '1' }), timeout: 900_000 },
    );
    assert.equal(nbc.status, 0, nbc.stderr);
    const ours = outputKinds(path.join(runDir, 'notebooks', '05-results.ipynb'));
    const theirs = outputKinds(path.join(out, '05-results.ipynb'));
    for (const [who, file] of [['ours', path.join(runDir, 'notebooks', '05-results.ipynb')], ['nbclient', path.join(out, '05-results.ipynb')]]) {
      const text = stderrText(file);
      if (text) st.diagnostic(`05-results stderr (${who}): ${text.slice(0, 600)}`);
    }
    assert.deepEqual(ours, theirs);
    assert.ok(ours.some((k) => /display_data:.*image\/svg\+xml/.test(k)) && ours.some((k) => /text\/html/.test(k)), ours.join('\n'));
  });

  // Issue 29: a run made without Python opens trusted: npm run notebook signs what the run executed,
  // and the classic Notebook shows 05-results as made (no "Not Trusted", the sample grid in rows).
  await t.test('npm run notebook -- --run <run> signs its notebooks; Chromium sees 05-results trusted with its sample grid in rows', { skip: noJupyter || noChromium, timeout: 240_000 }, async () => {
    const files = executed.map((f) => path.join(runDir, 'notebooks', f));
    // The run signed its notebooks in its own data folder when it found Jupyter (/usr/bin/python3 is
    // probed whatever PATH says); a server with a data folder of its own has not seen them, as for a
    // run made on a machine without Python.
    if (jupyterPython) assert.match(r.stderr, /signed 5 executed notebook\(s\) for Jupyter/);
    const serverEnv = jupyterEnv({
      ...env,
      PATH: process.env.PATH,
      JUPYTER_DATA_DIR: path.join(dir, 'jupyter-server-data'),
      JUPYTER_CONFIG_DIR: path.join(dir, 'jupyter-config'),
      JUPYTER_RUNTIME_DIR: path.join(dir, 'jupyter-runtime'),
    });
    assert.deepEqual(signatures(jupyterPython!, files, serverEnv), files.map(() => false), 'not signed for this data folder yet');
    const port = await freePort();
    const token = crypto.randomBytes(16).toString('hex');
    const serve = path.join(distSrc, 'jupyter', 'serve.js');
    let log = '';
    const server = spawn(process.execPath, [serve, '--run', runDir, '--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0', `--NotebookApp.token=${token}`], { env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => (log += d));
    server.stderr!.on('data', (d) => (log += d));
    const browser = await launchChromium();
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitForServer(`${base}/api/status?token=${token}`, server, () => log, 90);
      assert.match(log, /trusted: 5 notebook\(s\) the project executed \(5 signed now\)/);
      assert.deepEqual(signatures(jupyterPython!, files, serverEnv), files.map(() => true), 'nbformat\'s check passes for all five');
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await context.route((url) => !url.href.startsWith(base), (route) => route.abort());
      const page = await context.newPage();
      await page.goto(`${base}/notebooks/05-results.ipynb?token=${token}`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
      await page.waitForSelector('#notebook .output_area img', { state: 'attached', timeout: 60_000 });
      await page.waitForFunction(() => /trusted/i.test(document.querySelector('#notification_trusted')?.textContent ?? ''), null, { timeout: 30_000 });
      const trusted = await page.textContent('#notification_trusted');
      assert.equal(trusted?.trim(), 'Trusted', `the Notebook's trust indicator says ${JSON.stringify(trusted)}`);
      // The widest row of images in any output: a grid laid out as made, not collapsed to one column.
      const widestRow = await page.evaluate(() => {
        let best = 0;
        for (const area of Array.from(document.querySelectorAll('#notebook .output_area'))) {
          const rows = new Map<number, number>();
          for (const img of Array.from(area.querySelectorAll('img'))) {
            const r = img.getBoundingClientRect();
            if (r.width > 0) rows.set(Math.round(r.top), (rows.get(Math.round(r.top)) ?? 0) + 1);
          }
          best = Math.max(best, ...rows.values());
        }
        return best;
      });
      assert.ok(widestRow >= 4, `a sample grid shows at least 4 images in a row (widest row: ${widestRow})`);
      await context.close();
    } finally {
      await browser.close();
      await stopServer(server);
    }
  });
});

const darknet = process.env.DARKNET_TINY_DIR || path.resolve(projectRoot, '../shared/data/darknet-tiny');
const noDarknet = !fs.existsSync(path.join(darknet, 'model.json')) && `no Darknet-Tiny model in ${darknet} (set DARKNET_TINY_DIR)`;

test("the README's own-photos command: npm start on a folder of photos (sizes, formats, no test split) runs the five notebooks for its classes", { skip: noDarknet }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-photos-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sharp = (await import('sharp')).default;
  const colours: Record<string, [number, number, number]> = { red: [200, 30, 30], green: [30, 170, 40], blue: [30, 40, 200] };
  const formats = ['jpeg', 'png', 'webp'] as const;
  for (const [name, rgb] of Object.entries(colours)) {
    fs.mkdirSync(path.join(dir, 'photos', name), { recursive: true });
    for (let i = 0; i < 12; i++) {
      const [w, h] = [120 + 37 * i, 300 - 11 * i];
      const grey = 90 + 13 * i;
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="100%" height="100%" fill="rgb(${grey},${grey},${grey})"/><ellipse cx="${w / 2}" cy="${h / 2}" rx="${w / 3}" ry="${h / 3}" fill="rgb(${rgb.join(',')})"/></svg>`;
      const format = formats[i % formats.length];
      await sharp(Buffer.from(svg)).toFormat(format).toFile(path.join(dir, 'photos', name, `${i}.${format === 'jpeg' ? 'jpg' : format}`));
    }
  }
  const env: NodeJS.ProcessEnv = { ...process.env, TLWB_DATA_DIR: path.join(dir, 'data'), JUPYTER_DATA_DIR: path.join(dir, 'jupyter'), TLWB_PROFILE: '' };
  const args = ['run', '--profile', 'smoke', '--set', 'data.source=folder', '--set', `data.dir=${path.join(dir, 'photos')}`, '--set', 'data.imageSize=64', '--quiet'];
  const r = spawnSync(process.execPath, [path.join(distSrc, 'cli.js'), ...args], { encoding: 'utf8', env, timeout: 600_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^test accuracy \d+\.\d% on \d+ test images/m);
  const runDir = /^run folder: (.+)$/m.exec(r.stdout)?.[1];
  assert.ok(runDir, r.stdout);
  const model = JSON.parse(fs.readFileSync(path.join(runDir, 'notebooks', '03-model.ipynb'), 'utf8'));
  const text = model.cells.flatMap((c: CodeCell) => (c.outputs ?? []).map(outputText)).join('\n');
  assert.match(text, /labels: /, 'the ImageNet sanity check ran on the training images (no test split)');
  const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'train-summary.json'), 'utf8'));
  assert.deepEqual(summary.trainPerClass.length, 3, 'a three-class head');
});
