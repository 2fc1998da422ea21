/**
 * Paths and experiment profiles. A profile is plain data (profiles/<name>.json, as timm keeps its
 * presets); the user's overrides merge over it and the resolved profile is saved with each run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeIssues, Profile, ProfileFileSchema, ProfileSchema, profileJsonSchema } from './profile-schema';
import { readJsonFile } from './fsutil';

/** The folder holding package.json, found from this file whether it runs from src/ or dist/src/. */
export const projectRoot: string = (() => {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'profiles'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the project root (package.json + profiles/) above ${__dirname}`);
    dir = up;
  }
})();

export interface Paths {
  root: string;
  data: string;
  downloads: string;
  cache: string;
  runs: string;
  profiles: string;
  notebooks: string;
}

/** All locations, honouring TLWB_DATA_DIR (default <root>/data). Read on each call so tests can redirect. */
export function paths(): Paths {
  const data = path.resolve(process.env.TLWB_DATA_DIR || path.join(projectRoot, 'data'));
  return {
    root: projectRoot,
    data,
    downloads: path.join(data, 'downloads'),
    cache: path.join(data, 'cache'),
    runs: path.join(data, 'runs'),
    profiles: path.join(projectRoot, 'profiles'),
    notebooks: path.join(projectRoot, 'notebooks'),
  };
}

// Every profile field is defined once, in profile-schema.ts; the types come from there.
export type { DataConfig, ModelConfig, OnnxModelConfig, Phase, TrainConfig, Profile, PreprocessMode, HeadKind, PhotoAugment, CorruptionName } from './profile-schema';
export { CORRUPTION_NAMES } from './profile-schema';

export function listProfiles(): string[] {
  return fs
    .readdirSync(paths().profiles)
    .filter((f) => f.endsWith('.json') && !f.endsWith('.schema.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keys that would reach Object.prototype through a merge or an override: never a profile field. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function checkKey(key: string, where: string): void {
  if (FORBIDDEN_KEYS.has(key)) throw new Error(`${where}: '${key}' is not a profile field (refused: it would change every object's prototype)`);
}

/** Deep merge: objects merge key by key, everything else (arrays included) is replaced. */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isObject(base) || !isObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    checkKey(k, 'profile');
    out[k] = deepMerge((base as Record<string, unknown>)[k], v);
  }
  return out as T;
}

/** Parses an override value: JSON where it parses (numbers, booleans, arrays, objects), else the string. */
function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * An array is indexed by a canonical non-negative integer within it ('0', '1', not '00', '-1', 'foo'
 * or past the end): anything else would set a property JSON drops, and the override would be lost.
 */
function checkIndex(array: unknown[], key: string, at: string, dotted: string): void {
  if (/^(0|[1-9][0-9]*)$/.test(key) && Number(key) < array.length) return;
  throw new Error(
    `--set ${dotted}: '${key}' is not an index of ${at} (an array of ${array.length}: expected ${array.length ? `0..${array.length - 1}` : 'no index, it is empty'}); ` +
      `to replace the whole array, --set ${at}='[...]'`,
  );
}

