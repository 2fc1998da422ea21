/**
 * Epoch checkpoints in <runDir>/checkpoints/epoch-NNNN/: state.json (phase, epoch, random states,
 * history so far, and each stateful callback's state under its key: `early` for early stopping's
 * counters, `best` for the best epoch so far), weights.bin + optimizer.bin (+ <key>.bin for a
 * callback's tensors: best.bin, the best weights so far) in tf.io.encodeWeights layout with their
 * specs in state.json,
 * and checksums.json (size and sha256 of each file), written last. Each folder is written under a
 * temporary name and renamed, then latest.json is replaced atomically, so a kill at any moment
 * leaves the previous checkpoint whole. A resume verifies the checksums and falls back to the newest
 * intact checkpoint, naming what it skipped and why.
 *
 * Mid-epoch checkpoints (an interrupt, or train.checkpointEveryMinutes) are the same files in
 * epoch-NNNN+BBBBBB/ (NNNN epochs done, BBBBBB batches of the next): their state carries `partial`,
 * the epoch so far, and the data random state of the epoch's start, from which the resume draws the
 * epoch's batches again. They are version 2, so that a reader without mid-epoch resume refuses them
 * (and falls back) instead of taking them for an epoch's end; only the newest one is kept.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readJsonFile, writeJsonAtomic } from '../fsutil';
import type { BatchRow, EpochRow } from './history';
import type { NamedTensor } from './optimizer';

export interface PhaseDecision {
  run: boolean;
  reason: string;
}

export interface TrainState {
  /** Epochs completed over all phases. */
  epoch: number;
  /** The phase in progress (or just finished, see phaseFinished). */
  phaseIndex: number;
  /** Epochs completed in that phase. */
  phaseEpoch: number;
  /** True when the phase has ended (all its epochs, or early stopping). */
  phaseFinished: boolean;
  /** Random.state of the data stream (shuffles, augmentation) and of Math.random-seeded ops (dropout). */
  rngState: number;
  dropoutRngState: number;
  decisions: (PhaseDecision | null)[];
  trainableByPhase: Record<string, number>;
  epochRows: EpochRow[];
  batchRows: BatchRow[];
  /** Training seconds spent before this checkpoint, over all processes. */
  wallSeconds: number;
  backend: string;
  /**
   * Set in a mid-epoch checkpoint: the epoch after `epoch` stopped after partial.step batches.
   * rngState is then the state at that epoch's start, dropoutRngState the state after those batches.
   */
  partial?: PartialEpoch;
}

/** An epoch so far: what a resume restores before it trains the epoch's remaining batches. */
export interface PartialEpoch {
  /** Batches trained. */
  step: number;
  /** Sum over the trained images of the loss; correct predictions; images. */
  lossSum: number;
  correctSum: number;
  seen: number;
  /** Seconds spent in the epoch so far. */
  seconds: number;
  batchRows: BatchRow[];
}

/**
 * A checkpoint's train state with the stateful callbacks' states beside its fields, each under the
 * callback's stateKey (`early`, `best`): the layout checkpoints had when TrainState held them.
 */
export type CheckpointState = TrainState & { [stateKey: string]: unknown };

interface TensorSpecs {
  names: string[];
  specs: tf.io.WeightsManifestEntry[];
}

interface StoredCheckpoint {
  /** 1: at an epoch's end; 2: inside an epoch (state.partial). */
  version: 1 | 2;
  state: CheckpointState;
  weights: TensorSpecs;
  optimizer: TensorSpecs;
  /** A callback's tensors under its stateKey (`best`: best.bin). */
  [stateKey: string]: unknown;
}

/** Keys of state.json that are not a callback's tensors. */
const STORED_FIELDS = new Set(['version', 'state', 'weights', 'optimizer']);

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  /** Model weights in model.weights order; the caller disposes. */
  weights: tf.Tensor[];
  optimizer: NamedTensor[];
  /** Callbacks' tensors by stateKey (`best`: the phase's best weights so far, stable order); the caller disposes. */
  tensors: Record<string, tf.Tensor[]>;
}

