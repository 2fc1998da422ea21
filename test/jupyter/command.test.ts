import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ensureKernel, findJupyterPython, INSTALL_HINT, jupyterEnv, kernelPaths } from '../../src/jupyter/kernel';
import { distSrc, readCells, streamText, writeNotebook } from './helpers';

const noJupyter = process.env.CI ? false : findJupyterPython() === null && INSTALL_HINT;
const cli = path.join(distSrc, 'cli.js');

test('ensureKernel registers tslab in the project .jupyter folder and is quick the second time', { skip: noJupyter }, () => {
  const first = ensureKernel({ quiet: true });
  const p = kernelPaths();
  assert.equal(first.kernelJson, p.kernelJson);
  const spec = JSON.parse(fs.readFileSync(p.kernelJson, 'utf8'));
  assert.equal(spec.argv[0], p.tslabBinary);
  assert.equal(spec.language, 'typescript');
  const t0 = process.hrtime.bigint();
  const again = ensureKernel({ quiet: true });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.equal(again.installed, false);
  assert.equal(again.python, first.python);
  assert.ok(ms < 200, `second call took ${ms} ms`);
});

test('without a Python that has Jupyter, ensureKernel says how to install it', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-nojupyter-'));
  try {
    assert.throws(
      () => ensureKernel({ root, force: true, quiet: true, pythons: [path.join(root, 'no-python')] }),
      (e: Error) => e.message === INSTALL_HINT && /apt-get install -y jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-notebook/.test(e.message),
    );
    assert.equal(fs.existsSync(kernelPaths(root).kernelJson), false);
  } finally {
    fs.rmSync(root, { recursive: true });
  }
});

test('jupyterEnv puts the project kernel folder first on JUPYTER_PATH and keeps the rest', () => {
  const saved = process.env.JUPYTER_PATH;
  process.env.JUPYTER_PATH = ['/elsewhere', kernelPaths().jupyterPath].join(path.delimiter);
  try {
    const env = jupyterEnv({ EXTRA: '1' });
    assert.equal(env.JUPYTER_PATH, [kernelPaths().jupyterPath, '/elsewhere'].join(path.delimiter));
    assert.equal(env.EXTRA, '1');
  } finally {
    if (saved === undefined) delete process.env.JUPYTER_PATH;
    else process.env.JUPYTER_PATH = saved;
  }
});

test('cli run: a new run folder for the profile, notebooks executed into it with TLWB_RUN_DIR set (no Python needed)', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-cmd-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const nbs = path.join(dir, 'notebooks');
  writeNotebook(path.join(nbs, '01-env.ipynb'), [
    `import * as wb from ${JSON.stringify(distSrc)};\nconsole.log([process.env.TLWB_PROFILE, process.env.TLWB_RUN_DIR].join("|"));`,
    'console.log(typeof wb.display.chart, typeof wb.session);',
  ]);
  const r = spawnSync(process.execPath, [cli, 'run', '--profile', 'smoke', '--notebooks', nbs, '--json', '--quiet', '--skip-report'], {
    encoding: 'utf8',
    // Signatures (when Jupyter is there) go to a Jupyter data folder of the test's own.
    env: { ...process.env, TLWB_DATA_DIR: path.join(dir, 'data'), TLWB_PROFILE: '', JUPYTER_DATA_DIR: path.join(dir, 'jupyter') },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  // Issue 29: with Jupyter there, the run signs what it executed (in the data folder Jupyter uses).
  if (!noJupyter) assert.match(r.stderr, new RegExp(`signed 1 executed notebook\\(s\\) for Jupyter \\(${path.join(dir, 'jupyter', 'nbsignatures.db')}\\)`));
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(path.dirname(res.runDir), path.join(dir, 'data', 'runs'));
  assert.match(path.basename(res.runDir), /^\d{8}-\d{6}-smoke$/);
  assert.equal(JSON.parse(fs.readFileSync(path.join(res.runDir, 'profile.json'), 'utf8')).name, 'smoke');
  const executed = path.join(res.runDir, 'notebooks', '01-env.ipynb');
  assert.deepEqual(res.notebooks, [executed]);
  const cells = readCells(executed);
  assert.equal(streamText(cells[0].outputs).trim(), `smoke|${res.runDir}`);
  assert.equal(streamText(cells[1].outputs).trim(), 'function function');

  // --resume runs the notebooks again in the same folder, under the profile saved there.
  fs.rmSync(executed);
  const again = spawnSync(process.execPath, [cli, 'run', '--resume', res.runDir, '--notebooks', nbs, '--json', '--quiet', '--skip-report'], {
    encoding: 'utf8',
    env: { ...process.env, TLWB_DATA_DIR: path.join(dir, 'data'), TLWB_PROFILE: 'quick', JUPYTER_DATA_DIR: path.join(dir, 'jupyter') },
    timeout: 120_000,
  });
  assert.equal(again.status, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout.trim().split('\n').pop()!).runDir, res.runDir);
  assert.equal(streamText(readCells(executed)[0].outputs).trim(), `smoke|${res.runDir}`);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'data', 'runs')), [path.basename(res.runDir)]);
});

test('cli run --resume names a folder that is not a run, and refuses --set', () => {
  const r = spawnSync(process.execPath, [cli, 'run', '--resume', '/nonexistent/run'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\/nonexistent\/run: not a run folder \(no \.tl-workbench-run, no run profile\.json\); nothing was changed/);
  const s = spawnSync(process.execPath, [cli, 'run', '--resume', '/nonexistent/run', '--set', 'train.seed=1'], { encoding: 'utf8' });
  assert.equal(s.status, 1);
  assert.match(s.stderr, /--resume keeps the profile the run started with/);
});

test('cli run names the missing notebooks folder', () => {
  const r = spawnSync(process.execPath, [cli, 'run', '--profile', 'smoke', '--notebooks', '/nonexistent/nbs'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no notebooks to run: \/nonexistent\/nbs/);
});
