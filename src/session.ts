/**
 * What every notebook and command starts with: the resolved profile, the run folder and the backend.
 * The headless runner and `npm run notebook` pass TLWB_RUN_DIR to every kernel of one run; without
 * it the newest run is reused, so notebooks 01..05 opened one after another share a run folder, and
 * a rerun cell continues that run instead of starting over. A new run's folder appears only when
 * something is written into it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeBackend, initBackend, BackendInfo } from './backend';
import { inKernel as runningInKernel, runLine } from './display';
import { loadProfile, paths, Profile, resolveProfileFile } from './config';
import { assertRunFolderTarget, markRunFolder, readJsonFile, writeJsonAtomic } from './fsutil';

export interface Session {
  profile: Profile;
  /** The run folder; for a new run it is created (with profile.json) when first read. */
  readonly runDir: string;
  backend: BackendInfo;
}

export interface SessionOptions {
  /** Profile name; default TLWB_PROFILE, else the default for the backend (seed on a GPU, quick otherwise). */
  profile?: string;
  overrides?: string[];
  /** A run folder to use; default TLWB_RUN_DIR, else the newest run of the profile (of any profile when none is named). */
  runDir?: string;
  /** Start a new run folder even when one exists. */
  newRun?: boolean;
  backend?: string;
  quiet?: boolean;
}

/** The profile `npm start` uses when none is named: the article's recipe where a GPU can carry it. */
export function defaultProfileFor(backend: BackendInfo): { name: string; why: string } {
  return backend.gpu
    ? { name: 'seed', why: 'a CUDA backend is in use, so the article recipe (ResNet-50 at 224) is practical' }
    : { name: 'quick', why: `no GPU backend (${backend.choice}), so the CPU recipe: cached frozen features, then the head and the top block` };
}

function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Run folders of a profile, newest first (names start with a sortable timestamp). */
export function listRuns(profileName?: string): string[] {
  const dir = paths().runs;
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => fs.existsSync(path.join(dir, n, 'profile.json')))
    .filter((n) => !profileName || readRunProfile(path.join(dir, n)).name === profileName)
    .sort()
    .reverse()
    .map((n) => path.join(dir, n));
}

/** A new run's folder name data/runs/<yyyymmdd-hhmmss>-<profile>, not yet taken (not created). */
export function plannedRunDir(profileName: string): string {
  // Two runs started in the same second get .02, .03, ... before the profile name, which keeps
  // the folder names sorting in creation order.
  // A suffix taken by a run of any profile counts, so that the newest run sorts last whatever its profile.
  const stamp = timestamp();
  // The folder name takes only safe characters of the profile name, so a run never lands outside data/runs.
  const label = profileName.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[.-]+/, '') || 'profile';
  const taken = fs.existsSync(paths().runs) ? fs.readdirSync(paths().runs) : [];
  const free = (prefix: string) => !taken.some((n) => n.startsWith(`${prefix}-`));
  let prefix = stamp;
  for (let i = 2; !free(prefix); i++) prefix = `${stamp}.${String(i).padStart(2, '0')}`;
  const dir = path.join(paths().runs, `${prefix}-${label}`);
  if (path.dirname(dir) !== paths().runs) throw new Error(`run folder ${dir} would not be inside ${paths().runs}`);
  return dir;
}

/** A fresh run folder data/runs/<yyyymmdd-hhmmss>-<profile> holding the resolved profile. */
export function createRun(profile: Profile): string {
  const dir = plannedRunDir(profile.name);
  fs.mkdirSync(dir, { recursive: true });
  markRunFolder(dir);
  writeJsonAtomic(path.join(dir, 'profile.json'), profile);
  return dir;
}

export function readRunProfile(runDir: string): Profile {
  const file = path.join(runDir, 'profile.json');
  if (!fs.existsSync(file)) throw new Error(`${runDir}: not a run folder (no profile.json)`);
  return readJsonFile<Profile>(file, "the run's profile (expected the JSON object written when the run was made)");
}