export function checkpointsDir(runDir: string): string {
  return path.join(runDir, 'checkpoints');
}

const CHECKPOINT_NAME = /^epoch-(\d+)(?:\+(\d+))?$/;

/** The folder name of a checkpoint of `state`: epoch-NNNN, or epoch-NNNN+BBBBBB inside an epoch. */
export function checkpointName(state: Pick<TrainState, 'epoch' | 'partial'>): string {
  const name = `epoch-${String(state.epoch).padStart(4, '0')}`;
  return state.partial ? `${name}+${String(state.partial.step).padStart(6, '0')}` : name;
}

/** Epochs done and batches of the next, for a checkpoint folder's name; undefined for other names. */
function checkpointPosition(name: string): [number, number] | undefined {
  const m = CHECKPOINT_NAME.exec(name);
  return m ? [Number(m[1]), m[2] === undefined ? -1 : Number(m[2])] : undefined;
}

/** Negative when checkpoint `a` comes before `b` in training. */
function byPosition(a: string, b: string): number {
  const [pa, pb] = [checkpointPosition(a)!, checkpointPosition(b)!];
  return pa[0] - pb[0] || pa[1] - pb[1];
}

/** The checkpoint folders of `root`, oldest first. */
function checkpointFolders(root: string): string[] {
  return fs.readdirSync(root).filter((n) => checkpointPosition(n) !== undefined).sort(byPosition);
}

function encode(tensors: NamedTensor[]): Promise<{ data: ArrayBuffer; specs: tf.io.WeightsManifestEntry[] }> {
  // Index names keep entries unique even when two variables share a name.
  return tf.io.encodeWeights(tensors.map((t, i) => ({ name: `t${i}`, tensor: t.tensor }))) as Promise<{
    data: ArrayBuffer;
    specs: tf.io.WeightsManifestEntry[];
  }>;
}

const SPEC_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1 };

function decode(file: string, specs: tf.io.WeightsManifestEntry[]): tf.Tensor[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  const expected = specs.reduce((n, s) => n + s.shape.reduce((a, d) => a * d, 1) * (SPEC_BYTES[s.dtype] ?? 4), 0);
  if (buf.byteLength !== expected) throw new Error(`${file}: ${buf.byteLength} bytes, expected ${expected} for ${specs.length} tensors (truncated or not this checkpoint's file)`);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  try {
    const map = tf.io.decodeWeights(ab, specs);
    return specs.map((s) => map[s.name]);
  } catch (e) {
    throw new Error(`${file}: cannot decode (${(e as Error).message})`, { cause: e });
  }
}

const CHECKSUMS = 'checksums.json';
type Checksums = Record<string, { bytes: number; sha256: string }>;

function fileChecksum(file: string): { bytes: number; sha256: string } {
  const data = fs.readFileSync(file);
  return { bytes: data.byteLength, sha256: crypto.createHash('sha256').update(data).digest('hex') };
}

/** Why the checkpoint in `dir` cannot be used, or undefined when every file matches its checksum. */
export function checkpointProblem(dir: string): string | undefined {
  const sums = path.join(dir, CHECKSUMS);
  if (!fs.existsSync(sums)) {
    // Checkpoints written before checksums existed: state.json must parse, the decoders check sizes.
    if (!fs.existsSync(path.join(dir, 'state.json'))) return `${path.join(dir, 'state.json')} is missing`;
    return undefined;
  }
  let expected: Checksums;
  try {
    expected = readJsonFile<Checksums>(sums, 'the checkpoint checksums');
  } catch (e) {
    return (e as Error).message;
  }
  for (const [name, want] of Object.entries(expected)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) return `${file} is missing`;
    const got = fileChecksum(file);
    if (got.bytes !== want.bytes) return `${file}: ${got.bytes} bytes, expected ${want.bytes} (truncated?)`;
    if (got.sha256 !== want.sha256) return `${file}: sha256 ${got.sha256.slice(0, 12)}..., expected ${want.sha256.slice(0, 12)}... (corrupted)`;
  }
  return undefined;
}

