/**
 * The dense layers' kernels beside PyTorch in the same run.
 *  1. GEMM f32: 1024³ and 4096 × 4096 × 1024 in NN, NT and TN, and the policy loss's three products (hidden
 *     h: 4096 × 1024, LM head W: 32768 × 1024): logits = h·Wᵀ (NT), dH = dlogits·W (NN), dW = dlogitsᵀ·h (TN).
 *     GFLOP/s, the fraction of the CPU's FMA peak, and torch.matmul's time over ours (OpenBLAS, same threads).
 *     Then the policy loss's three products with bf16 operands: ours into f32 (as the policy loss uses them),
 *     torch.matmul's into bf16 (its only choice on the CPU; oneDNN's AVX512-BF16 kernels where the CPU has them), and
 *     the fraction of the bf16 dot-product peak (`fmaPeak(s, 'bf16')`: the FMA peak where bf16 is widened).
 *  2. Memory-bound layers (rmsNorm, swiglu, rope, embedding, adamw, add, with backwards): GB/s over the bytes they
 *     read and write, beside a plain memcpy (one thread) of the same number of bytes.
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
  dtype: 'f32' | 'bf16';
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
    for (const [name, transA, transB] of layouts) cases.push({ label: `${m}x${n}x${k} ${name}`, m, n, k, transA, transB, dtype: 'f32' });
  }
  const [tokens, hidden, vocab] = quick ? [512, 256, 4096] : [4096, 1024, 32768];
  for (const dtype of ['f32', 'bf16'] as const) {
    cases.push({ label: `logits = h·Wᵀ ${tokens}x${vocab}x${hidden} NT`, m: tokens, n: vocab, k: hidden, transA: false, transB: true, dtype });
    cases.push({ label: `dH = dlogits·W ${tokens}x${hidden}x${vocab} NN`, m: tokens, n: hidden, k: vocab, transA: false, transB: false, dtype });
    cases.push({ label: `dW = dlogitsᵀ·h ${vocab}x${hidden}x${tokens} TN`, m: vocab, n: hidden, k: tokens, transA: true, transB: false, dtype });
  }
  return cases;
}

function randomTensor(shape: number[], dtype: 'f32' | 'bf16' = 'f32'): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  let s = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return Tensor.from(data, shape, { dtype, device: 'cpu' });
}

const suite: BenchSuite = {
  name: 'dense',
  description: 'GEMM f32 (NN/NT/TN, policy-loss shapes) and bf16 (policy-loss shapes) beside torch.matmul; memory-bound layers beside memcpy',
  async run(ctx) {
    const records: BenchRecord[] = [];
    const threads = info().cpu.threads;
    const peakSeconds = ctx.quick ? 0.1 : 0.5;
    // Probes per operand dtype: the f32 FMA, and the multiply-add the bf16 kernel uses (the bf16 dot product or the FMA).
    const peaks = { f32: [native().fmaPeak(peakSeconds)], bf16: [native().fmaPeak(peakSeconds, 'bf16')] };
    ctx.log(`FMA peak probe (${info().cpu.isa}, ${threads} threads): ${peaks.f32[0]!.toFixed(1)} GFLOP/s; bf16 operands: ${peaks.bf16[0]!.toFixed(1)}`);

    // 1. GEMM f32, then bf16.
    const rounds = ctx.quick ? 1 : 2;
    const measured: { c: GemmCase; ours: number; torch: number | null; samples: number }[] = [];
    let torchMissing = false;
    for (const c of gemmCases(ctx.quick)) {
      peaks[c.dtype].push(native().fmaPeak(peakSeconds / 2, c.dtype));
      const a = randomTensor(c.transA ? [c.k, c.m] : [c.m, c.k], c.dtype);
      const b = randomTensor(c.transB ? [c.n, c.k] : [c.k, c.n], c.dtype);
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
          : torchBench([{ op: 'matmul', m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB, dtype: c.dtype, warmup: runs.warmup, samples: runs.minSamples }], threads, ctx.quick);
        if (!t?.[0]) torchMissing = true;
        else torch = Math.min(torch ?? Infinity, t[0].medianMs);
      }
      measured.push({ c, ours, torch, samples });
      const gflops = (ms: number) => ((2 * c.m * c.n * c.k) / (ms * 1e6)).toFixed(1);
      ctx.log(`  ${c.dtype} ${c.label}: ${gflops(ours)} GFLOP/s${torch === null ? '' : `, torch ${gflops(torch)}`}`);
      a.dispose();
      b.dispose();
      out.dispose();
    }
    peaks.f32.push(native().fmaPeak(peakSeconds));
    peaks.bf16.push(native().fmaPeak(peakSeconds, 'bf16'));
    const peak = { f32: Math.max(...peaks.f32), bf16: Math.max(...peaks.bf16) };
    for (const dtype of ['f32', 'bf16'] as const) {
      ctx.log(`${dtype} operands, peak probes: ${peaks[dtype].map((p) => p.toFixed(0)).join(', ')} GFLOP/s; dividing by the highest, ${peak[dtype].toFixed(1)}`);
    }
    for (const { c, ours, torch, samples } of measured) {
      const gflops = (2 * c.m * c.n * c.k) / (ours * 1e6);
      const figures: Record<string, number | string> = { 'GFLOP/s': gflops };
      if (peak[c.dtype] > 0) figures['of FMA peak'] = gflops / peak[c.dtype];
      if (torch !== null) {
        figures['torch GFLOP/s'] = (2 * c.m * c.n * c.k) / (torch * 1e6);
        figures['vs torch.matmul'] = torch / ours;
      }
      records.push({ suite: 'dense', case: `gemm ${c.dtype} ${c.label} (${threads} threads)`, medianMs: ours, samples, figures });
    }
    if (torchMissing) ctx.log('(torch not importable: PyTorch columns omitted)');

    // 2. Memory-bound ops: GB/s over every byte read and written, beside a plain memcpy of the op's total bytes
    //    (memcpy moves them once each way, so its GB/s counts read + write too).
    const tokens = ctx.quick ? 512 : 4096;
    const C = ctx.quick ? 1024 : 4096;
    const heads = C / 128;
    const n = tokens * C;
    const x = randomTensor([tokens, C]), dy = randomTensor([tokens, C]), w = randomTensor([C]);
    const rope3 = randomTensor([tokens, heads, 128]);
    const table = randomTensor([32000, C]);
    const ids = Tensor.from(Int32Array.from({ length: tokens }, (_, i) => (i * 7919) % 32000), [tokens], { device: 'cpu' });
    const m = Tensor.zeros([n], { device: 'cpu' }), v = Tensor.zeros([n], { device: 'cpu' }), params = randomTensor([n]), grads = randomTensor([n]);
    const y = Tensor.empty([tokens, C], { device: 'cpu' }), y2 = Tensor.empty([tokens, C], { device: 'cpu' });
    const rrms = ops.rmsNorm(x, w).rrms;
    const f = 4;
    const layers: [string, number, () => unknown][] = [
      [`rmsNorm ${tokens}x${C}`, (2 * n + C) * f + tokens * f, () => ops.rmsNorm(x, w, { out: y, rrmsOut: rrms })],
      [`rmsNormBackward ${tokens}x${C}`, (3 * n + 2 * C) * f + tokens * f, () => ops.rmsNormBackward(dy, x, w, rrms, { dxOut: y, dw: false })],
      [`swiglu ${tokens}x${C}`, 3 * n * f, () => ops.swiglu(x, dy, { out: y })],
      [`swigluBackward ${tokens}x${C}`, 5 * n * f, () => ops.swigluBackward(dy, x, dy, { dgateOut: y, dupOut: y2 })],
      [`rope ${tokens}x${heads}x128`, 2 * n * f, () => ops.rope(rope3, { out: rope3 })],
      [`embedding ${tokens} of 32000x${C}`, 2 * n * f + tokens * 4, () => ops.embedding(ids, table, { out: y })],
      [`adamw ${n}`, 7 * n * f, () => ops.adamw(params, grads, m, v, { lr: 1e-6, step: 1 })],
      [`add ${n}`, 3 * n * f, () => ops.add(x, dy, { out: y })],
    ];
    for (const [label, bytes, fn] of layers) {
      const src = Tensor.zeros([Math.ceil(bytes / 8)], { device: 'cpu' }), dst = Tensor.zeros([Math.ceil(bytes / 8)], { device: 'cpu' }); // touched pages: an untouched source reads one shared zero page
      const copy = await ctx.time(() => native().memcpy(dst.handle, src.handle));
      src.dispose();
      dst.dispose();
      const r = await ctx.time(fn);
      const gbs = bytes / (r.medianMs * 1e6);
      const memcpyGbs = bytes / (copy.medianMs * 1e6);
      records.push({ suite: 'dense', case: `${label} f32 (${threads} threads)`, medianMs: r.medianMs, samples: r.samples, figures: { 'GB/s': gbs, 'memcpy GB/s': memcpyGbs, 'vs memcpy': gbs / memcpyGbs } });
    }
    for (const t of [x, dy, w, rope3, table, ids, m, v, params, grads, y, y2, rrms]) t.dispose();

    return records;
  },
};

export default suite;
