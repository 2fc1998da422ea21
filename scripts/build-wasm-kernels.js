#!/usr/bin/env node
/**
 * Builds src/backend/wasm/simd-kernels-binary.ts: two small WebAssembly SIMD kernels that run on
 * tfjs-backend-wasm's own heap (they import its memory), for the training kernels in
 * src/backend/wasm-kernels.ts, where JS has no SIMD:
 *   transpose2d(src, srcStride, dst, dstStride, rows, cols): dst[j·dstStride + i] = src[i·srcStride + j]
 *     in 4x4 register tiles (i8x16.shuffle), 16 rows at a time so that every destination cache line
 *     is written whole (the shipped Transpose kernel moves ~6-10 ns a float on large activations);
 *   dot9(x0..x8, d, n) -> 9 f64: the nine dot products of one depthwise channel's taps with dY, f32x4
 *     multiply-adds flushed into float64 sums every 1024 elements (the depthwise filter gradient);
 *   batchNorm(x, out, pixels, c, mean, variance, scale, offset, eps, nf): FusedBatchNorm over NHWC with
 *     per-channel terms, tfjs-backend-wasm's C source's arithmetic lane by lane (nf: scratch for c floats);
 *   relu6Grad(dy, x, out, n): dy · (step(x) - step(x - 6)) in one pass instead of five kernels.
 * Pointers are byte addresses in the heap, strides and n counts of floats. Two variants: the threaded
 * binary's memory is shared, the single-threaded one's is not, and an import must say which.
 *
 * The WebAssembly text is generated below and compiled with wabt (a devDependency); the output is
 * committed, so neither wabt nor this script runs at install or run time. `node scripts/build-wasm-kernels.js`
 * rewrites it; `--check` exits 1 when the committed file differs (test/backend/simd-kernels.test.ts).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const OUT = path.join(__dirname, '..', 'src', 'backend', 'wasm', 'simd-kernels-binary.ts');
const TAPS = 9;
/** Elements per lane block summed in float32 before the float64 flush: 4 lanes x 256. */
const FLUSH_FLOATS = 1024;

