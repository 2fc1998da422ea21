import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadProfile, paths } from '../../src/config';
import { createRun } from '../../src/session';
import { findJupyterPython, INSTALL_HINT, jupyterEnv } from '../../src/jupyter/kernel';
import { executedUnchanged, trustExecutedNotebooks } from '../../src/jupyter/trust';
import { kernelEnvLines, notebookUsage, planNotebookServer } from '../../src/jupyter/serve';
import { runNotebooks } from '../../src/jupyter/runner';
import { writeReport } from '../../src/results/report';
import { spawnSync } from 'node:child_process';
import { readCells, streamText, writeNotebook } from './helpers';

// Signing notebooks needs nbformat (a Python with Jupyter); in CI (.ci/run installs it) its absence is a failure.
const jupyterPython = findJupyterPython();
const noJupyter = process.env.CI ? false : jupyterPython === null && INSTALL_HINT;

test('npm run notebook --run: the server shows that run\'s notebooks, and a kernel there reads that run and creates no other folder', async (t) => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-serve-'));
  const saved = { data: process.env.TLWB_DATA_DIR, run: process.env.TLWB_RUN_DIR, profile: process.env.TLWB_PROFILE };
  process.env.TLWB_DATA_DIR = data;
  delete process.env.TLWB_RUN_DIR;
  delete process.env.TLWB_PROFILE;
  t.after(() => {
    for (const [k, v] of [['TLWB_DATA_DIR', saved.data], ['TLWB_RUN_DIR', saved.run], ['TLWB_PROFILE', saved.profile]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(data, { recursive: true, force: true });
  });
  const older = createRun(loadProfile('smoke'));
  const newer = createRun(loadProfile('quick'));
  assert.notEqual(older, newer);

  // No flag: the newest run. --run: the one named; server options pass through.
  assert.equal(planNotebookServer([]).runDir, newer);
  const plan = planNotebookServer(['--no-browser', '--run', older, '--port', '8899']);
  assert.equal(plan.runDir, older);
  assert.equal(plan.profile, 'smoke');
  assert.deepEqual(plan.serverArgs, ['--no-browser', '--port', '8899']);
  assert.equal(plan.notebookDir, path.join(older, 'notebooks'));
  assert.equal(plan.env.TLWB_RUN_DIR, older);
  const copied = fs.readdirSync(plan.notebookDir).sort();
  assert.deepEqual(copied, fs.readdirSync(paths().notebooks).filter((f) => /^\d\d-.*\.ipynb$/.test(f)).sort());
  assert.throws(() => planNotebookServer(['--run', data]), /not a run folder \(no profile\.json\)/);

  // A notebook in the run's folder, run by a real tslab kernel with the server's environment.
  const nb = writeNotebook(path.join(plan.notebookDir, '00-check.ipynb'), [
    'import * as wb from "../dist/src";',
    'const s = await wb.session();',
    'console.log(JSON.stringify({ runDir: s.runDir, profile: s.profile.name, cwd: process.cwd() }));',
  ]);
  await runNotebooks([nb], { outDir: plan.notebookDir, env: { ...plan.env, TLWB_DATA_DIR: data, TLWB_BACKEND: 'cpu' }, timeoutSeconds: 120 });
  const cells = readCells(nb);
  // The session's line is a plain-text display that records its run in the output's metadata.
  const line = (cells[1].outputs ?? []).find((o) => o.output_type === 'display_data');
  const said = [streamText(cells[1].outputs), String(line?.data?.['text/plain'] ?? '')].join('');
  assert.match(said, new RegExp(`run .*${path.basename(older)} \\(profile smoke, from TLWB_RUN_DIR\\)`), said);
  assert.deepEqual(line?.metadata, { tlwb: { run: path.basename(older) } });
  assert.match(said, /another run: wb\.session\(\{ runDir: "data\/runs\/<id>" \}\), a fresh one: wb\.session\(\{ newRun: true, profile: "smoke" \}\); from the shell: npm run notebook -- --run data\/runs\/<id>/, 'says how to pick another run');
  const seen = JSON.parse(streamText(cells[2].outputs).trim().split('\n').pop()!);
  assert.equal(seen.runDir, older);
  assert.equal(seen.profile, 'smoke');
  assert.deepEqual(fs.readdirSync(path.join(data, 'runs')).sort(), [path.basename(older), path.basename(newer)].sort(), 'no other run folder');

  // A session that starts another run inside run A's notebook says so in the cell, and A's report refuses to mix them.
  const switching = writeNotebook(path.join(plan.notebookDir, '00-check.ipynb'), [
    'import * as wb from "../dist/src";',
    'const b = await wb.session({ newRun: true, profile: "smoke" });',
    'b.runDir;',
  ]);
  await runNotebooks([switching], { outDir: plan.notebookDir, env: { ...plan.env, TLWB_DATA_DIR: data, TLWB_BACKEND: 'cpu' }, timeoutSeconds: 120 });
  const switched = readCells(switching)[1].outputs ?? [];
  const text = switched.map((o) => String(o.data?.['text/plain'] ?? '')).join('');
  const other = (switched.find((o) => o.output_type === 'display_data')?.metadata as { tlwb?: { run?: string } } | undefined)?.tlwb?.run;
  assert.ok(other && other !== path.basename(older), `the new run is named in the output's metadata (${other})`);
  assert.match(text, new RegExp(`this notebook is run ${path.basename(older)}'s \\(TLWB_RUN_DIR\\).*Run ${other}'s own notebooks: npm run notebook -- --run `, 's'));
  await assert.rejects(writeReport(older), new RegExp(`00-check\\.ipynb belongs to run ${path.basename(older)} but holds outputs of another run: cell 2 \\(run ${other}\\)`));
});

test('npm run notebook --help says how a run is chosen and which environment the kernels read', () => {
  const r = spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', 'src', 'jupyter', 'serve.js'), '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /--run RUN_DIR +the run folder to open/);
  assert.match(r.stdout, /--profile NAME +the newest run of this profile/);
  assert.match(r.stdout, /CIFAR10_DIR/);
});