/** Removes the temporary folders of checkpoints whose writer died (full disk, kill): call with the run's lock held. */
export function removeStaleTemporaries(runDir: string): string[] {
  const root = checkpointsDir(runDir);
  if (!fs.existsSync(root)) return [];
  const stale = fs.readdirSync(root).filter((n) => n.startsWith('.tmp-') || /\.tmp-\d+$/.test(n));
  for (const n of stale) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  return stale;
}

/** Saves a checkpoint; `tensors` holds callbacks' tensors by stateKey, each written to <key>.bin. */
export async function saveCheckpoint(
  runDir: string,
  state: CheckpointState,
  weights: NamedTensor[],
  optimizer: NamedTensor[],
  keep = 2,
  tensors: Record<string, NamedTensor[]> = {},
): Promise<string> {
  for (const key of Object.keys(tensors)) {
    if (STORED_FIELDS.has(key) || !/^[a-z][a-zA-Z0-9-]*$/.test(key)) throw new Error(`checkpoint: '${key}' cannot name a callback's tensors (reserved or not a plain name)`);
  }
  const root = checkpointsDir(runDir);
  fs.mkdirSync(root, { recursive: true });
  const name = checkpointName(state);
  const finalDir = path.join(root, name);
  const tmpDir = path.join(root, `.tmp-${name}-${process.pid}`);
  fs.rmSync(tmpDir, { recursive: true, force: true });
  fs.mkdirSync(tmpDir);
  try {
    const w = await encode(weights);
    const o = await encode(optimizer);
    fs.writeFileSync(path.join(tmpDir, 'weights.bin'), new Uint8Array(w.data));
    fs.writeFileSync(path.join(tmpDir, 'optimizer.bin'), new Uint8Array(o.data));
    const stored: StoredCheckpoint = {
      version: state.partial ? 2 : 1,
      state,
      weights: { names: weights.map((t) => t.name), specs: w.specs },
      optimizer: { names: optimizer.map((t) => t.name), specs: o.specs },
    };
    const files = ['weights.bin', 'optimizer.bin', 'state.json'];
    for (const [key, named] of Object.entries(tensors)) {
      const t = await encode(named);
      fs.writeFileSync(path.join(tmpDir, `${key}.bin`), new Uint8Array(t.data));
      stored[key] = { names: named.map((n) => n.name), specs: t.specs } satisfies TensorSpecs;
      files.push(`${key}.bin`);
    }
    fs.writeFileSync(path.join(tmpDir, 'state.json'), JSON.stringify(stored));
    // Last: a folder with checksums.json has every file complete.
    const sums: Checksums = Object.fromEntries(files.map((f) => [f, fileChecksum(path.join(tmpDir, f))]));
    fs.writeFileSync(path.join(tmpDir, CHECKSUMS), JSON.stringify(sums, null, 1));
  } catch (e) {
    // A full disk or a failed encode leaves no half checkpoint behind.
    fs.rmSync(tmpDir, { recursive: true, force: true });
    throw e;
  }
  fs.rmSync(finalDir, { recursive: true, force: true });
  fs.renameSync(tmpDir, finalDir);
  writeJsonAtomic(path.join(root, 'latest.json'), { checkpoint: name, epoch: state.epoch, ...(state.partial ? { step: state.partial.step } : {}) });
  pruneCheckpoints(root, name, keep);
  return finalDir;
}

