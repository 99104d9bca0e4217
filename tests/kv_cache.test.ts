// The paged KV cache and ops.pagedAttention: attention over the cache against ops.attention on the same keys laid
// out contiguously and against a float64 naive reference (FlashAttention's tolerance rule), across block sizes,
// GQA ratios, ragged batches, forked prefixes, partitions and every ISA; the bookkeeping against a simple model over
// 10,000 random operations; a 4,000,000-token stream through a fixed pool; bad input; and on CUDA, the kernel
// against the CPU twin.
import { describe, expect, it, onTestFinished } from 'vitest';
import { PagedKVCache, Tensor, info, ops } from '../src/index.js';
import { defaultSplitSize } from '../src/ops/kv_cache.js';
import { naiveAttention } from './attention_reference.js';
import { forEachIsa, gpuRun, maxAbsError, randomArray, rng, roundToHalfReference, withinRule } from './helpers.js';

type Half = 'f32' | 'bf16' | 'f16';

interface Case {
  lensK: number[];
  lensQ: number[];
  hq: number;
  hkv: number;
  d: number;
  bs: number;
  causal?: boolean;
  split?: number;
  /** Tokens of sequence 0 that every other sequence shares through fork (their lensK include them). */
  prefix?: number;
  dtype?: Half;
  seed: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Half a unit in the last place of x stored as bf16/f16 (0 for f32). */
function halfUlp(x: number, dtype: Half): number {
  if (dtype === 'f32') return 0;
  const exp = Math.floor(Math.log2(Math.max(Math.abs(x), dtype === 'bf16' ? 2 ** -126 : 2 ** -14)));
  return 2 ** (exp - (dtype === 'bf16' ? 8 : 11));
}

/**
 * Fills a cache with the case's sequences (layer 1 holds the data, layer 0 other values), writing in round-robin
 * chunks so the sequences' blocks interleave in the pool, and returns the keys and values laid out contiguously.
 */
function build(c: Case, device: 'cpu' | 'cuda' = 'cpu') {
  const dtype = c.dtype ?? 'f32';
  const B = c.lensK.length, prefix = c.prefix ?? 0;
  const totalK = sum(c.lensK);
  const round = (x: number) => (dtype === 'f32' ? Math.fround(x) : roundToHalfReference(x, dtype));
  // The contiguous keys: sequence b's tokens; forked sequences start with sequence 0's prefix.
  const kc = new Float32Array(totalK * c.hkv * c.d), vc = new Float32Array(totalK * c.hkv * c.d);
  const kr = randomArray(kc.length, c.seed), vr = randomArray(vc.length, c.seed + 1);
  const row = c.hkv * c.d;
  let at = 0;
  const starts: number[] = [];
  for (let b = 0; b < B; b++) {
    starts.push(at);
    for (let t = 0; t < c.lensK[b]!; t++) {
      const src = b > 0 && t < prefix ? starts[0]! + t : at + t;
      for (let e = 0; e < row; e++) {
        kc[(at + t) * row + e] = round(b > 0 && t < prefix ? kc[src * row + e]! : kr[(at + t) * row + e]!);
        vc[(at + t) * row + e] = round(b > 0 && t < prefix ? vc[src * row + e]! : vr[(at + t) * row + e]!);
      }
    }
    at += c.lensK[b]!;
  }
  const blocksNeeded = sum(c.lensK.map((l) => Math.ceil(l / c.bs) + 1));
  const cache = new PagedKVCache({ layers: 2, kvHeads: c.hkv, headDim: c.d, blockSize: c.bs, numBlocks: blocksNeeded + 4, dtype, device });
  const write = (b: number, from: number, n: number) => {
    cache.reserve(b, n);
    const k = Tensor.from(kc.subarray((starts[b]! + from) * row, (starts[b]! + from + n) * row), [n, c.hkv, c.d], { dtype, device });
    const v = Tensor.from(vc.subarray((starts[b]! + from) * row, (starts[b]! + from + n) * row), [n, c.hkv, c.d], { dtype, device });
    const junk = Tensor.from(randomArray(n * row, 99), [n, c.hkv, c.d], { dtype, device });
    cache.write(b, 0, junk, junk);
    cache.write(b, 1, k, v);
    for (const t of [k, v, junk]) t.dispose();
  };
  cache.allocate(0);
  if (prefix > 0) {
    write(0, 0, prefix);
    for (let b = 1; b < B; b++) cache.fork(0, b);
  } else {
    for (let b = 1; b < B; b++) cache.allocate(b);
  }
  const done = c.lensK.map((_, b) => (prefix > 0 ? prefix : 0));
  for (let chunk = 1; done.some((x, b) => x < c.lensK[b]!); chunk = (chunk * 7) % 23 + 1) {
    for (let b = 0; b < B; b++) {
      const n = Math.min(chunk, c.lensK[b]! - done[b]!);
      if (n > 0) write(b, done[b]!, n);
      done[b]! += n;
    }
  }
  // q: the last lensQ tokens of each sequence.
  const q = Float32Array.from(randomArray(sum(c.lensQ) * c.hq * c.d, c.seed + 2), round);
  return { cache, kc, vc, q, dtype };
}

function cuOf(lens: number[]): Int32Array {
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((l, i) => (cu[i + 1] = cu[i]! + l));
  return cu;
}

async function check(c: Case) {
  const { cache, kc, vc, q } = build(c);
  const dtype = c.dtype ?? 'f32';
  const causal = c.causal ?? true;
  const ids = c.lensK.map((_, i) => i);
  const ref = naiveAttention({ lensQ: c.lensQ, lensK: c.lensK, hq: c.hq, hkv: c.hkv, d: c.d, causal }, q, kc, vc, new Float32Array(q.length), false).out;
  const naive = naiveAttention({ lensQ: c.lensQ, lensK: c.lensK, hq: c.hq, hkv: c.hkv, d: c.d, causal }, q, kc, vc, new Float32Array(q.length), true).out;
  const rounding = dtype === 'f32' ? (x: number) => x : (x: number) => roundToHalfReference(x, dtype);
  const naiveErr = maxAbsError(Float64Array.from(naive, rounding), ref);
  const qt = Tensor.from(q, [q.length / (c.hq * c.d), c.hq, c.d], { dtype, device: 'cpu' });
  const kt = Tensor.from(kc, [kc.length / (c.hkv * c.d), c.hkv, c.d], { dtype, device: 'cpu' });
  const vt = Tensor.from(vc, [vc.length / (c.hkv * c.d), c.hkv, c.d], { dtype, device: 'cpu' });
  const contiguous = await ops.attention(qt, kt, vt, { cuSeqlensQ: cuOf(c.lensQ), cuSeqlensK: cuOf(c.lensK), causal }).out.toFloat32Array();
  // One output per ISA, poisoned with NaN so an unwritten element shows.
  const results: Float32Array[] = [];
  const outs: Tensor[] = [];
  forEachIsa(() => {
    const out = Tensor.from(new Float32Array(q.length).fill(NaN), qt.shape, { dtype, device: 'cpu' });
    ops.pagedAttention(qt, cache, 1, ids, { cuSeqlensQ: cuOf(c.lensQ), causal, splitSize: c.split, out });
    outs.push(out);
  });
  for (const o of outs) results.push(await o.toFloat32Array());
  for (const got of results) {
    expect(got.every(Number.isFinite), 'every output written').toBe(true);
    const err = maxAbsError(got, ref);
    expect(withinRule(err, naiveErr, 2, 1e-6), `error ${err} vs naive ${naiveErr}`).toBe(true);
    // Against ops.attention: the same rule; for bf16 less one unit in the last place of the output (the dot-product
    // path rounds P as the GPU kernels do, and two results that each meet the rule can round to neighbouring values).
    let beyondUlp = 0;
    for (let i = 0; i < got.length; i++) beyondUlp = Math.max(beyondUlp, Math.abs(got[i]! - contiguous[i]!) - (dtype === 'bf16' ? 2 * halfUlp(contiguous[i]!, dtype) : 0));
    expect(beyondUlp).toBeLessThanOrEqual(2 * naiveErr + 1e-6);
  }
  for (const t of [qt, kt, vt, ...outs]) t.dispose();
  cache.dispose();
}

describe('ops.pagedAttention against ops.attention and float64', () => {
  it('decode: one query per sequence, ragged contexts, block sizes 8/16/32, GQA 1:1, 6:2, 8:1', async () => {
    await check({ lensK: [1, 37, 200, 16], lensQ: [1, 1, 1, 1], hq: 2, hkv: 2, d: 32, bs: 8, seed: 1 });
    await check({ lensK: [300, 5, 64], lensQ: [1, 1, 1], hq: 6, hkv: 2, d: 64, bs: 16, seed: 2 });
    await check({ lensK: [129, 1000], lensQ: [1, 1], hq: 8, hkv: 1, d: 128, bs: 32, seed: 3 });
  });

  it('chunked prefill: several queries per sequence, lenQ = lenK and lenQ < lenK, causal and not', async () => {
    await check({ lensK: [50, 113, 7], lensQ: [50, 20, 3], hq: 6, hkv: 2, d: 59, bs: 16, seed: 4 });
    await check({ lensK: [203, 64], lensQ: [40, 64], hq: 4, hkv: 4, d: 8, bs: 8, causal: false, seed: 5 });
  });

  it('partitions (flash-decoding) give the same result as one pass, whatever the split size', async () => {
    await check({ lensK: [1023, 17, 300], lensQ: [1, 1, 5], hq: 6, hkv: 2, d: 64, bs: 16, split: 64, seed: 6 });
    await check({ lensK: [1023, 17, 300], lensQ: [1, 1, 5], hq: 6, hkv: 2, d: 64, bs: 16, split: 16, seed: 6 });
    await check({ lensK: [2048], lensQ: [33], hq: 8, hkv: 1, d: 32, bs: 32, split: 1024, seed: 7 });
  });

  it('forked prefixes: sequences sharing a partial block read their own tokens after copy-on-write', async () => {
    await check({ lensK: [45, 90, 46, 45], lensQ: [1, 3, 1, 1], hq: 6, hkv: 2, d: 32, bs: 16, prefix: 45, seed: 8 });
    await check({ lensK: [64, 65, 100], lensQ: [2, 2, 2], hq: 2, hkv: 1, d: 16, bs: 8, prefix: 64, seed: 9, split: 32 });
  });

  it('bf16 and f16 caches: f32 math within the rule on the rounded inputs', async () => {
    await check({ lensK: [300, 5, 64], lensQ: [1, 2, 1], hq: 6, hkv: 2, d: 64, bs: 16, dtype: 'bf16', seed: 10, split: 128 });
    await check({ lensK: [77, 130], lensQ: [4, 1], hq: 8, hkv: 1, d: 128, bs: 8, dtype: 'f16', seed: 11 });
    // Head dims 8 mod 16: whole 16-element groups in the kernels' lane order plus a last group of 8.
    await check({ lensK: [150, 33], lensQ: [1, 3], hq: 4, hkv: 2, d: 24, bs: 16, dtype: 'bf16', seed: 13 });
    await check({ lensK: [90], lensQ: [2], hq: 6, hkv: 3, d: 40, bs: 8, dtype: 'f16', seed: 14, split: 32 });
    // Odd block sizes (blocks ending on an odd key: P V's last pair), head dims with single 16-groups and an 8-tail,
    // and full-size heads.
    await check({ lensK: [67, 20], lensQ: [1, 3], hq: 6, hkv: 2, d: 40, bs: 3, dtype: 'bf16', seed: 15 });
    await check({ lensK: [130], lensQ: [2], hq: 4, hkv: 1, d: 136, bs: 1, dtype: 'bf16', seed: 16 });
    await check({ lensK: [200, 77], lensQ: [1, 1], hq: 8, hkv: 2, d: 128, bs: 16, dtype: 'bf16', seed: 17, split: 64 });
  });

  it.runIf(!!process.env.QWENLONG_TEST_LONG)('40,000 cached tokens, decode and a 64-token chunk', async () => {
    await check({ lensK: [40000, 3000], lensQ: [1, 64], hq: 8, hkv: 2, d: 64, bs: 16, seed: 12, dtype: 'bf16' });
  }, 600_000);
});

/** The tokens a sequence holds, read from layer 0's K pool (kvHeads = 1, headDim = 1, f32: one value per token). */
function readTokens(cache: PagedKVCache, pool: Float32Array, id: number): number[] {
  const blocks = cache.blocks(id), n = cache.length(id);
  return Array.from({ length: n }, (_, t) => pool[blocks[Math.floor(t / cache.blockSize)]! * cache.blockSize + (t % cache.blockSize)]!);
}

describe('PagedKVCache bookkeeping', () => {
  it('fork shares blocks, copy-on-write keeps the other sequence intact, truncate and free return blocks', async () => {
    const cache = new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 1, blockSize: 4, numBlocks: 8, dtype: 'f32', device: 'cpu' });
    const put = (id: number, values: number[]) => {
      cache.reserve(id, values.length);
      const t = Tensor.from(values, [values.length, 1, 1], { device: 'cpu' });
      cache.write(id, 0, t, t);
      t.dispose();
    };
    const pool = () => cache.k[0]!.readInto(new Float32Array(32)) as Float32Array;
    cache.allocate(7);
    put(7, [1, 2, 3, 4, 5, 6]);
    expect(cache.stats()).toMatchObject({ used: 2, free: 6, shared: 0, sequences: 1 });
    const f = cache.fork(7);
    expect(f).toBe(8);
    expect(cache.stats()).toMatchObject({ used: 2, shared: 2 });
    put(f, [7]); // copies the shared partial block first
    expect(cache.stats()).toMatchObject({ used: 3, shared: 1 });
    expect(readTokens(cache, pool(), 7)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(readTokens(cache, pool(), f)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    put(7, [8, 9]);
    expect(readTokens(cache, pool(), 7)).toEqual([1, 2, 3, 4, 5, 6, 8, 9]);
    expect(readTokens(cache, pool(), f)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    cache.truncate(7, 3);
    expect(readTokens(cache, pool(), 7)).toEqual([1, 2, 3]);
    expect(cache.stats()).toMatchObject({ used: 2, shared: 1 }); // 7's second block went back to the pool
    put(7, [10]); // the first block is still shared with f: copy-on-write again
    expect(readTokens(cache, pool(), 7)).toEqual([1, 2, 3, 10]);
    expect(readTokens(cache, pool(), f)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(cache.stats()).toMatchObject({ used: 3, shared: 0 });
    cache.free(f);
    expect(cache.stats()).toMatchObject({ used: 1, free: 7, shared: 0, sequences: 1 });
    cache.free(7);
    expect(cache.stats()).toMatchObject({ used: 0, free: 8, sequences: 0 });
    cache.dispose();
  });

  it('a full pool refuses a reservation and changes nothing', async () => {
    const cache = new PagedKVCache({ layers: 2, kvHeads: 1, headDim: 1, blockSize: 4, numBlocks: 3, dtype: 'f32', device: 'cpu' });
    cache.allocate(0);
    cache.reserve(0, 9);
    const t = Tensor.from(Array.from({ length: 9 }, (_, i) => i + 1), [9, 1, 1], { device: 'cpu' });
    cache.write(0, 0, t, t);
    expect(cache.length(0)).toBe(0); // one layer of two written
    cache.write(0, 1, t, t);
    expect(cache.length(0)).toBe(9);
    const before = cache.stats();
    expect(() => cache.reserve(0, 4)).toThrow(/needs 1 more blocks for 4 tokens, the pool has 0 free of 3/);
    cache.fork(0, 5);
    expect(() => cache.reserve(5, 1)).toThrow(RangeError); // would copy the shared partial block: no room
    expect(cache.stats()).toMatchObject({ ...before, shared: 3, sequences: 2 });
    const pool = cache.k[1]!.readInto(new Float32Array(12)) as Float32Array;
    expect(readTokens(cache, pool, 0)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(readTokens(cache, pool, 5)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    t.dispose();
    cache.dispose();
  });

  it('10,000 random operations agree with a simple model: contents, reference counts, no leaked block', () => {
    const numBlocks = 40, bs = 4;
    const cache = new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 1, blockSize: bs, numBlocks, dtype: 'f32', device: 'cpu' });
    const model = new Map<number, number[]>();
    const rand = rng(2024);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
    let nextValue = 1, refusals = 0;
    const verify = () => {
      const pool = cache.k[0]!.readInto(new Float32Array(numBlocks * bs)) as Float32Array;
      const refs = new Map<number, number>();
      for (const [id, tokens] of model) {
        expect(cache.length(id)).toBe(tokens.length);
        expect(readTokens(cache, pool, id)).toEqual(tokens);
        const blocks = cache.blocks(id);
        expect(blocks.length).toBe(Math.ceil(tokens.length / bs));
        for (const b of blocks) refs.set(b, (refs.get(b) ?? 0) + 1);
      }
      const s = cache.stats();
      expect(s.used).toBe(refs.size);
      expect(s.shared).toBe([...refs.values()].filter((r) => r > 1).length);
      expect(s.free + s.used).toBe(numBlocks);
      expect(s.sequences).toBe(model.size);
    };
    for (let step = 0; step < 10_000; step++) {
      const ids = [...model.keys()];
      const r = rand();
      if (ids.length === 0 || r < 0.1) {
        const id = Math.floor(rand() * 1000);
        if (model.has(id)) expect(() => cache.allocate(id)).toThrow(/exists/);
        else {
          cache.allocate(id);
          model.set(id, []);
        }
      } else if (r < 0.25) {
        const id = pick(ids);
        const copy = cache.fork(id);
        model.set(copy, [...model.get(id)!]);
      } else if (r < 0.35) {
        const id = pick(ids);
        const len = Math.floor(rand() * (model.get(id)!.length + 1));
        cache.truncate(id, len);
        model.get(id)!.length = len;
      } else if (r < 0.5 || model.size > 12) {
        const id = pick(ids);
        cache.free(id);
        model.delete(id);
      } else {
        const id = pick(ids);
        const n = 1 + Math.floor(rand() * 9);
        const values = Array.from({ length: n }, () => nextValue++);
        const before = cache.stats();
        try {
          cache.reserve(id, n);
        } catch (e) {
          expect(e).toBeInstanceOf(RangeError);
          expect(cache.stats()).toEqual(before);
          refusals++;
          continue;
        }
        const t = Tensor.from(values, [n, 1, 1], { device: 'cpu' });
        cache.write(id, 0, t, t);
        t.dispose();
        model.get(id)!.push(...values);
      }
      if (step % 50 === 0) verify();
    }
    verify();
    expect(refusals).toBeGreaterThan(0); // the pool filled up at times
    for (const id of [...model.keys()]) cache.free(id);
    expect(cache.stats()).toMatchObject({ used: 0, free: numBlocks, shared: 0, sequences: 0 });
    cache.dispose();
  });

  it('streams 4,000,000 tokens chunk by chunk through a pool sized by the chunk, not the document', () => {
    const bs = 16, chunk = 4096, prefixLen = 100, total = 4_000_000;
    const prefixBlocks = Math.ceil(prefixLen / bs);
    const numBlocks = prefixBlocks + Math.ceil((chunk + bs) / bs) + 1;
    const cache = new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 4, blockSize: bs, numBlocks, dtype: 'f32', device: 'cpu' });
    cache.allocate(0);
    cache.reserve(0, prefixLen);
    const p = Tensor.from(randomArray(prefixLen * 4, 5), [prefixLen, 1, 4], { device: 'cpu' });
    cache.write(0, 0, p, p);
    const data = Tensor.from(randomArray(chunk * 4, 6), [chunk, 1, 4], { device: 'cpu' });
    const q = Tensor.from(randomArray(4, 7), [1, 1, 4], { device: 'cpu' });
    let maxUsed = 0, pushed = 0, step = 0;
    while (pushed < total) {
      const id = cache.fork(0);
      cache.reserve(id, chunk);
      cache.write(id, 0, data, data);
      maxUsed = Math.max(maxUsed, cache.stats().used);
      if (step++ % 100 === 0) {
        const o = ops.pagedAttention(q, cache, 0, [id]);
        expect(Array.from(o.readInto(new Float32Array(4)) as Float32Array).every(Number.isFinite)).toBe(true);
        o.dispose();
      }
      cache.free(id);
      pushed += chunk;
    }
    expect(maxUsed).toBeLessThanOrEqual(numBlocks);
    expect(cache.stats()).toMatchObject({ used: prefixBlocks, sequences: 1, shared: 0 });
    for (const t of [p, data, q]) t.dispose();
    cache.dispose();
  }, 120_000);
});

describe('PagedKVCache and ops.pagedAttention bad input', () => {
  it('names the argument and changes nothing', () => {
    const cache = new PagedKVCache({ layers: 2, kvHeads: 2, headDim: 8, blockSize: 8, numBlocks: 4, dtype: 'f32', device: 'cpu' });
    const kv = (n: number, dtype: Half = 'f32') => Tensor.from(randomArray(n * 16, 1), [n, 2, 8], { dtype, device: 'cpu' });
    expect(() => new PagedKVCache({ layers: 0, kvHeads: 1, headDim: 8, numBlocks: 1, device: 'cpu' })).toThrow(/'layers' must be an integer/);
    expect(() => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, numBlocks: 1, dtype: 'i32' as Half, device: 'cpu' })).toThrow(/'dtype'/);
    expect(() => cache.reserve(3, 1)).toThrow(/no sequence 3/);
    cache.allocate(0);
    expect(() => cache.allocate(0)).toThrow(/exists/);
    expect(() => cache.write(0, 0, kv(1), kv(1))).toThrow(/no reserved tokens/);
    cache.reserve(0, 3);
    expect(() => cache.write(0, 0, kv(2), kv(2))).toThrow(/'k' has shape \[2, 2, 8\], expected \[3, 2, 8\]/);
    expect(() => cache.write(0, 0, kv(3, 'bf16'), kv(3, 'bf16'))).toThrow(/'k' is bf16, the cache holds f32/);
    expect(() => cache.write(0, 2, kv(3), kv(3))).toThrow(/'layer' must be an integer in \[0, 2\)/);
    expect(() => cache.fork(0)).toThrow(/reserved tokens/);
    cache.write(0, 0, kv(3), kv(3));
    expect(() => cache.write(0, 0, kv(3), kv(3))).toThrow(/already written/);
    cache.write(0, 1, kv(3), kv(3));
    expect(cache.length(0)).toBe(3);
    expect(() => cache.truncate(0, 4)).toThrow(/'length' must be an integer in \[0, 3\]/);
    const q = Tensor.from(randomArray(2 * 4 * 8, 2), [2, 4, 8], { device: 'cpu' });
    expect(() => ops.pagedAttention(q, {} as PagedKVCache, 0, [0])).toThrow(/'cache' must be a PagedKVCache/);
    expect(() => ops.pagedAttention(q, cache, 0, [0])).toThrow(/'cuSeqlensQ' must run from 0 to the 2 rows of q/);
    expect(() => ops.pagedAttention(q, cache, 0, [0], { cuSeqlensQ: [0, 2], splitSize: 12 })).toThrow(/'splitSize' \(12\) must be a multiple of the block size 8/);
    expect(() => ops.pagedAttention(q, cache, 5, [0])).toThrow(/'layer'/);
    expect(() => ops.pagedAttention(q, cache, 0, [9])).toThrow(/no sequence 9/);
    expect(() => ops.pagedAttention(Tensor.from(randomArray(4 * 4 * 8, 2), [4, 4, 8], { device: 'cpu' }), cache, 0, [0], { cuSeqlensQ: [0, 4] })).toThrow(/4 query rows but only 3 cached tokens/);
    expect(() => ops.pagedAttention(Tensor.from(randomArray(2 * 3 * 8, 2), [2, 3, 8], { device: 'cpu' }), cache, 0, [0], { cuSeqlensQ: [0, 2] })).toThrow(/multiple of the cache's kv heads/);
    expect(() => ops.pagedAttention(Tensor.from(randomArray(2 * 4 * 8, 2), [2, 4, 8], { dtype: 'bf16', device: 'cpu' }), cache, 0, [0], { cuSeqlensQ: [0, 2] })).toThrow(/'q' is bf16, the cache holds f32/);
    cache.dispose();
    expect(() => cache.allocate(1)).toThrow(/disposed/);
  });
});

