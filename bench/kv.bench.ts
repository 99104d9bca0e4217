/**
 * Decode attention over the paged KV cache on the CPU: Hq = 32, Hkv = 8, D = 128, bf16 and f32 caches, batch 1 and
 * 16, contexts 4K and 32K. Figure: GB/s of K and V read (each cached byte once per step), beside a read-only stream
 * over a buffer as large measured in the same run (every thread summing its own contiguous part; the two alternate in
 * rounds), and their ratio (the median of the rounds' ratios).
 * The target (>= 70% of the read stream) applies where K/V is at least 4x the last-level cache.
 */
import { readFileSync } from 'node:fs';
import { native } from '../src/native/addon.js';
import { hugePageMode, info } from '../src/native/runtime.js';
import { Tensor } from '../src/native/tensor.js';
import { PagedKVCache } from '../src/ops/kv_cache.js';
import * as ops from '../src/ops/index.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';
import { median } from '../src/bench/stats.js';
import { seededFloats } from '../src/bench/random.js';

/** Last-level cache bytes (Linux sysfs), or 32 MiB when unknown. */
function llcBytes(): number {
  for (const index of [3, 2]) {
    try {
      const text = readFileSync(`/sys/devices/system/cpu/cpu0/cache/index${index}/size`, 'utf8').trim();
      const m = /^(\d+)([KMG]?)/.exec(text);
      if (m) return Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[m[2]!]!;
    } catch {
      // next level
    }
  }
  return 32 * 1024 ** 2;
}

/** Whether large CPU buffers get transparent huge pages (they ask for them unless QWENLONG_HUGE_PAGES=0). */
function hugePages(): string {
  if (process.env.QWENLONG_HUGE_PAGES === '0') return 'off (QWENLONG_HUGE_PAGES=0)';
  const mode = hugePageMode();
  if (mode === null) return 'unknown (no transparent huge pages setting)';
  return mode === 'never' ? 'none (transparent huge pages are off in this kernel)' : `asked for (THP ${mode})`;
}

const suite: BenchSuite = {
  name: 'kv',
  description: 'paged-KV decode attention (CPU) against a read-only memory stream',
  async run(ctx) {
    const records: BenchRecord[] = [];
    const threads = info().cpu.threads;
    const hq = 32, hkv = 8, D = 128, bs = 16;
    const llc = llcBytes();
    ctx.log(`last-level cache ${(llc / 2 ** 20).toFixed(0)} MiB; the target applies from ${((4 * llc) / 2 ** 20).toFixed(0)} MiB of K/V`);
    ctx.log(`huge pages for the caches and the stream: ${hugePages()}`);
    const shapes = ctx.quick ? [[1, 4096], [4, 4096]] : [[1, 4096], [16, 4096], [1, 32768], [16, 32768]];
    for (const dtype of ['bf16', 'f32'] as const) {
      for (const [batch, context] of shapes as [number, number][]) {
        const esize = dtype === 'f32' ? 4 : 2;
        const kvBytes = 2 * batch * context * hkv * D * esize;
        const cache = new PagedKVCache({ layers: 1, kvHeads: hkv, headDim: D, blockSize: bs, numBlocks: batch * Math.ceil(context / bs), dtype, device: 'cpu' });
        const chunk = Math.min(context, 4096);
        const k = Tensor.from(seededFloats(chunk * hkv * D, 1), [chunk, hkv, D], { dtype, device: 'cpu' });
        const v = Tensor.from(seededFloats(chunk * hkv * D, 2), [chunk, hkv, D], { dtype, device: 'cpu' });
        const ids = Array.from({ length: batch }, (_, b) => b);
        // Interleave the sequences' chunks, so each one's blocks are spread through the pool.
        for (const id of ids) cache.allocate(id);
        for (let done = 0; done < context; done += chunk)
          for (const id of ids) {
            cache.reserve(id, chunk);
            cache.write(id, 0, k, v);
          }
        const q = Tensor.from(seededFloats(batch * hq * D, 3), [batch, hq, D], { dtype, device: 'cpu' });
        const out = Tensor.empty([batch, hq, D], { dtype, device: 'cpu' });
        // A read-only stream over as many bytes (f32 elements). The kernel and the stream take turns, a few samples
        // each per round, so each ratio compares the two in the same minutes of a machine whose bandwidth moves.
        const stream = Tensor.from(seededFloats(Math.floor(kvBytes / 4), 4), [Math.floor(kvBytes / 4)], { device: 'cpu' });
        const rounds = ctx.quick ? 2 : 5, kernelMs: number[] = [], streamMs: number[] = [], ratios: number[] = [];
        let samples = 0;
        for (let round = 0; round < rounds; round++) {
          const r = await ctx.time(() => ops.pagedAttention(q, cache, 0, ids, { out }), { warmup: 1, minSamples: 4, minTimeMs: 100 });
          const s = await ctx.time(() => native().readStream(stream.handle), { warmup: 1, minSamples: 4, minTimeMs: 100 });
          kernelMs.push(r.medianMs);
          streamMs.push(s.medianMs);
          ratios.push(s.medianMs / r.medianMs);
          samples += r.samples;
        }
        for (const t of [k, v, q, out, stream]) t.dispose();
        cache.dispose();
        const ms = median(kernelMs);
        const gbs = kvBytes / (ms * 1e6), streamGbs = kvBytes / (median(streamMs) * 1e6);
        const figures: Record<string, number | string> = {
          'K/V MiB': kvBytes / 2 ** 20,
          'GB/s': gbs,
          'read stream GB/s': streamGbs,
          'of stream': median(ratios),
          target: kvBytes >= 4 * llc ? '>= 0.70' : 'none (fits near cache)',
        };
        records.push({ suite: 'kv', case: `decode ${dtype} batch ${batch} context ${context} Hq ${hq} Hkv ${hkv} D ${D} (${threads} threads)`, medianMs: ms, samples, figures });
      }
    }
    return records;
  },
};

export default suite;