function wat(shared) {
  const taps = [...Array(TAPS).keys()];
  const lanes = [0, 1, 2, 3];
  const memory = shared ? '(memory 1 65536 shared)' : '(memory 1)';
  const lo = '0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23';
  const hi = '8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31';
  const first = '0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23';
  const second = '8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31';
  return `(module
  (import "env" "memory" ${memory})
  (func (export "transpose2d") (param $src i32) (param $srcStride i32) (param $dst i32) (param $dstStride i32) (param $rows i32) (param $cols i32)
    (local $ss i32) (local $ds i32) (local $rows4 i32) (local $cols4 i32) (local $i0 i32) (local $iEnd i32) (local $j0 i32) (local $i i32) (local $j i32) (local $s i32) (local $d i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $ss (i32.shl (local.get $srcStride) (i32.const 2)))
    (local.set $ds (i32.shl (local.get $dstStride) (i32.const 2)))
    (local.set $rows4 (i32.and (local.get $rows) (i32.const -4)))
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (block $iDone (loop $iLoop
      (br_if $iDone (i32.ge_u (local.get $i0) (local.get $rows4)))
      (local.set $iEnd (select (i32.add (local.get $i0) (i32.const 16)) (local.get $rows4) (i32.lt_u (i32.add (local.get $i0) (i32.const 16)) (local.get $rows4))))
      (local.set $j0 (i32.const 0))
      (block $jDone (loop $jLoop
        (br_if $jDone (i32.ge_u (local.get $j0) (local.get $cols4)))
        (local.set $i (local.get $i0))
        (block $tDone (loop $tLoop
          (br_if $tDone (i32.ge_u (local.get $i) (local.get $iEnd)))
          (local.set $s (i32.add (local.get $src) (i32.add (i32.mul (local.get $i) (local.get $ss)) (i32.shl (local.get $j0) (i32.const 2)))))
          (local.set $r0 (v128.load align=4 (local.get $s)))
          (local.set $s (i32.add (local.get $s) (local.get $ss)))
          (local.set $r1 (v128.load align=4 (local.get $s)))
          (local.set $s (i32.add (local.get $s) (local.get $ss)))
          (local.set $r2 (v128.load align=4 (local.get $s)))
          (local.set $s (i32.add (local.get $s) (local.get $ss)))
          (local.set $r3 (v128.load align=4 (local.get $s)))
          (local.set $t0 (i8x16.shuffle ${lo} (local.get $r0) (local.get $r1)))
          (local.set $t1 (i8x16.shuffle ${hi} (local.get $r0) (local.get $r1)))
          (local.set $t2 (i8x16.shuffle ${lo} (local.get $r2) (local.get $r3)))
          (local.set $t3 (i8x16.shuffle ${hi} (local.get $r2) (local.get $r3)))
          (local.set $d (i32.add (local.get $dst) (i32.add (i32.mul (local.get $j0) (local.get $ds)) (i32.shl (local.get $i) (i32.const 2)))))
          (v128.store align=4 (local.get $d) (i8x16.shuffle ${first} (local.get $t0) (local.get $t2)))
          (local.set $d (i32.add (local.get $d) (local.get $ds)))
          (v128.store align=4 (local.get $d) (i8x16.shuffle ${second} (local.get $t0) (local.get $t2)))
          (local.set $d (i32.add (local.get $d) (local.get $ds)))
          (v128.store align=4 (local.get $d) (i8x16.shuffle ${first} (local.get $t1) (local.get $t3)))
          (local.set $d (i32.add (local.get $d) (local.get $ds)))
          (v128.store align=4 (local.get $d) (i8x16.shuffle ${second} (local.get $t1) (local.get $t3)))
          (local.set $i (i32.add (local.get $i) (i32.const 4)))
          (br $tLoop)))
        (local.set $j0 (i32.add (local.get $j0) (i32.const 4)))
        (br $jLoop)))
      (local.set $i0 (local.get $iEnd))
      (br $iLoop)))
    ;; Scalar edges: columns [cols4, cols) of every row, then rows [rows4, rows) of columns [0, cols4).
    (local.set $i (i32.const 0))
    (block $aDone (loop $aLoop
      (br_if $aDone (i32.ge_u (local.get $i) (local.get $rows)))
      (local.set $j (select (i32.const 0) (local.get $cols4) (i32.ge_u (local.get $i) (local.get $rows4))))
      (block $bDone (loop $bLoop
        (br_if $bDone (i32.ge_u (local.get $j) (local.get $cols)))
        (f32.store (i32.add (local.get $dst) (i32.add (i32.mul (local.get $j) (local.get $ds)) (i32.shl (local.get $i) (i32.const 2))))
          (f32.load (i32.add (local.get $src) (i32.add (i32.mul (local.get $i) (local.get $ss)) (i32.shl (local.get $j) (i32.const 2))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $bLoop)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $aLoop))))
  (func (export "dot9") ${taps.map((t) => `(param $x${t} i32)`).join(' ')} (param $d i32) (param $n i32) (result ${taps.map(() => 'f64').join(' ')})
    (local $k i32) (local $end4 i32) (local $end i32) (local $blockEnd i32) (local $dv v128) (local $df f32)
    ${taps.map((t) => `(local $a${t} v128) (local $s${t} f64)`).join(' ')}
    (local.set $end4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $oDone (loop $oLoop
      (br_if $oDone (i32.ge_u (local.get $k) (local.get $end4)))
      (local.set $blockEnd (select (i32.add (local.get $k) (i32.const ${FLUSH_FLOATS * 4})) (local.get $end4) (i32.lt_u (i32.add (local.get $k) (i32.const ${FLUSH_FLOATS * 4})) (local.get $end4))))
      (block $iDone (loop $iLoop
        (br_if $iDone (i32.ge_u (local.get $k) (local.get $blockEnd)))
        (local.set $dv (v128.load align=4 (i32.add (local.get $d) (local.get $k))))
${taps.map((t) => `        (local.set $a${t} (f32x4.add (local.get $a${t}) (f32x4.mul (v128.load align=4 (i32.add (local.get $x${t}) (local.get $k))) (local.get $dv))))`).join('\n')}
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $iLoop)))
${taps.map((t) => `      (local.set $s${t} (f64.add (local.get $s${t}) (f64.add (f64.add ${lanes.slice(0, 2).map((l) => `(f64.promote_f32 (f32x4.extract_lane ${l} (local.get $a${t})))`).join(' ')}) (f64.add ${lanes.slice(2).map((l) => `(f64.promote_f32 (f32x4.extract_lane ${l} (local.get $a${t})))`).join(' ')}))))
      (local.set $a${t} (v128.const i32x4 0 0 0 0))`).join('\n')}
      (br $oLoop)))
    (block $rDone (loop $rLoop
      (br_if $rDone (i32.ge_u (local.get $k) (local.get $end)))
      (local.set $df (f32.load (i32.add (local.get $d) (local.get $k))))
${taps.map((t) => `      (local.set $s${t} (f64.add (local.get $s${t}) (f64.promote_f32 (f32.mul (f32.load (i32.add (local.get $x${t}) (local.get $k))) (local.get $df)))))`).join('\n')}
      (local.set $k (i32.add (local.get $k) (i32.const 4)))
      (br $rLoop)))
    ${taps.map((t) => `(local.get $s${t})`).join(' ')})
  (func (export "batchNorm") (param $x i32) (param $out i32) (param $pixels i32) (param $c i32) (param $mean i32) (param $variance i32) (param $scale i32) (param $offset i32) (param $eps f32) (param $nf i32)
    (local $k i32) (local $p i32) (local $c4 i32) (local $row i32) (local $rowBytes i32) (local $o i32)
    ;; tfjs-backend-wasm's FusedBatchNorm.cc arithmetic, lane by lane: nf = sqrt(variance + eps); out = offset + (x - mean) * scale / nf.
    (block $nDone (loop $nLoop
      (br_if $nDone (i32.ge_u (local.get $k) (local.get $c)))
      (f32.store (i32.add (local.get $nf) (i32.shl (local.get $k) (i32.const 2))) (f32.sqrt (f32.add (f32.load (i32.add (local.get $variance) (i32.shl (local.get $k) (i32.const 2)))) (local.get $eps))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $nLoop)))
    (local.set $c4 (i32.shl (i32.and (local.get $c) (i32.const -4)) (i32.const 2)))
    (local.set $rowBytes (i32.shl (local.get $c) (i32.const 2)))
    (block $pDone (loop $pLoop
      (br_if $pDone (i32.ge_u (local.get $p) (local.get $pixels)))
      (local.set $row (i32.mul (local.get $p) (local.get $rowBytes)))
      (local.set $k (i32.const 0))
      (block $vDone (loop $vLoop
        (br_if $vDone (i32.ge_u (local.get $k) (local.get $c4)))
        (local.set $o (i32.add (local.get $row) (local.get $k)))
        (v128.store align=4 (i32.add (local.get $out) (local.get $o))
          (f32x4.add (v128.load align=4 (i32.add (local.get $offset) (local.get $k)))
            (f32x4.div (f32x4.mul (f32x4.sub (v128.load align=4 (i32.add (local.get $x) (local.get $o))) (v128.load align=4 (i32.add (local.get $mean) (local.get $k))))
                                  (v128.load align=4 (i32.add (local.get $scale) (local.get $k))))
                       (v128.load align=4 (i32.add (local.get $nf) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $vLoop)))
      (block $sDone (loop $sLoop
        (br_if $sDone (i32.ge_u (local.get $k) (local.get $rowBytes)))
        (local.set $o (i32.add (local.get $row) (local.get $k)))
        (f32.store (i32.add (local.get $out) (local.get $o))
          (f32.add (f32.load (i32.add (local.get $offset) (local.get $k)))
            (f32.div (f32.mul (f32.sub (f32.load (i32.add (local.get $x) (local.get $o))) (f32.load (i32.add (local.get $mean) (local.get $k))))
                              (f32.load (i32.add (local.get $scale) (local.get $k))))
                     (f32.load (i32.add (local.get $nf) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $sLoop)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $pLoop))))
  (func (export "relu6Grad") (param $dy i32) (param $x i32) (param $out i32) (param $n i32)
    (local $k i32) (local $end4 i32) (local $end i32) (local $v v128) (local $w v128)
    ;; dy · (step(x) - step(x - 6)), as tfjs computes it (step: 1 above 0, else 0, NaN for NaN), in one pass.
    (local.set $end4 (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $vDone (loop $vLoop
      (br_if $vDone (i32.ge_u (local.get $k) (local.get $end4)))
      (local.set $v (v128.load align=4 (i32.add (local.get $x) (local.get $k))))
      (local.set $w (f32x4.sub (local.get $v) (v128.const f32x4 6 6 6 6)))
      (v128.store align=4 (i32.add (local.get $out) (local.get $k))
        (f32x4.mul (v128.load align=4 (i32.add (local.get $dy) (local.get $k)))
          (f32x4.sub
            (v128.bitselect (v128.const f32x4 nan nan nan nan) (v128.bitselect (v128.const f32x4 1 1 1 1) (v128.const f32x4 0 0 0 0) (f32x4.gt (local.get $v) (v128.const f32x4 0 0 0 0))) (f32x4.ne (local.get $v) (local.get $v)))
            (v128.bitselect (v128.const f32x4 nan nan nan nan) (v128.bitselect (v128.const f32x4 1 1 1 1) (v128.const f32x4 0 0 0 0) (f32x4.gt (local.get $w) (v128.const f32x4 0 0 0 0))) (f32x4.ne (local.get $w) (local.get $w))))))
      (local.set $k (i32.add (local.get $k) (i32.const 16)))
      (br $vLoop)))
    (block $sDone (loop $sLoop
      (br_if $sDone (i32.ge_u (local.get $k) (local.get $end)))
      (local.set $v (f32x4.splat (f32.load (i32.add (local.get $x) (local.get $k)))))
      (local.set $w (f32x4.sub (local.get $v) (v128.const f32x4 6 6 6 6)))
      (f32.store (i32.add (local.get $out) (local.get $k))
        (f32.mul (f32.load (i32.add (local.get $dy) (local.get $k)))
          (f32x4.extract_lane 0 (f32x4.sub
            (v128.bitselect (v128.const f32x4 nan nan nan nan) (v128.bitselect (v128.const f32x4 1 1 1 1) (v128.const f32x4 0 0 0 0) (f32x4.gt (local.get $v) (v128.const f32x4 0 0 0 0))) (f32x4.ne (local.get $v) (local.get $v)))
            (v128.bitselect (v128.const f32x4 nan nan nan nan) (v128.bitselect (v128.const f32x4 1 1 1 1) (v128.const f32x4 0 0 0 0) (f32x4.gt (local.get $w) (v128.const f32x4 0 0 0 0))) (f32x4.ne (local.get $w) (local.get $w)))))))
      (local.set $k (i32.add (local.get $k) (i32.const 4)))
      (br $sLoop))))
)
`;
}