// Each kernel in turn: the default (tensor cores for bf16/f16 with head dims that are multiples of 8), the tensor-core
// kernel with two and three stages per warp forced, and the SIMT kernels (QWENLONG_PAGED_KERNEL is read per call).
describe.runIf(gpuRun()).each(['auto', 'mma2', 'mma3', 'tiled'])('ops.pagedAttention on CUDA against the CPU twin (kernel %s)', (kernel) => {
  it('bf16 and f16, block sizes 8/16/32, GQA, partitions, forks, prefill chunks', async () => {
    if (kernel === 'auto') delete process.env.QWENLONG_PAGED_KERNEL;
    else process.env.QWENLONG_PAGED_KERNEL = kernel;
    onTestFinished(() => {
      delete process.env.QWENLONG_PAGED_KERNEL;
    });
    const cases: Case[] = [
      { lensK: [1, 37, 700, 16], lensQ: [1, 1, 1, 1], hq: 8, hkv: 2, d: 128, bs: 16, seed: 21, dtype: 'bf16', split: 128 },
      { lensK: [300, 64], lensQ: [40, 64], hq: 6, hkv: 2, d: 64, bs: 8, seed: 22, dtype: 'f16' },
      { lensK: [45, 90, 46], lensQ: [1, 3, 1], hq: 32, hkv: 1, d: 59, bs: 32, prefix: 45, seed: 23, dtype: 'bf16', split: 32 },
      { lensK: [2000], lensQ: [17], hq: 4, hkv: 4, d: 256, bs: 32, seed: 24, dtype: 'bf16', causal: false, split: 512 },
      // Groups of 5 (rows of a tile left idle) and of 16 (two passes of rows over the same keys), a long prefill.
      { lensK: [500, 20], lensQ: [100, 20], hq: 10, hkv: 2, d: 64, bs: 16, seed: 25, dtype: 'bf16' },
      { lensK: [333, 1], lensQ: [2, 1], hq: 16, hkv: 1, d: 40, bs: 8, seed: 26, dtype: 'f16', split: 64 },
      // The benchmark's shape (G = 4, D = 128) with default partitions and ragged last tiles; one query head per kv
      // head (16 query tokens a pass, the causal limit differing row by row); G = 32 (two passes of 16 rows).
      { lensK: [90, 3000, 17], lensQ: [1, 1, 1], hq: 32, hkv: 8, d: 128, bs: 16, seed: 27, dtype: 'bf16' },
      { lensK: [200, 77], lensQ: [50, 77], hq: 2, hkv: 2, d: 128, bs: 32, seed: 28, dtype: 'f16' },
      { lensK: [70, 33], lensQ: [3, 33], hq: 32, hkv: 1, d: 64, bs: 8, seed: 29, dtype: 'bf16', split: 32 },
    ];
    for (const c of cases) {
      const cpu = build(c, 'cpu'), gpu = build(c, 'cuda');
      const ids = c.lensK.map((_, i) => i);
      const opts = { cuSeqlensQ: cuOf(c.lensQ), causal: c.causal ?? true, splitSize: c.split };
      const shape = [cpu.q.length / (c.hq * c.d), c.hq, c.d];
      const qc = Tensor.from(cpu.q, shape, { dtype: c.dtype!, device: 'cpu' }), qg = Tensor.from(cpu.q, shape, { dtype: c.dtype!, device: 'cuda' });
      const a = await ops.pagedAttention(qc, cpu.cache, 1, ids, opts).toFloat32Array();
      const outG = Tensor.from(new Float32Array(cpu.q.length).fill(NaN), shape, { dtype: c.dtype!, device: 'cuda' });
      const b = await ops.pagedAttention(qg, gpu.cache, 1, ids, { ...opts, out: outG }).toFloat32Array();
      expect(b.every(Number.isFinite)).toBe(true);
      const tol = c.dtype === 'bf16' ? 1.6e-2 : 2e-3;
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!), `element ${i}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(a[i]!)));
      for (const t of [qc, qg, outG]) t.dispose();
      cpu.cache.dispose();
      gpu.cache.dispose();
    }
  });
});

describe('default partitions', () => {
  it('CUDA rounds the partitions per item down to whole waves, the CPU rounds up; at least 256 keys a partition; fewer for the tensor-core kernel', () => {
    const sms = info().cuda.devices[0]?.smCount ?? 100, threads = info().cpu.threads;
    // 128 items (16 sequences x 8 kv heads) over 32K keys, block 16.
    const cudaSplits = Math.floor((24 * sms) / 128);
    expect(defaultSplitSize(128, 32768, 16, 'cuda')).toBe(Math.ceil(Math.ceil(32768 / cudaSplits) / 16) * 16);
    const cpuSplits = Math.min(Math.ceil((4 * threads) / 3), 128);
    expect(defaultSplitSize(3, 32768, 16, 'cpu')).toBe(Math.ceil(Math.ceil(32768 / cpuSplits) / 16) * 16);
    // More items than lanes: one partition. A short context: partitions of at least 256 keys.
    expect(defaultSplitSize(1e6, 4096, 16, 'cuda')).toBe(4096);
    expect(defaultSplitSize(1, 1000, 16, 'cuda')).toBe(Math.ceil(1000 / 3 / 16) * 16);
    // The tensor-core kernel: about one block per SM (8 items over 32K keys: floor(SMs / 8) partitions).
    expect(defaultSplitSize(8, 32768, 16, 'cuda', true)).toBe(Math.ceil(Math.ceil(32768 / Math.max(1, Math.floor(sms / 8))) / 16) * 16);
    expect(defaultSplitSize(128, 32768, 16, 'cuda', true)).toBe(sms >= 128 ? Math.ceil(32768 / Math.floor(sms / 128) / 16) * 16 : 32768);
  });
});
