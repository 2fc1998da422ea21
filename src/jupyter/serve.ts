/**
 * `npm run notebook`: opens the notebooks in a browser with the project's tslab kernel.
 * JupyterLab when the Python with Jupyter has it, else the classic Notebook server (Debian's
 * jupyter-notebook). Extra arguments go to the server, e.g. `npm run notebook -- --no-browser --port 9999`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { projectRoot } from '../config';
import { ensureKernel, jupyterEnv } from './kernel';

function has(python: string, module: string): boolean {
  return spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

function main(): void {
  const { python } = ensureKernel();
  const app = has(python, 'jupyterlab') ? 'jupyterlab' : has(python, 'notebook') ? 'notebook' : null;
  if (!app) {
    throw new Error(`${python} has neither JupyterLab nor the classic Notebook: sudo apt-get install -y jupyter-notebook (or pip install jupyterlab)`);
  }
  const extra = process.argv.slice(2);
  // Containers often run as root, where Jupyter refuses to start without this flag.
  const asRoot = process.getuid?.() === 0 && !extra.includes('--allow-root') ? ['--allow-root'] : [];
  const args = ['-m', app, `--notebook-dir=${projectRoot}`, ...asRoot, ...extra];
  process.stderr.write(`starting ${app === 'jupyterlab' ? 'JupyterLab' : 'the Notebook server'}: ${python} ${args.join(' ')}\n` +
    `open notebooks/01-fetch.ipynb; the kernel is "TypeScript" (tslab)\n`);
  const child = spawn(python, args, { stdio: 'inherit', env: jupyterEnv(), cwd: projectRoot });
  // Ctrl-C reaches the server through the shared process group; forward plain signals too.
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

try {
  main();
} catch (e) {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