// The atomic writers moved to fsutil.ts; re-exported here for callers of the old place.
export { writeJsonAtomic, writeFileAtomic, replaceFileAtomic } from './fsutil';

/** Leaf fields where two profiles differ, as "a.b: x -> y". */
function profileDifferences(a: unknown, b: unknown, prefix = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => profileDifferences(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [`${prefix}: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`];
}

/** Where a run's saved profile differs from the wanted one, its description aside (it is prose, not a setting). */
function settingsDiffer(saved: Profile, wanted: Profile): string[] {
  return profileDifferences(saved, wanted).filter((d) => !d.startsWith('description:'));
}

/**
 * An existing run keeps the profile it started with: asking for another profile or other --set
 * values there is refused (silently ignoring them trained something else than what was asked).
 */
export function refuseChangedProfile(runDir: string, saved: Profile, name: string, overrides: string[]): void {
  const diffs = settingsDiffer(saved, loadProfile(name, overrides));
  if (!diffs.length) return;
  throw new Error(
    `${runDir} already holds a run of profile '${saved.name}', and --profile/--set ask for another (${diffs.slice(0, 4).join('; ')}${diffs.length > 4 ? `; ${diffs.length - 4} more` : ''}). ` +
      `To continue that run, resume it without --profile and --set (train --resume ${runDir}); ` +
      `to start anew, leave out --run-dir/--resume (a new folder in data/runs) or name a folder that does not exist yet.`,
  );
}

/** A run folder: its path and resolved profile, created (with profile.json) only when first asked for. */
function runSession(runDir: string, profile: Profile, backend: BackendInfo): Session {
  const dir = path.resolve(runDir);
  let made = fs.existsSync(path.join(dir, 'profile.json'));
  return {
    profile,
    backend,
    // A getter, so that a session which only reads (or nothing) leaves no empty run folder behind.
    get runDir(): string {
      if (!made) {
        // A folder of the user's (not empty, not a run) is refused before anything is written into it.
        assertRunFolderTarget(dir, 'run folder');
        fs.mkdirSync(dir, { recursive: true });
        markRunFolder(dir);
        if (!fs.existsSync(path.join(dir, 'profile.json'))) writeJsonAtomic(path.join(dir, 'profile.json'), profile);
        made = true;
      }
      return dir;
    },
  };
}

/** A path the user can paste from the project folder: relative to it when inside it. */
function shown(dir: string): string {
  const rel = path.relative(paths().root, dir);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : dir;
}

/**
 * The session of a notebook or command: which run, which profile, which backend. In order:
 * opts.runDir, else TLWB_RUN_DIR (set by `npm start` and `npm run notebook`), else (unless newRun)
 * the newest run made with exactly the named profile and overrides (opts.profile or TLWB_PROFILE,
 * with opts.overrides) or, with neither named, the newest run of any profile; else a new run. A new run's folder is created when something
 * first asks for s.runDir (to write into it), not before. Prints which run was chosen and why.
 */
export async function session(opts: SessionOptions = {}): Promise<Session> {
  // A bad profile name is refused before anything else is loaded or read.
  if (opts.profile) resolveProfileFile(opts.profile);
  const backend = await initBackend({ force: opts.backend, quiet: true });
  // In a notebook the line is short: a CPU machine's absent native backends are no news in every notebook.
  if (!opts.quiet) console.log(describeBackend(backend, { short: runningInKernel() }));
  const log = (line: string) => {
    if (!opts.quiet) console.log(line);
  };
  // The line naming the chosen run; in a notebook it also records that run in the output's metadata,
  // and says so when the notebook belongs to another run (its outputs would then mix two runs).
  const announce = (line: string, dir: string) => {
    if (opts.quiet) return;
    const runId = path.basename(path.resolve(dir));
    const pinned = process.env.TLWB_RUN_DIR;
    const owner = pinned ? path.basename(path.resolve(pinned)) : '';
    const switched = pinned && runningInKernel() && path.resolve(pinned) !== path.resolve(dir)
      ? `\nthis notebook is run ${owner}'s (TLWB_RUN_DIR): what this session trains and writes goes to run ${runId}, ` +
        `but these outputs stay in ${owner}'s notebook, and its report refuses notebooks that mix runs. ` +
        `Run ${runId}'s own notebooks: npm run notebook -- --run ${shown(path.resolve(dir))} (from the project folder)`
      : '';
    runLine(`${line}${switched}`, runId);
  };
  // How to choose another run: for a notebook user (a command line has its own options).
  const inKernel = !process.env.TLWB_HEADLESS && runningInKernel();
  // (With TLWB_RUN_DIR set, as under `npm run notebook`, that run wins over a profile name.)
  const pick = (pinned: boolean) =>
    `another run: wb.session({ runDir: "data/runs/<id>" }), ${pinned ? '' : `a profile's newest: wb.session({ profile: "smoke" }), `}` +
    `a fresh one: wb.session({ newRun: true${pinned ? ', profile: "smoke"' : ''} }); from the shell: npm run notebook -- --run data/runs/<id>`;
  // An empty TLWB_RUN_DIR is unset (a bare '' would resolve to the working directory).
  const runDirOpt = opts.runDir ?? ((opts.newRun ? undefined : process.env.TLWB_RUN_DIR) || undefined);
  if (runDirOpt && fs.existsSync(path.join(runDirOpt, 'profile.json'))) {
    const profile = readRunProfile(runDirOpt);
    // An explicitly named folder (--run-dir, --resume) with another profile or --set is refused; the
    // runner's TLWB_RUN_DIR pins the notebooks to the run's own saved profile, as before.
    if (opts.runDir && (opts.profile || opts.overrides?.length)) refuseChangedProfile(runDirOpt, profile, opts.profile ?? profile.name, opts.overrides ?? []);
    announce(`run ${shown(path.resolve(runDirOpt))} (profile ${profile.name}${opts.runDir ? '' : ', from TLWB_RUN_DIR'})${inKernel ? `\n${pick(!opts.runDir)}` : ''}`, runDirOpt);
    return runSession(runDirOpt, profile, backend);
  }
  let name = opts.profile ?? process.env.TLWB_PROFILE;
  const overrides = opts.overrides ?? [];
  // --set values make a setup of their own: they name the default profile when none is named.
  if (!name && overrides.length) name = defaultProfileFor(backend).name;
  let otherSettings = '';
  if (!runDirOpt && !opts.newRun) {
    // A named profile (with its --set values) reuses only a run made with exactly that resolved profile:
    // another run of the same name (other --set, an edited profile file) is not what was asked for.
    const wanted = name ? loadProfile(name, overrides) : undefined;
    const candidates = listRuns(name);
    const latest = wanted ? candidates.find((dir) => !settingsDiffer(readRunProfile(dir), wanted).length) : candidates[0];
    if (latest) {
      const profile = readRunProfile(latest);
      announce(`run ${shown(latest)} (profile ${profile.name}; the newest run${name ? ` of ${name}${overrides.length ? ` with ${overrides.join(' ')}` : ''}` : ''})${inKernel ? `\n${pick(false)}` : ''}`, latest);
      return runSession(latest, profile, backend);
    }
    if (wanted && candidates[0]) {
      const diffs = settingsDiffer(readRunProfile(candidates[0]), wanted);
      otherSettings = `; the newest run of ${name}, ${shown(candidates[0])}, has other settings: ${diffs.slice(0, 3).join('; ')}${diffs.length > 3 ? `; ${diffs.length - 3} more` : ''}`;
    }
  }
  if (!name) {
    const d = defaultProfileFor(backend);
    name = d.name;
    log(`profile: ${d.name} (${d.why})`);
  }
  const profile = loadProfile(name, overrides);
  const dir = runDirOpt ?? plannedRunDir(profile.name);
  announce(`run ${shown(path.resolve(dir))} (profile ${profile.name}; new: the folder is made when something is written${otherSettings})${runDirOpt || !inKernel ? '' : `\n${pick(false)}`}`, dir);
  return runSession(dir, profile, backend);
}