test('the kernel environment list comes from the presets and data sources: the default profile\'s backbone variable is named', () => {
  const quick = loadProfile('quick');
  const lines = kernelEnvLines(quick, {});
  assert.ok(lines.includes('  MOBILENET_V1_0_75_DIR=(unset)'), lines.join('\n'));
  assert.ok(lines.includes('  CIFAR10_DIR=(unset)'));
  assert.ok(!lines.some((l) => l.includes('DARKNET_TINY_DIR')), 'an unset variable the run does not read is left out');
  assert.ok(kernelEnvLines(quick, { DARKNET_TINY_DIR: '/x' }).includes('  DARKNET_TINY_DIR=/x'), 'a set one is shown');
  const usage = notebookUsage();
  for (const name of ['MOBILENET_V1_0_75_DIR', 'DARKNET_TINY_DIR', 'RESNET50_WEIGHTS', 'CIFAR10_DIR', 'TLWB_BACKEND']) assert.match(usage, new RegExp(`\\b${name}\\b`));
});

/** nbformat's own check, as the Notebook server makes it when it opens a notebook. */
function checkSignatures(files: string[], env: NodeJS.ProcessEnv): boolean[] {
  const script = 'import sys, json\nfrom nbformat import read, NO_CONVERT\nfrom nbformat.sign import NotebookNotary\nn = NotebookNotary()\nprint(json.dumps([n.check_signature(read(open(f, encoding="utf8"), NO_CONVERT)) for f in sys.argv[1:]]))';
  const r = spawnSync(jupyterPython!, ['-c', script, ...files], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('issue 29: the notebooks a run executed are signed for Jupyter when the run is opened; a copy someone edited is not', { skip: noJupyter }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlwb-trust-'));
  const saved = process.env.JUPYTER_DATA_DIR;
  // The server's data folder, where nbformat keeps its key and signature database: the test's own.
  process.env.JUPYTER_DATA_DIR = path.join(dir, 'jupyter-data');
  t.after(() => {
    if (saved === undefined) delete process.env.JUPYTER_DATA_DIR;
    else process.env.JUPYTER_DATA_DIR = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const nbs = path.join(dir, 'run', 'notebooks');
  const a = writeNotebook(path.join(dir, 'src', '01-a.ipynb'), ['console.log("<b>html</b>");', 'console.log(1);']);
  const b = writeNotebook(path.join(dir, 'src', '02-b.ipynb'), ['console.log(2);']);
  await runNotebooks([a, b], { outDir: nbs, timeoutSeconds: 120 });
  const [ea, eb] = [path.join(nbs, '01-a.ipynb'), path.join(nbs, '02-b.ipynb')];
  assert.deepEqual(executedUnchanged(nbs), [ea, eb], 'the runner recorded what it executed');
  // A notebook the project did not execute, and an executed one the user then edited.
  const mine = writeNotebook(path.join(nbs, '03-mine.ipynb'), ['console.log("my own");']);
  const edited = JSON.parse(fs.readFileSync(eb, 'utf8'));
  edited.cells.push({ cell_type: 'markdown', metadata: {}, source: 'my note' });
  fs.writeFileSync(eb, JSON.stringify(edited));
  const env = jupyterEnv();
  assert.deepEqual(checkSignatures([ea, eb, mine], env), [false, false, false], 'nothing is signed before');

  const first = trustExecutedNotebooks(nbs, jupyterPython!, env);
  assert.deepEqual(first.signed, [ea]);
  assert.equal(path.dirname(first.db), process.env.JUPYTER_DATA_DIR, 'signed in the data folder the server uses');
  assert.deepEqual(checkSignatures([ea, eb, mine], env), [true, false, false], 'only the unchanged executed copy is trusted');
  assert.deepEqual(trustExecutedNotebooks(nbs, jupyterPython!, env), { signed: [], already: [ea], db: first.db }, 'signing again changes nothing');
});
