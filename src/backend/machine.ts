/**
 * The machine a run or a benchmark ran on: speeds on these CPUs differ by the vector instructions
 * they have (AVX2 on some, AVX-512 on others), so every timing is recorded with them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface Machine {
  cpus: number;
  cpuModel: string | null;
  /** Vector-instruction flags from /proc/cpuinfo (what XNNPACK, ONNX Runtime, PyTorch and V8 can use). */
  cpuFlags: string[];
  memoryGiB: number;
}

/** The CPU's vector-instruction flags (sse*, avx*, fma, f16c, amx*; asimd/neon/sve on ARM); [] where /proc/cpuinfo is absent. */
export function cpuFlags(): string[] {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^(flags|Features)\s*:/.test(l)) ?? '';
    return line.split(':')[1].trim().split(/\s+/).filter((f) => /^(sse|ssse3|avx|fma|f16c|amx|asimd|neon|sve)/.test(f)).sort();
  } catch {
    return [];
  }
}

export function machineInfo(): Machine {
  return { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, cpuFlags: cpuFlags(), memoryGiB: Math.round(os.totalmem() / 2 ** 30) };
}

/** "AMD EPYC 9B14, 2 cores, AVX-512 (avx512f avx512bw ...)" - the widest vector unit first, for a table's footnote. */
export function describeMachine(m: Machine): string {
  const widest = m.cpuFlags.some((f) => f.startsWith('avx512')) ? 'AVX-512' : m.cpuFlags.includes('avx2') ? 'AVX2' : m.cpuFlags.some((f) => f === 'asimd' || f === 'neon') ? 'NEON' : 'no AVX2';
  const avx512 = m.cpuFlags.filter((f) => f.startsWith('avx512'));
  return `${m.cpuModel ?? 'unknown CPU'}, ${m.cpus} cores, ${m.memoryGiB} GiB, ${widest}${avx512.length ? ` (${avx512.join(' ')})` : ''}`;
}
