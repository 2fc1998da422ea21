/**
 * The tslab kernel, registered in a project-local Jupyter data folder (<root>/.jupyter), never in
 * the user's global one. Every Jupyter process we start gets JUPYTER_PATH pointing there.
 *
 * Only the interactive server (`npm run notebook`) and signing notebooks need Jupyter: headless runs
 * drive the kernel from Node (./kernel-client). The Python that runs Jupyter must have nbclient,
 * nbconvert and ipykernel. On Debian that is
 * /usr/bin/python3 with the apt packages; the python3 first on PATH (pyenv, a venv) may lack them,
 * so candidates are probed in order and the one found is remembered in <root>/.jupyter/python.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { projectRoot } from '../config';
import { writeJsonAtomic } from '../fsutil';

export const APT_PACKAGES = ['jupyter-nbconvert', 'python3-nbclient', 'python3-ipykernel', 'jupyter-notebook'];
export const INSTALL_HINT =
  `no Python with Jupyter found: opening notebooks in JupyterLab or the Notebook server (npm run notebook) needs one\n` +
  `(the modules nbclient, nbconvert and ipykernel; headless runs, npm start, do not).\n` +
  `On Debian/Ubuntu:  sudo apt-get install -y ${APT_PACKAGES.join(' ')}\n` +
  `Elsewhere:         python3 -m pip install nbclient nbconvert ipykernel notebook\n` +
  `Or point TLWB_PYTHON at a Python that has them.`;

const PROBE = 'import nbclient, nbconvert, ipykernel, nbformat';

export interface KernelPaths {
  /** <root>/.jupyter, the --prefix given to tslab install. */
  prefix: string;
  /** <prefix>/share/jupyter, what JUPYTER_PATH must contain. */
  jupyterPath: string;
  kernelJson: string;
  /** The tslab launcher the kernel spec runs. */
  tslabBinary: string;
  /** Remembers which Python has Jupyter. */
  pythonRecord: string;
}

export function kernelPaths(root = projectRoot): KernelPaths {
  const prefix = path.join(root, '.jupyter');
  const jupyterPath = path.join(prefix, 'share', 'jupyter');
  return {
    prefix,
    jupyterPath,
    kernelJson: path.join(jupyterPath, 'kernels', 'tslab', 'kernel.json'),
    tslabBinary: path.join(root, 'node_modules', '.bin', 'tslab'),
    pythonRecord: path.join(prefix, 'python.json'),
  };
}

/** The process environment for Jupyter children: ours, with the project's kernel folder first on JUPYTER_PATH. */
export function jupyterEnv(extra: NodeJS.ProcessEnv = {}, root = projectRoot): NodeJS.ProcessEnv {
  const { jupyterPath } = kernelPaths(root);
  const rest = (process.env.JUPYTER_PATH ?? '').split(path.delimiter).filter((p) => p && p !== jupyterPath);
  return { ...process.env, ...extra, JUPYTER_PATH: [jupyterPath, ...rest].join(path.delimiter) };
}

function hasJupyter(python: string): boolean {
  const r = spawnSync(python, ['-c', PROBE], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

/** Pythons worth trying, in order: TLWB_PYTHON, Debian's /usr/bin/python3, then python3/python on PATH. */
function candidatePythons(): string[] {
  const list: string[] = [];
  if (process.env.TLWB_PYTHON) list.push(process.env.TLWB_PYTHON);
  list.push('/usr/bin/python3');
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const name of ['python3', 'python']) {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) list.push(p);
    }
  }
  return [...new Set(list)].filter((p) => fs.existsSync(p));
}

/** The first Python that can import Jupyter's modules, or null. */
export function findJupyterPython(candidates: string[] = candidatePythons()): string | null {
  for (const python of candidates) if (fs.existsSync(python) && hasJupyter(python)) return python;
  return null;
}

/**
 * The Python with Jupyter this project uses (the remembered one while it still has Jupyter, else
 * the first found), or null. Registers nothing.
 */
export function jupyterPythonIfAny(root = projectRoot): string | null {
  const known = recordedPython(kernelPaths(root));
  return known && hasJupyter(known) ? known : findJupyterPython(candidatePythons().filter((p) => p !== known));
}

export interface KernelInfo {
  python: string;
  jupyterPath: string;
  kernelJson: string;
  /** False when everything was already in place (the quick path). */
  installed: boolean;
}

function recordedPython(p: KernelPaths): string | null {
  try {
    const { python } = JSON.parse(fs.readFileSync(p.pythonRecord, 'utf8')) as { python?: string };
    if (python && fs.existsSync(python) && (!process.env.TLWB_PYTHON || process.env.TLWB_PYTHON === python)) return python;
  } catch {
    /* no record yet */
  }
  return null;
}

function kernelSpecCurrent(p: KernelPaths): boolean {
  try {
    const spec = JSON.parse(fs.readFileSync(p.kernelJson, 'utf8')) as { argv?: string[] };
    return spec.argv?.[0] === p.tslabBinary;
  } catch {
    return false;
  }
}

/**
 * Makes sure the tslab kernel is registered under <root>/.jupyter for a Python with Jupyter.
 * Idempotent: when the kernel spec points at this project's tslab and the remembered Python still
 * exists, it returns at once without starting any process. Throws INSTALL_HINT when no Python has Jupyter.
 */
export function ensureKernel(opts: { force?: boolean; quiet?: boolean; root?: string; pythons?: string[] } = {}): KernelInfo {
  const p = kernelPaths(opts.root);
  const log = (s: string) => {
    if (!opts.quiet) process.stderr.write(`${s}\n`);
  };
  const known = opts.force ? null : recordedPython(p);
  if (known && kernelSpecCurrent(p)) {
    return { python: known, jupyterPath: p.jupyterPath, kernelJson: p.kernelJson, installed: false };
  }
  const python = known ?? findJupyterPython(opts.pythons);
  if (!python) throw new Error(INSTALL_HINT);
  if (!fs.existsSync(p.tslabBinary)) {
    throw new Error(`${p.tslabBinary} is missing: run \`npm ci\` (tslab is a dependency of this project)`);
  }
  log(`registering the tslab kernel for ${python} in ${p.jupyterPath}`);
  const r = spawnSync(
    p.tslabBinary,
    ['install', '--python', python, '--prefix', p.prefix, '--binary', p.tslabBinary],
    { encoding: 'utf8', env: jupyterEnv({}, opts.root) },
  );
  if (r.status !== 0 || !fs.existsSync(p.kernelJson)) {
    throw new Error(`tslab install failed (exit ${r.status ?? r.signal}):\n${r.stdout ?? ''}${r.stderr ?? r.error?.message ?? ''}`);
  }
  writeJsonAtomic(p.pythonRecord, { python });
  return { python, jupyterPath: p.jupyterPath, kernelJson: p.kernelJson, installed: true };
}