/** 'train.phases.0.lr=1e-4' -> { train: { phases: { 0: ... } } } applied onto `target` (arrays indexed). */
export function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  for (const key of keys) checkKey(key, `--set ${dotted}`);
  if (keys.some((k) => k === '')) throw new Error(`--set ${dotted}: empty field name`);
  let node: Record<string, unknown> = target;
  keys.forEach((key, i) => {
    if (Array.isArray(node)) checkIndex(node, key, keys.slice(0, i).join('.'), dotted);
    if (i === keys.length - 1) {
      node[key] = value;
      return;
    }
    if (!isObject(node[key]) && !Array.isArray(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
}

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Where a profile comes from: a NAME resolves only to profiles/NAME.json; a file elsewhere must be
 * given as an explicit path ending in .json (./x.json, ../x.json or absolute; relative to the
 * extending profile for "extends"). Anything else is refused before a file is read.
 */
export function resolveProfileFile(spec: string, from?: string): { file: string; name: string } {
  const explicit = spec.endsWith('.json') && (path.isAbsolute(spec) || /^\.\.?[\\/]/.test(spec));
  if (explicit) {
    const file = path.resolve(from ? path.dirname(from) : process.cwd(), spec);
    const name = path.basename(file, '.json').replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'profile';
    if (!fs.existsSync(file)) throw new Error(`profile ${spec}: no such file ${file}`);
    return { file, name };
  }
  if (!PROFILE_NAME.test(spec) || spec.includes('..') || spec.endsWith('.json')) {
    throw new Error(
      `profile '${spec}': not a profile name (letters, digits, '.', '_', '-'; looked up in ${paths().profiles} only). ` +
        `For a profile file elsewhere give its path ending in .json, e.g. --profile ./my-profile.json`,
    );
  }
  const file = path.join(paths().profiles, `${spec}.json`);
  if (!fs.existsSync(file)) throw new Error(`unknown profile '${spec}': no ${file}; available: ${listProfiles().join(', ')}`);
  return { file, name: spec };
}

/** Reads one profile file, checks it against the file schema, and merges it over what it extends. */
function readProfileChain(file: string, chain: string[]): Record<string, unknown> {
  if (chain.includes(file)) {
    throw new Error(`profile cycle: ${[...chain, file].map((f) => path.relative(process.cwd(), f) || f).join(' extends ')}`);
  }
  const raw = readJsonFile<unknown>(file, 'a profile (JSON)');
  if (!isObject(raw)) throw new Error(`${file}: expected a JSON object`);
  for (const k of Object.keys(raw)) checkKey(k, file);
  const checked = ProfileFileSchema.safeParse(raw);
  if (!checked.success) throw new Error(`${file}: ${describeIssues(ProfileFileSchema, raw, checked.error.issues).join('; ')}`);
  const own = { ...raw };
  delete own.extends;
  delete own.$schema;
  if (typeof raw.extends !== 'string') return own;
  const parent = readProfileChain(resolveProfileFile(raw.extends, file).file, [...chain, file]);
  return deepMerge(parent, own);
}

/**
 * Loads a profile - a name in profiles/ or an explicit path to a .json file - with "extends"
 * merged under it, then applies overrides "a.b.c=value" from TLWB_SET (semicolon-separated) and
 * from the command line, and validates the result against the profile schema (profile-schema.ts).
 * CIFAR10_DIR fills data.dir for CIFAR-10 when the profile leaves it empty.
 */
export function loadProfile(spec: string, overrides: string[] = []): Profile {
  const { file, name } = resolveProfileFile(spec);
  const merged = readProfileChain(file, []);
  const envSets = (process.env.TLWB_SET ?? '').split(';').map((s) => s.trim()).filter(Boolean);
  const applied: { source: string; key: string[] }[] = [];
  for (const [source, o] of [...envSets.map((o) => ['TLWB_SET', o]), ...overrides.map((o) => ['--set', o])]) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new Error(`override '${o}': expected key.path=value`);
    setPath(merged, o.slice(0, eq), parseValue(o.slice(eq + 1)));
    applied.push({ source: `${source} ${o}`, key: o.slice(0, eq).split('.') });
  }
  merged.name = name;
  if (isObject(merged.data) && merged.data.source === 'cifar10' && !merged.data.dir && process.env.CIFAR10_DIR) {
    merged.data.dir = path.resolve(process.env.CIFAR10_DIR);
  }
  const checked = ProfileSchema.safeParse(merged);
  if (!checked.success) {
    // Blame the override that set the field (the last one wins), else the profile file.
    const lines = checked.error.issues.map((issue) => {
      const at = issue.path.map(String);
      const by = [...applied].reverse().find((a) => a.key.every((k, i) => i >= at.length || k === at[i]));
      const [line] = describeIssues(ProfileSchema, merged, [issue]);
      return by ? `${by.source} (over ${file}): ${line}` : `${file}: ${line}`;
    });
    throw new Error(lines.join('\n'));
  }
  return merged as unknown as Profile;
}

/** Checks a resolved profile against the schema, naming `origin` and every field that is wrong. */
export function validateProfile(p: unknown, origin: string): asserts p is Profile {
  const checked = ProfileSchema.safeParse(p);
  if (!checked.success) throw new Error(describeIssues(ProfileSchema, p, checked.error.issues).map((l) => `${origin}: ${l}`).join('\n'));
}

/** profiles/profile.schema.json, where editors find the profile schema ("$schema" in each profile). */
export function profileJsonSchemaFile(): string {
  return path.join(paths().profiles, 'profile.schema.json');
}

/** The JSON Schema text generated from profile-schema.ts (what profiles/profile.schema.json must hold). */
export function profileJsonSchemaText(): string {
  return `${JSON.stringify(profileJsonSchema(), null, 2)}\n`;
}

/** Regenerates profiles/profile.schema.json (`npm run schema`); returns whether it changed. */
export function writeProfileJsonSchema(): boolean {
  const file = profileJsonSchemaFile();
  const text = profileJsonSchemaText();
  if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text) return false;
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
  return true;
}