async function build() {
  const wabt = await require('wabt')();
  const features = { simd: true, threads: true, multi_value: true };
  const binaries = {};
  for (const [name, shared] of [['shared', true], ['unshared', false]]) {
    const mod = wabt.parseWat(`simd-kernels-${name}.wat`, wat(shared), features);
    // Validated by V8 itself (wabt.js' validate() ignores the threads feature and rejects shared memory).
    const binary = mod.toBinary({}).buffer;
    new WebAssembly.Module(binary);
    binaries[name] = Buffer.from(binary).toString('base64');
    mod.destroy();
  }
  return `// Generated by scripts/build-wasm-kernels.js (WebAssembly text there); do not edit.
/** The SIMD kernels' WebAssembly binaries, base64: importing the threaded backend's shared memory, or the single-threaded one's. */
export const SIMD_KERNELS_WASM = {
  shared: '${binaries.shared}',
  unshared: '${binaries.unshared}',
};
`;
}

module.exports = { build, wat, OUT };

if (require.main === module) {
  build().then((text) => {
    if (process.argv.includes('--check')) {
      const current = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : '';
      if (current !== text) {
        console.error(`${OUT} is out of date: run node scripts/build-wasm-kernels.js`);
        process.exit(1);
      }
      return;
    }
    fs.writeFileSync(`${OUT}.tmp`, text);
    fs.renameSync(`${OUT}.tmp`, OUT);
    console.log(`wrote ${OUT}`);
  }, (e) => {
    console.error(e);
    process.exit(1);
  });
}
