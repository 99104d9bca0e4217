/**
 * The dense layers' kernels beside PyTorch in the same run.
 *  1. GEMM f32: 1024³ and 4096 × 4096 × 1024 in NN, NT and TN, and the policy loss's three products (hidden
 *     h: 4096 × 1024, LM head W: 32768 × 1024): logits = h·Wᵀ (NT), dH = dlogits·W (NN), dW = dlogitsᵀ·h (TN).
 *     GFLOP/s, the fraction of the CPU's FMA peak, and torch.matmul's time over ours (OpenBLAS, same threads).
 *  2. Memory-bound ops (GB/s beside a memcpy of the same bytes): see the marked section below.
 *
 * FMA peak: measured, not looked up. `fmaPeak` runs independent fused multiply-add chains on full vectors of the
 * current ISA on every pool thread (nothing else in the loop) and counts 2 flops per lane per instruction; the
 * suite probes it before every case and after the last, and divides by the highest probe (a shared machine only
 * lowers it). Nominal clocks are no use here: a VM may report its base clock while the cores run at boost.
 *
 * Ours and torch alternate case by case and round by round (ours, torch, ours, torch), so both see the same load
 * on a shared machine; each side's figure is the best of its per-round medians.
 */
import { native } from '../src/native/addon.js';
import { info } from '../src/native/runtime.js';
import { Tensor } from '../src/native/tensor.js';
import * as ops from '../src/ops/index.js';
import { torchBench } from '../src/bench/torch.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';

interface GemmCase {
  label: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

function gemmCases(quick: boolean): GemmCase[] {
  const layouts = [
    ['NN', false, false],
    ['NT', false, true],
    ['TN', true, false],
  ] as const;
  const cases: GemmCase[] = [];
  const squares: [number, number, number][] = quick ? [[512, 512, 512]] : [[1024, 1024, 1024], [4096, 4096, 1024]];
  for (const [m, n, k] of squares) {
    for (const [name, transA, transB] of layouts) cases.push({ label: `${m}x${n}x${k} ${name}`, m, n, k, transA, transB });
  }
  const [tokens, hidden, vocab] = quick ? [512, 256, 4096] : [4096, 1024, 32768];
  cases.push({ label: `logits = h·Wᵀ ${tokens}x${vocab}x${hidden} NT`, m: tokens, n: vocab, k: hidden, transA: false, transB: true });
  cases.push({ label: `dH = dlogits·W ${tokens}x${hidden}x${vocab} NN`, m: tokens, n: hidden, k: vocab, transA: false, transB: false });
  cases.push({ label: `dW = dlogitsᵀ·h ${vocab}x${hidden}x${tokens} TN`, m: vocab, n: hidden, k: tokens, transA: true, transB: false });
  return cases;
}

function randomTensor(shape: number[]): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  let s = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return Tensor.from(data, shape, { device: 'cpu' });
}

const suite: BenchSuite = {
  name: 'dense',
  description: 'GEMM f32 (NN/NT/TN, policy-loss shapes) GFLOP/s and fraction of FMA peak beside torch.matmul',
  async run(ctx) {
    const records: BenchRecord[] = [];
    const threads = info().cpu.threads;
    const peakSeconds = ctx.quick ? 0.1 : 0.5;
    const peaks = [native().fmaPeak(peakSeconds)];
    ctx.log(`FMA peak probe (${info().cpu.isa}, ${threads} threads): ${peaks[0]!.toFixed(1)} GFLOP/s`);

    // 1. GEMM f32.
    const rounds = ctx.quick ? 1 : 2;
    const measured: { c: GemmCase; ours: number; torch: number | null; samples: number }[] = [];
    let torchMissing = false;
    for (const c of gemmCases(ctx.quick)) {
      peaks.push(native().fmaPeak(peakSeconds / 2));
      const a = randomTensor(c.transA ? [c.k, c.m] : [c.m, c.k]);
      const b = randomTensor(c.transB ? [c.n, c.k] : [c.k, c.n]);
      const out = Tensor.empty([c.m, c.n], { device: 'cpu' });
      const flop = 2 * c.m * c.n * c.k;
      const big = flop > 2 ** 37; // a second or more per call: fewer runs
      const runs = big ? { warmup: 1, minSamples: 3, minTimeMs: 0 } : { warmup: 2, minSamples: 10, minTimeMs: 500 };
      let ours = Infinity, torch: number | null = null, samples = 0;
      for (let round = 0; round < rounds; round++) {
        const r = await ctx.time(() => ops.matmul(a, b, { transA: c.transA, transB: c.transB, out }), runs);
        ours = Math.min(ours, r.medianMs);
        samples += r.samples;
        const t = torchMissing
          ? null
          : torchBench([{ op: 'matmul', m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB, dtype: 'f32', warmup: runs.warmup, samples: runs.minSamples }], threads, ctx.quick);
        if (!t?.[0]) torchMissing = true;
        else torch = Math.min(torch ?? Infinity, t[0].medianMs);
      }
      measured.push({ c, ours, torch, samples });
      const gflops = (ms: number) => ((2 * c.m * c.n * c.k) / (ms * 1e6)).toFixed(1);
      ctx.log(`  ${c.label}: ${gflops(ours)} GFLOP/s${torch === null ? '' : `, torch ${gflops(torch)}`}`);
      a.dispose();
      b.dispose();
      out.dispose();
    }
    peaks.push(native().fmaPeak(peakSeconds));
    const peak = Math.max(...peaks);
    ctx.log(`FMA peak probes: ${peaks.map((p) => p.toFixed(0)).join(', ')} GFLOP/s; dividing by the highest, ${peak.toFixed(1)}`);
    for (const { c, ours, torch, samples } of measured) {
      const gflops = (2 * c.m * c.n * c.k) / (ours * 1e6);
      const figures: Record<string, number | string> = { 'GFLOP/s': gflops };
      if (peak > 0) figures['of FMA peak'] = gflops / peak;
      if (torch !== null) {
        figures['torch GFLOP/s'] = (2 * c.m * c.n * c.k) / (torch * 1e6);
        figures['vs torch.matmul'] = torch / ours;
      }
      records.push({ suite: 'dense', case: `gemm f32 ${c.label} (${threads} threads)`, medianMs: ours, samples, figures });
    }
    if (torchMissing) ctx.log('(torch not importable: PyTorch columns omitted)');

    // 2. Memory-bound ops: the elementwise layers (rmsNorm, rope, swiglu, embedding, adamw, ...) add their cases
    //    here, each as GB/s beside `native().memcpy` of the same bytes (see bench/core.bench.ts for the pattern).

    return records;
  },
};

export default suite;
