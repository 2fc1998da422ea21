/**
 * `npm run notebook [-- --run data/runs/<id> | --profile P] [server options]`: opens one run's
 * notebooks in a browser with the project's tslab kernel. A notebook session is a run: the server
 * shows <run>/notebooks/ (the executed copies `npm start` wrote; clean copies of any missing ones),
 * every kernel gets TLWB_RUN_DIR, so reruns, saves and `report --run` all stay in that run and the
 * committed notebooks/ are never written. With no flag, the newest run; with --profile, that
 * profile's newest run, or a new one. JupyterLab when the Python with Jupyter has it, else the
 * classic Notebook server (Debian's jupyter-notebook). Other arguments go to the server.
 * The interactive server needs a Python with Jupyter (headless runs do not); the executed notebooks
 * of the run are signed for it first (./trust), so their outputs show as made.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { defineCommand, helpText } from '../cli-options';
import { loadProfile, paths, projectRoot, type Profile } from '../config';
import { CIFAR10_ENV } from '../data/cifar10';
import { IMAGENET_LABEL_SOURCES } from '../model/imagenet';
import { PRESETS, presetEnv } from '../model/presets';
import { createRun, listRuns, readRunProfile } from '../session';
import { ensureKernel, jupyterEnv } from './kernel';
import { listNotebooks } from './runner';
import { trustExecutedNotebooks } from './trust';

/** The workbench's own settings a kernel reads (backend, threads, data folder, inference engine). */
const WORKBENCH_ENV = ['TLWB_BACKEND', 'TLWB_WASM_THREADS', 'TLWB_INFERENCE', 'TLWB_DATA_DIR'];

/**
 * Every variable the kernels read, derived from the data sources and the backbone presets (so a new
 * preset's variable is listed without anyone remembering to).
 */
export function kernelEnvNames(): string[] {
  return [
    ...new Set([
      ...CIFAR10_ENV,
      ...Object.values(PRESETS).flatMap(presetEnv),
      ...Object.values(IMAGENET_LABEL_SOURCES).map((s) => s.env),
      ...WORKBENCH_ENV,
    ]),
  ];
}

/** The variables a run's profile reads: its data source's and its backbone's. */
function profileEnvNames(profile: Profile): string[] {
  const preset = PRESETS[profile.model.arch];
  return [...(profile.data.source === 'cifar10' ? ['CIFAR10_DIR'] : []), ...(preset ? presetEnv(preset) : [])];
}

/**
 * `npm run notebook`'s own options. Everything else goes to the Jupyter server, so unknown options
 * are passed on rather than refused; the usage text is still made from this declaration.
 */
export const NOTEBOOK_COMMAND = defineCommand({
  name: 'notebook',
  usage: ['npm run notebook [-- --run data/runs/<id> | --profile NAME] [server options]'],
  about:
    "  Opens a run's notebooks (<run>/notebooks/) in JupyterLab or the classic Notebook server, with the\n" +
    '  tslab kernel and TLWB_RUN_DIR=<run> for every kernel: reruns and saves stay in the run, and\n' +
    '  `npm run -s cli -- report --run <run>` exports what you see.',
  options: {
    run: { type: 'string', value: 'RUN_DIR', help: 'the run folder to open' },
    profile: {
      type: 'string',
      value: 'NAME',
      help: 'the newest run of this profile (a new run when it has none); with neither option, the newest\nrun of any profile (a new run of TLWB_PROFILE or quick when there is none)',
    },
  },
});

export function notebookUsage(): string {
  return helpText({
    ...NOTEBOOK_COMMAND,
    notes:
      '  Other options go to the server, e.g. --no-browser --port 8899.\n' +
      "  The kernels inherit this shell's environment; set before starting any of:\n" +
      `${wrap(kernelEnvNames().join(' '), 4, 100)}\n` +
      '  (CIFAR10_DIR: a local CIFAR-10, no download; *_DIR and *_WEIGHTS: local backbone weights.)',
  });
}

/** Words wrapped at `width`, each line indented by `indent` spaces. */
function wrap(text: string, indent: number, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l) => `${' '.repeat(indent)}${l}`).join('\n');
}

/**
 * The kernel environment as the server prints it: every variable that is set, and the unset ones
 * this run's profile reads (so "unset" there means a download).
 */
export function kernelEnvLines(profile: Profile, env: NodeJS.ProcessEnv = process.env): string[] {
  const used = new Set(profileEnvNames(profile));
  return kernelEnvNames()
    .filter((k) => env[k] !== undefined || used.has(k))
    .map((k) => `  ${k}=${env[k] ?? '(unset)'}`);
}

export interface NotebookPlan {
  runDir: string;
  profile: string;
  /** Why this run: named, newest, or new. */
  why: string;
  /** The folder the server shows: <run>/notebooks. */
  notebookDir: string;
  /** Environment for the server and so for every kernel. */
  env: NodeJS.ProcessEnv;
  /** Arguments left for the server. */
  serverArgs: string[];
}

