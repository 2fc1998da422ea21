/**
 * The SIMD kernels' committed binary is what scripts/build-wasm-kernels.js makes of its WebAssembly text
 * (so the text is the source to review), and the kernels themselves on a plain memory: dot9 against
 * float64 sums, transpose2d on sizes that are not multiples of its 4x4 tiles, with strides.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../../src/config';
import { SIMD_KERNELS_WASM } from '../../src/backend/wasm/simd-kernels-binary';
import { simdKernelsFor } from '../../src/backend/wasm/simd-kernels';
import { Random } from '../../src/random';

test('the committed SIMD binary is the build script\'s output', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const script = require(path.join(projectRoot, 'scripts', 'build-wasm-kernels.js')) as { build: () => Promise<string>; OUT: string };
  assert.equal(fs.readFileSync(script.OUT, 'utf8'), await script.build(), 'run node scripts/build-wasm-kernels.js');
});

test('dot9 and transpose2d on a memory of their own (both builds: shared and unshared memory)', () => {
  for (const shared of [false, true]) {
    const memory = new WebAssembly.Memory(shared ? { initial: 4, maximum: 65536, shared: true } : { initial: 4 });
    const kernels = simdKernelsFor({ wasm: shared ? { wasmMemory: memory } : { asm: { memory } } });
    assert.ok(kernels, 'kernels instantiate');
    assert.ok(Object.keys(SIMD_KERNELS_WASM).length === 2);
    const heap = new Float32Array(memory.buffer);
    const rng = new Random(5);
    // dot9: nine rows of n = 2500 (not a multiple of 4 or of the 1024 flush) at offsets 0, 2503, ...; d after them.
    const n = 2500;
    for (let i = 0; i < 10 * (n + 3); i++) heap[i] = rng.next() * 2 - 1;
    const offsets = [...Array(9).keys()].map((t) => t * (n + 3));
    const d = 9 * (n + 3);
    const got = kernels!.dot9(...(offsets.map((o) => o * 4) as [number, number, number, number, number, number, number, number, number]), d * 4, n);
    offsets.forEach((o, t) => {
      let want = 0;
      for (let k = 0; k < n; k++) want += heap[o + k] * heap[d + k];
      assert.ok(Math.abs(got[t] - want) <= 1e-5 * (1 + Math.abs(want)), `dot9 tap ${t}: ${got[t]} vs ${want}`);
    });
    // transpose2d: a 7 x 13 block inside rows of 16 floats, written into rows of 9 floats.
    const src = 0;
    const dst = 4096;
    const [rows, cols, srcStride, dstStride] = [7, 13, 16, 9];
    heap.fill(-1, dst, dst + cols * dstStride);
    kernels!.transpose2d(src * 4, srcStride, dst * 4, dstStride, rows, cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) assert.equal(heap[dst + j * dstStride + i], heap[src + i * srcStride + j], `(${i}, ${j})`);
    for (let j = 0; j < cols; j++) for (let i = rows; i < dstStride; i++) assert.equal(heap[dst + j * dstStride + i], -1, 'nothing written outside the block');
  }
});
