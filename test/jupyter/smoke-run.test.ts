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
import { spawnSync } from 'node:child_process';
import { projectRoot } from '../../src/config';
import { ensureKernel, findJupyterPython, jupyterEnv } from '../../src/jupyter/kernel';
import { distSrc, notebookSchemaErrors } from './helpers';

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
        const k = o.output_type === 'stream' ? `stream:${o.name}` : `${o.output_type}:${Object.keys(o.data ?? {}).sort().join(',')}`;
        if (!(o.output_type === 'stream' && kinds[kinds.length - 1] === k)) kinds.push(k);
      }
      return kinds.join(' ');
    });
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
  }

  // nbclient (Jupyter's own executor, via nbconvert) on the same notebook makes outputs of the same
  // kinds and number: the HTML export and the report render them the same way.
  await t.test('05-results executed by nbclient has the same outputs (kinds and counts)', { skip: !process.env.CI && findJupyterPython() === null && 'no Python with Jupyter (nbconvert)' }, () => {
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
    assert.deepEqual(ours, theirs);
    assert.ok(ours.some((k) => /display_data:.*image\/svg\+xml/.test(k)) && ours.some((k) => /text\/html/.test(k)), ours.join('\n'));
  });
});