/** Keeps the `keep` newest epoch-end checkpoints; a newer checkpoint supersedes every mid-epoch one. */
function pruneCheckpoints(root: string, latest: string, keep: number): void {
  const all = checkpointFolders(root);
  const ends = all.filter((n) => !n.includes('+'));
  const stale = [...ends.filter((n) => n !== latest).slice(0, Math.max(0, ends.length - Math.max(1, keep))), ...all.filter((n) => n.includes('+') && n !== latest)];
  for (const n of stale) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  for (const n of fs.readdirSync(root)) {
    // Leftovers of a process killed while writing.
    if (n.startsWith('.tmp-') && !n.endsWith(`-${process.pid}`)) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  }
}

export interface CheckpointChoice {
  /** The newest intact checkpoint, or undefined. */
  dir?: string;
  /** Newer checkpoints (and pointers) that were not usable, with the reason. */
  skipped: { path: string; why: string }[];
}

/** The newest intact checkpoint (checksums verified), and what was skipped on the way and why. */
export function findCheckpoint(runDir: string, olderThan?: string): CheckpointChoice {
  const root = checkpointsDir(runDir);
  const skipped: CheckpointChoice['skipped'] = [];
  if (!fs.existsSync(root)) return { skipped };
  const pointer = path.join(root, 'latest.json');
  if (olderThan === undefined && fs.existsSync(pointer)) {
    try {
      const latest = readJsonFile<{ checkpoint?: unknown; epoch?: unknown }>(pointer, 'the latest-checkpoint pointer');
      // A checkpoint the pointer names but that is gone (deleted, or lost with a disk): said, not silently passed over.
      if (typeof latest.checkpoint === 'string' && CHECKPOINT_NAME.test(latest.checkpoint) && !fs.existsSync(path.join(root, latest.checkpoint))) {
        skipped.push({ path: path.join(root, latest.checkpoint), why: `missing (${pointer} names it as the latest checkpoint${typeof latest.epoch === 'number' ? `, ${latest.epoch} epochs done` : ''})` });
      }
    } catch (e) {
      skipped.push({ path: pointer, why: (e as Error).message });
    }
  }
  const dirs = checkpointFolders(root).filter((n) => olderThan === undefined || byPosition(n, olderThan) < 0).reverse();
  for (const n of dirs) {
    const dir = path.join(root, n);
    const why = checkpointProblem(dir);
    if (!why) return { dir, skipped };
    skipped.push({ path: dir, why });
  }
  return { skipped };
}

/** The newest intact checkpoint's folder, or undefined when the run has none. */
export function latestCheckpoint(runDir: string): string | undefined {
  return findCheckpoint(runDir).dir;
}

/** The state only (no tensors): where the run is (phase, epoch, history) and the callbacks' states. */
export function readCheckpointState(dir: string): CheckpointState {
  const file = path.join(dir, 'state.json');
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as StoredCheckpoint).state;
  } catch (e) {
    throw new Error(`${file}: unreadable checkpoint state (${(e as Error).message})`, { cause: e });
  }
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const file = path.join(dir, 'state.json');
  const stored = readJsonFile<StoredCheckpoint>(file, 'the checkpoint state');
  if (stored.version !== 1 && stored.version !== 2) throw new Error(`${file}: checkpoint version ${stored.version}, expected 1 or 2`);
  const weights = decode(path.join(dir, 'weights.bin'), stored.weights.specs);
  const tensors: Record<string, tf.Tensor[]> = {};
  let opt: tf.Tensor[] = [];
  try {
    opt = decode(path.join(dir, 'optimizer.bin'), stored.optimizer.specs);
    for (const [key, value] of Object.entries(stored)) {
      if (!STORED_FIELDS.has(key)) tensors[key] = decode(path.join(dir, `${key}.bin`), (value as TensorSpecs).specs);
    }
    return {
      dir,
      state: stored.state,
      weights,
      optimizer: opt.map((tensor, i) => ({ name: stored.optimizer.names[i], tensor })),
      tensors,
    };
  } catch (e) {
    tf.dispose([...weights, ...opt, ...Object.values(tensors).flat()]);
    throw e;
  }
}
