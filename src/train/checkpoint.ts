/**
 * Epoch checkpoints in <runDir>/checkpoints/epoch-NNNN/: state.json (phase, epoch, random states,
 * early-stopping counters, history so far), weights.bin + optimizer.bin (tf.io.encodeWeights) with
 * their specs in state.json. Each folder is written under a temporary name and renamed, then
 * latest.json is replaced atomically, so a kill at any moment leaves the previous checkpoint whole.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeJsonAtomic } from '../session';
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
  early: { best: number | null; bad: number };
  decisions: (PhaseDecision | null)[];
  trainableByPhase: Record<string, number>;
  epochRows: EpochRow[];
  batchRows: BatchRow[];
  /** Training seconds spent before this checkpoint, over all processes. */
  wallSeconds: number;
  done: boolean;
  backend: string;
  /** An epoch stopped by an interrupt after `step` batches (rngState is then the epoch's start). */
  partial?: PartialEpoch;
}

/** What a resumed epoch needs to go on where an interrupt stopped it. */
export interface PartialEpoch {
  step: number;
  lossSum: number;
  correctSum: number;
  seen: number;
  seconds: number;
  batchRows: BatchRow[];
}

interface StoredCheckpoint {
  version: 1;
  state: TrainState;
  weights: { names: string[]; specs: tf.io.WeightsManifestEntry[] };
  optimizer: { names: string[]; specs: tf.io.WeightsManifestEntry[] };
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainState;
  /** Model weights in model.weights order; the caller disposes. */
  weights: tf.Tensor[];
  optimizer: NamedTensor[];
}

export function checkpointsDir(runDir: string): string {
  return path.join(runDir, 'checkpoints');
}

function encode(tensors: NamedTensor[]): Promise<{ data: ArrayBuffer; specs: tf.io.WeightsManifestEntry[] }> {
  // Index names keep entries unique even when two variables share a name.
  return tf.io.encodeWeights(tensors.map((t, i) => ({ name: `t${i}`, tensor: t.tensor }))) as Promise<{
    data: ArrayBuffer;
    specs: tf.io.WeightsManifestEntry[];
  }>;
}

function decode(file: string, specs: tf.io.WeightsManifestEntry[]): tf.Tensor[] {
  const buf = fs.readFileSync(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const map = tf.io.decodeWeights(ab, specs);
  return specs.map((s) => map[s.name]);
}

export async function saveCheckpoint(
  runDir: string,
  state: TrainState,
  weights: NamedTensor[],
  optimizer: NamedTensor[],
  keep = 2,
): Promise<string> {
  const root = checkpointsDir(runDir);
  fs.mkdirSync(root, { recursive: true });
  const name = `epoch-${String(state.epoch).padStart(4, '0')}`;
  const finalDir = path.join(root, name);
  const tmpDir = path.join(root, `.tmp-${name}-${process.pid}`);
  fs.rmSync(tmpDir, { recursive: true, force: true });
  fs.mkdirSync(tmpDir);
  const w = await encode(weights);
  const o = await encode(optimizer);
  fs.writeFileSync(path.join(tmpDir, 'weights.bin'), new Uint8Array(w.data));
  fs.writeFileSync(path.join(tmpDir, 'optimizer.bin'), new Uint8Array(o.data));
  const stored: StoredCheckpoint = {
    version: 1,
    state,
    weights: { names: weights.map((t) => t.name), specs: w.specs },
    optimizer: { names: optimizer.map((t) => t.name), specs: o.specs },
  };
  fs.writeFileSync(path.join(tmpDir, 'state.json'), JSON.stringify(stored));
  fs.rmSync(finalDir, { recursive: true, force: true });
  fs.renameSync(tmpDir, finalDir);
  writeJsonAtomic(path.join(root, 'latest.json'), { checkpoint: name, epoch: state.epoch, done: state.done });
  pruneCheckpoints(root, name, keep);
  return finalDir;
}

function pruneCheckpoints(root: string, latest: string, keep: number): void {
  const all = fs.readdirSync(root).filter((n) => /^epoch-\d+$/.test(n)).sort();
  const stale = all.filter((n) => n !== latest).slice(0, Math.max(0, all.length - Math.max(1, keep)));
  for (const n of stale) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  for (const n of fs.readdirSync(root)) {
    // Leftovers of a process killed while writing.
    if (n.startsWith('.tmp-') && !n.endsWith(`-${process.pid}`)) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  }
}

/** The newest complete checkpoint's folder, or undefined when the run has none. */
export function latestCheckpoint(runDir: string): string | undefined {
  const root = checkpointsDir(runDir);
  const pointer = path.join(root, 'latest.json');
  if (fs.existsSync(pointer)) {
    const { checkpoint } = JSON.parse(fs.readFileSync(pointer, 'utf8')) as { checkpoint: string };
    const dir = path.join(root, checkpoint);
    if (fs.existsSync(path.join(dir, 'state.json'))) return dir;
  }
  if (!fs.existsSync(root)) return undefined;
  const dirs = fs.readdirSync(root).filter((n) => /^epoch-\d+$/.test(n) && fs.existsSync(path.join(root, n, 'state.json')));
  return dirs.length ? path.join(root, dirs.sort()[dirs.length - 1]) : undefined;
}

/** The state only (no tensors): enough to tell whether a run is finished. */
export function readCheckpointState(dir: string): TrainState {
  const file = path.join(dir, 'state.json');
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as StoredCheckpoint).state;
  } catch (e) {
    throw new Error(`${file}: unreadable checkpoint state (${(e as Error).message})`);
  }
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const file = path.join(dir, 'state.json');
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredCheckpoint;
  if (stored.version !== 1) throw new Error(`${file}: checkpoint version ${stored.version}, expected 1`);
  const weights = decode(path.join(dir, 'weights.bin'), stored.weights.specs);
  const opt = decode(path.join(dir, 'optimizer.bin'), stored.optimizer.specs);
  return {
    dir,
    state: stored.state,
    weights,
    optimizer: opt.map((tensor, i) => ({ name: stored.optimizer.names[i], tensor })),
  };
}