function takeFlag(args: string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  const [flag] = args.splice(i, 1);
  if (flag.includes('=')) return flag.slice(flag.indexOf('=') + 1);
  const value = args.splice(i, 1)[0];
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`);
  return value;
}

/**
 * Resolves the run to open and prepares its notebooks folder: copies the project's notebooks that
 * the run lacks, and links <run>/dist to the compiled library so that the notebooks' import
 * "../dist/src" resolves from <run>/notebooks as it does from notebooks/.
 */
export function planNotebookServer(argv: string[]): NotebookPlan {
  const args = [...argv];
  // The declared options are taken out; the rest are the server's.
  const runFlag = takeFlag(args, 'run' satisfies keyof typeof NOTEBOOK_COMMAND.options);
  const profileFlag = takeFlag(args, 'profile' satisfies keyof typeof NOTEBOOK_COMMAND.options);
  if (runFlag && profileFlag) throw new Error('--run and --profile: give one (a run keeps the profile it started with)');
  let runDir: string;
  let why: string;
  if (runFlag) {
    runDir = path.resolve(runFlag);
    readRunProfile(runDir); // names the folder when it is not a run
    why = 'named with --run';
  } else {
    const name = profileFlag ?? process.env.TLWB_PROFILE;
    const newest = listRuns(name)[0];
    if (newest) {
      runDir = newest;
      why = `the newest run${name ? ` of profile ${name}` : ''}; another: --run data/runs/<id> or --profile NAME`;
    } else {
      // Opening notebooks writes them into the run, so here the new run's folder is made.
      runDir = createRun(loadProfile(name ?? 'quick'));
      why = `new: no run${name ? ` of profile ${name}` : ''} yet`;
    }
  }
  const profile = readRunProfile(runDir).name;
  const notebookDir = path.join(runDir, 'notebooks');
  fs.mkdirSync(notebookDir, { recursive: true });
  for (const nb of listNotebooks(paths().notebooks)) {
    const target = path.join(notebookDir, path.basename(nb));
    if (!fs.existsSync(target)) fs.copyFileSync(nb, target);
  }
  const link = path.join(runDir, 'dist');
  const dist = path.join(projectRoot, 'dist');
  let current: string | null = null;
  try {
    current = fs.readlinkSync(link);
  } catch {
    /* no link yet */
  }
  if (current !== dist) {
    if (current !== null || !fs.existsSync(link)) {
      fs.rmSync(link, { force: true });
      fs.symlinkSync(dist, link, 'dir');
    } else {
      throw new Error(`${link} exists and is not a link to ${dist}: move it away so the notebooks can import ../dist/src`);
    }
  }
  return {
    runDir,
    profile,
    why,
    notebookDir,
    env: jupyterEnv({ TLWB_RUN_DIR: runDir, TLWB_PROFILE: profile }),
    serverArgs: args,
  };
}

function has(python: string, module: string): boolean {
  return spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

function main(): void {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(notebookUsage());
    return;
  }
  const { python } = ensureKernel();
  const app = has(python, 'jupyterlab') ? 'jupyterlab' : has(python, 'notebook') ? 'notebook' : null;
  if (!app) {
    throw new Error(`${python} has neither JupyterLab nor the classic Notebook: sudo apt-get install -y jupyter-notebook (or pip install jupyterlab)`);
  }
  const plan = planNotebookServer(argv);
  // The notebooks the project executed open trusted (their HTML outputs shown as made), also for a
  // run made without Python; a copy someone edited is left to them.
  const trust = trustExecutedNotebooks(plan.notebookDir, python, plan.env);
  const extra = plan.serverArgs;
  // Containers often run as root, where Jupyter refuses to start without this flag.
  const asRoot = process.getuid?.() === 0 && !extra.includes('--allow-root') ? ['--allow-root'] : [];
  const args = ['-m', app, `--notebook-dir=${plan.notebookDir}`, ...asRoot, ...extra];
  const envLines = kernelEnvLines(readRunProfile(plan.runDir)).join('\n');
  const rel = path.relative(projectRoot, plan.runDir);
  process.stderr.write(
    `run: ${rel.startsWith('..') ? plan.runDir : rel} (profile ${plan.profile}; ${plan.why})\n` +
      `notebooks: ${plan.notebookDir} - reruns and saves stay in this run; export them with npm run -s cli -- report --run ${rel.startsWith('..') ? plan.runDir : rel}\n` +
      `trusted: ${trust.signed.length + trust.already.length} notebook(s) the project executed${trust.signed.length ? ` (${trust.signed.length} signed now)` : ''}\n` +
      `kernel environment (set before starting; all of them: npm run notebook -- --help):\n${envLines}\n` +
      `starting ${app === 'jupyterlab' ? 'JupyterLab' : 'the Notebook server'}: ${python} ${args.join(' ')}\n` +
      `the kernel is "TypeScript" (tslab); Kernel -> Interrupt stops training after the current batch\n`,
  );
  const child = spawn(python, args, { stdio: 'inherit', env: plan.env, cwd: plan.notebookDir });
  // Ctrl-C reaches the server through the shared process group; forward plain signals too.
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
