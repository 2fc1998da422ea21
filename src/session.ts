/**
 * What every notebook and command starts with: the resolved profile, the run folder and the backend.
 * The headless runner passes TLWB_PROFILE and TLWB_RUN_DIR to every notebook of one run; in an
 * interactive kernel the latest run of the profile is reused, so notebooks 01..05 opened one after
 * another share a run folder, and a rerun cell continues that run instead of starting over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, BackendInfo } from './backend';
import { loadProfile, paths, Profile } from './config';
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
  let dir = path.join(paths().runs, `${stamp}-${profile.name}`);
  for (let i = 2; fs.existsSync(dir); i++) dir = path.join(paths().runs, `${stamp}.${String(i).padStart(2, '0')}-${profile.name}`);
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

export async function session(opts: SessionOptions = {}): Promise<Session> {
  const backend = await initBackend({ force: opts.backend, quiet: opts.quiet });
  const runDirOpt = opts.runDir ?? (opts.newRun ? undefined : process.env.TLWB_RUN_DIR);
  if (runDirOpt && fs.existsSync(path.join(runDirOpt, 'profile.json'))) {
    return { profile: readRunProfile(runDirOpt), runDir: path.resolve(runDirOpt), backend };
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
