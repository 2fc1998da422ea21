/**
 * The run folder's training status and its owner.
 *
 * train-state.json is the one record of whether a run finished (train() reads it to report a
 * finished run instead of training it again; checkpoints no longer carry a `done` flag). It says
 * running | interrupted | diverged | finished (with the pid of a running
 * trainer); readTrainState reads a "running" whose process is gone as interrupted (a crash or a
 * kill leaves no chance to write it). train.lock makes one trainer per run folder: two trainers in
 * one folder would overwrite each other's checkpoints and history.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readJsonFile, writeJsonAtomic } from '../fsutil';

export const TRAIN_STATE_FILE = 'train-state.json';
export const LOCK_FILE = 'train.lock';

export type TrainStatus = 'running' | 'interrupted' | 'diverged' | 'finished';

/** Where and why a run diverged. */
export interface DivergedAt {
  phase: string;
  /** The epoch over all phases (1-based) in which it happened. */
  epoch: number;
  /** The step within that epoch (1-based); 0 when found by the end-of-epoch check of the weights. */
  step: number;
  reason: string;
}

export interface TrainStateFile {
  status: TrainStatus;
  updated: string;
  pid?: number;
  host?: string;
  epoch?: number;
  message?: string;
  checkpoint?: string | null;
  diverged?: DivergedAt;
  /** Set by readTrainState when it reads a dead "running" as interrupted. */
  note?: string;
}

export function writeTrainState(runDir: string, status: TrainStatus, extra: Partial<TrainStateFile> = {}): void {
  const running = status === 'running' ? { pid: process.pid, host: os.hostname() } : {};
  writeJsonAtomic(path.join(runDir, TRAIN_STATE_FILE), { status, updated: new Date().toISOString(), ...running, ...extra });
}

/** Whether process `pid` on this machine is alive (EPERM: alive, someone else's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The run's training status, or undefined before any training; a dead trainer's "running" reads as interrupted. */
export function readTrainState(runDir: string): TrainStateFile | undefined {
  const file = path.join(runDir, TRAIN_STATE_FILE);
  if (!fs.existsSync(file)) return undefined;
  const st = readJsonFile<TrainStateFile>(file, 'the training state');
  const here = st.host === undefined || st.host === os.hostname();
  if (st.status === 'running' && here && (st.pid === undefined || !processAlive(st.pid))) {
    return { ...st, status: 'interrupted', note: `the trainer (pid ${st.pid ?? '?'}) is gone: it was killed or crashed` };
  }
  return st;
}

interface LockInfo {
  pid: number;
  host: string;
  started: string;
  command: string;
}

/** Locks this process holds (a notebook kernel may call train() again on the same folder). */
const held = new Set<string>();

export class RunFolderBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunFolderBusyError';
  }
}

function describe(info: LockInfo): string {
  return `process ${info.pid} on ${info.host} (${info.command}, since ${info.started})`;
}

/** The live holder of the run folder's lock, if any (stale locks of dead processes count as free). */
export function lockHolder(runDir: string): LockInfo | undefined {
  const file = path.join(runDir, LOCK_FILE);
  if (!fs.existsSync(file)) return undefined;
  let info: LockInfo;
  try {
    info = JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
  } catch {
    return undefined; // half-written by a process killed while taking it
  }
  if (info.host !== os.hostname()) return info; // cannot tell: treat as held
  if (info.pid === process.pid) return held.has(path.resolve(runDir)) ? info : undefined;
  return processAlive(info.pid) ? info : undefined;
}

/** Fails with a message naming the holder when another trainer has the run folder. */
export function assertRunFolderFree(runDir: string, what = 'train'): void {
  const holder = lockHolder(runDir);
  if (holder) {
    throw new RunFolderBusyError(
      `${runDir}: the run folder is in use by ${describe(holder)}; cannot ${what} it now. ` +
        `Wait for it, stop it, or use another run folder (a lock left by a dead process is recovered by itself: ${path.join(runDir, LOCK_FILE)}).`,
    );
  }
}

/** Takes the run folder's exclusive lock (recovering a stale one); returns the release function. */
export function lockRunFolder(runDir: string): () => void {
  const file = path.join(runDir, LOCK_FILE);
  const key = path.resolve(runDir);
  fs.mkdirSync(runDir, { recursive: true });
  const info: LockInfo = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command: process.argv.slice(1).map((a) => path.basename(a)).join(' ') };
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(info), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
      assertRunFolderFree(runDir);
      fs.rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  held.add(key);
  return () => {
    held.delete(key);
    try {
      const now = JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
      if (now.pid === process.pid) fs.rmSync(file, { force: true });
    } catch {
      // already gone
    }
  };
}
