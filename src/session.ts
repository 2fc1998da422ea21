/**
 * What every notebook and command starts with: the resolved profile, the run folder and the backend.
 * The headless runner passes TLWB_PROFILE and TLWB_RUN_DIR to every notebook of one run; in an
 * interactive kernel the latest run of the profile is reused, so notebooks 01..05 opened one after
 * another share a run folder, and a rerun cell continues that run instead of starting over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, BackendInfo } from './backend';
import { loadProfile, paths, Profile, resolveProfileFile } from './config';
import { writeJsonAtomic } from './fsutil';

export interface Session {
  profile: Profile;
  runDir: string;
  backend: BackendInfo;
}

export interface SessionOptions {
  /** Profile name; default TLWB_PROFILE, else the default for the backend (seed on a GPU, quick otherwise). */
  profile?: string;
  overrides?: string[];
  /** A run folder to use; default TLWB_RUN_DIR, else the newest run of the profile. */
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
    : { name: 'quick', why: `no GPU backend (${backend.choice}), so the CPU recipe: cached frozen features, then the head` };
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

/** A fresh run folder data/runs/<yyyymmdd-hhmmss>-<profile> holding the resolved profile. */
export function createRun(profile: Profile): string {
  // Two runs started in the same second get .02, .03, ... before the profile name, which keeps
  // the folder names sorting in creation order.
  const stamp = timestamp();
  // The folder name takes only safe characters of the profile name, so a run never lands outside data/runs.
  const label = profile.name.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[.-]+/, '') || 'profile';
  let dir = path.join(paths().runs, `${stamp}-${label}`);
  for (let i = 2; fs.existsSync(dir); i++) dir = path.join(paths().runs, `${stamp}.${String(i).padStart(2, '0')}-${label}`);
  if (path.dirname(dir) !== paths().runs) throw new Error(`run folder ${dir} would not be inside ${paths().runs}`);
  fs.mkdirSync(dir, { recursive: true });
  writeJsonAtomic(path.join(dir, 'profile.json'), profile);
  return dir;
}

export function readRunProfile(runDir: string): Profile {
  const file = path.join(runDir, 'profile.json');
  if (!fs.existsSync(file)) throw new Error(`${runDir}: not a run folder (no profile.json)`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
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

/**
 * An existing run keeps the profile it started with: asking for another profile or other --set
 * values there is refused (silently ignoring them trained something else than what was asked).
 */
export function refuseChangedProfile(runDir: string, saved: Profile, name: string, overrides: string[]): void {
  const wanted = loadProfile(name, overrides);
  const diffs = profileDifferences(saved, wanted).filter((d) => !d.startsWith('description:'));
  if (!diffs.length) return;
  throw new Error(
    `${runDir} already holds a run of profile '${saved.name}', and --profile/--set ask for another (${diffs.slice(0, 4).join('; ')}${diffs.length > 4 ? `; ${diffs.length - 4} more` : ''}). ` +
      `To continue that run, resume it without --profile and --set (train --resume ${runDir}); ` +
      `to start anew, leave out --run-dir/--resume (a new folder in data/runs) or name a folder that does not exist yet.`,
  );
}

export async function session(opts: SessionOptions = {}): Promise<Session> {
  // A bad profile name is refused before anything else is loaded or read.
  if (opts.profile) resolveProfileFile(opts.profile);
  const backend = await initBackend({ force: opts.backend, quiet: opts.quiet });
  const runDirOpt = opts.runDir ?? (opts.newRun ? undefined : process.env.TLWB_RUN_DIR);
  if (runDirOpt && fs.existsSync(path.join(runDirOpt, 'profile.json'))) {
    const saved = readRunProfile(runDirOpt);
    // An explicitly named folder (--run-dir, --resume) with another profile or --set is refused; the
    // runner's TLWB_RUN_DIR pins the notebooks to the run's own saved profile, as before.
    if (opts.runDir && (opts.profile || opts.overrides?.length)) refuseChangedProfile(runDirOpt, saved, opts.profile ?? saved.name, opts.overrides ?? []);
    return { profile: saved, runDir: path.resolve(runDirOpt), backend };
  }
  let name = opts.profile ?? process.env.TLWB_PROFILE;
  if (!name) {
    const d = defaultProfileFor(backend);
    name = d.name;
    if (!opts.quiet) console.log(`profile: ${d.name} (${d.why})`);
  }
  const profile = loadProfile(name, opts.overrides);
  if (runDirOpt) {
    fs.mkdirSync(runDirOpt, { recursive: true });
    writeJsonAtomic(path.join(runDirOpt, 'profile.json'), profile);
    return { profile, runDir: path.resolve(runDirOpt), backend };
  }
  const latest = opts.newRun ? undefined : listRuns(name)[0];
  const runDir = latest ?? createRun(profile);
  return { profile: latest ? readRunProfile(latest) : profile, runDir, backend };
}
