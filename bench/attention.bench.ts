/**
 * Attention on the CPU beside PyTorch in the same run (same thread count, f32, one sequence). PyTorch 1.13 has no
 * public SDPA: both its private `_scaled_dot_product_attention` (math path) and the plain
 * softmax(q·kᵀ·scale + mask)·v with autograd are timed, and ours is compared with the faster. FLOPs follow
 * FlashAttention's convention: 4·T²·Hq·D, halved when causal; backward 2.5× that. PyTorch computes the full
 * square under a causal mask, so the causal ratio is not the headline.
 */
import { info } from '../src/native/runtime.js';
import { Tensor } from '../src/native/tensor.js';
import * as ops from '../src/ops/index.js';
import { torchBench } from '../src/bench/torch.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';

interface Shape {
  T: number;
  hq: number;
  hkv: number;
  D: number;
  causal: boolean;
}

function randomTensor(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
  return Tensor.from(data, shape, { device: 'cpu' });
}

/** Process CPU time (all threads) of one call, averaged over two calls, milliseconds. */
function cpuTime(fn: () => unknown): number {
  const start = process.cpuUsage();
  fn();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 2e3;
}

const suite: BenchSuite = {
  name: 'attention',
  description: 'fused attention forward and backward (CPU, f32) beside PyTorch',
  async run(ctx) {
    const records: BenchRecord[] = [];
    const threads = info().cpu.threads;
    const shapes: Shape[] = ctx.quick
      ? [{ T: 1024, hq: 8, hkv: 2, D: 128, causal: false }, { T: 1024, hq: 8, hkv: 2, D: 128, causal: true }]
      : [
          { T: 4096, hq: 8, hkv: 2, D: 128, causal: false },
          { T: 4096, hq: 8, hkv: 2, D: 128, causal: true },
          { T: 16384, hq: 2, hkv: 1, D: 64, causal: false },
          { T: 16384, hq: 2, hkv: 1, D: 64, causal: true },
        ];
    const runs = { warmup: 1, minSamples: 3, minTimeMs: 0 };
    for (const s of shapes) {
      const label = `T=${s.T} Hq=${s.hq} Hkv=${s.hkv} D=${s.D} ${s.causal ? 'causal' : 'non-causal'}`;
      const q = randomTensor([s.T, s.hq, s.D]), k = randomTensor([s.T, s.hkv, s.D]), v = randomTensor([s.T, s.hkv, s.D]);
      const dout = randomTensor([s.T, s.hq, s.D]);
      const out = Tensor.empty([s.T, s.hq, s.D], { device: 'cpu' }), lse = Tensor.empty([s.hq, s.T], { device: 'cpu' });
      const dq = Tensor.empty(q.shape, { device: 'cpu' }), dk = Tensor.empty(k.shape, { device: 'cpu' }), dv = Tensor.empty(v.shape, { device: 'cpu' });
      const opts = { causal: s.causal };
      const forward = () => ops.attention(q, k, v, { ...opts, out, lseOut: lse });
      const backward = () => ops.attentionBackward(dout, q, k, v, out, lse, { ...opts, dqOut: dq, dkOut: dk, dvOut: dv });
      const fwd = { ...(await ctx.time(forward, runs)), cpuMs: cpuTime(forward) };
      const bwd = { ...(await ctx.time(backward, runs)), cpuMs: cpuTime(backward) };
      for (const t of [q, k, v, dout, out, lse, dq, dk, dv]) t.dispose();

      const flops = (4 * s.T * s.T * s.hq * s.D) / (s.causal ? 2 : 1);
      for (const [pass, mine, f] of [['forward', fwd, flops], ['backward', bwd, 2.5 * flops]] as const) {
        const torchCases = (['sdpa', 'math'] as const).map((impl) => ({ op: 'attention', ...s, impl, pass }));
        const torch = torchBench(torchCases, threads, ctx.quick);
        const figures: Record<string, number | string> = { 'GFLOP/s': f / (mine.medianMs * 1e6), 'CPU ms': mine.cpuMs };
        const timed = (torch ?? []).map((r, i) => (r ? { impl: torchCases[i]!.impl, ms: r.medianMs, cpuMs: r.cpuMs } : null)).filter((r) => r !== null);
        if (timed.length > 0) {
          const best = timed.reduce((a, b) => (b.ms < a.ms ? b : a));
          figures['torch ms'] = best.ms;
          figures['torch impl'] = best.impl;
          figures['torch GFLOP/s'] = f / (best.ms * 1e6);
          figures['vs torch'] = best.ms / mine.medianMs;
          // CPU time (all threads) per call: steadier than wall time when other work shares the machine
          const bestCpu = timed.reduce((a, b) => ((b.cpuMs ?? Infinity) < (a.cpuMs ?? Infinity) ? b : a));
          if (bestCpu.cpuMs !== undefined) figures['vs torch (CPU time)'] = bestCpu.cpuMs / mine.cpuMs;
        }
        records.push({ suite: 'attention', case: `${pass} ${label}`, medianMs: mine.medianMs, samples: mine.samples, figures });
        ctx.log(`${pass} ${label}: ${mine.medianMs.toFixed(1)} ms, ${(f / (mine.medianMs * 1e6)).toFixed(1)} GFLOP/s` +
          (figures['vs torch'] !== undefined ? `, torch (${figures['torch impl']}) ${(figures['torch ms'] as number).toFixed(1)} ms, ×${(figures['vs torch'] as number).toFixed(2)} wall, ×${((figures['vs torch (CPU time)'] as number | undefined) ?? NaN).toFixed(2)} CPU time` : ', torch n/a'));
      }
    }
    return records;
  },
};

export default suite;
