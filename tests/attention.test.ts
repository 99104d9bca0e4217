// ops.attention / ops.attentionBackward: a covering set of shapes against the float64 naive reference within the
// tolerance rule (the op's error ≤ 2× forward / 3× gradients of a naive float32 implementation's error, plus a floor
// relative to the output's magnitude), every ISA, poisoned outputs, bitwise determinism over thread counts, bf16
// inputs, PyTorch goldens (scripts/golden/attention.py), bad input; the 131,072-token run with its peak-RSS bound
// under QWENLONG_TEST_LONG; and under test:gpu the CUDA kernels against the CPU twin.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '../src/index.js';
import { bf16ToF32, f16ToF32, f32ToBf16 } from '../src/native/half.js';
import { info, setThreads } from '../src/native/runtime.js';
import { type AttentionCase, naiveAttention } from './attention_reference.js';
import { firstBitDifference, forEachIsa, gpuRun, maxAbsError, randomArray, withinRule } from './helpers.js';

type Float = 'f32' | 'bf16' | 'f16';
const cpu = (data: ArrayLike<number>, shape: number[], dtype: Float = 'f32') => Tensor.from(Float32Array.from(data), shape, { dtype, device: 'cpu' });
const poison = (shape: number[], dtype: Float = 'f32') => cpu(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), shape, dtype);
const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
const prefix = (lens: number[]) => Int32Array.from([0, ...lens.map((_, i) => sum(lens.slice(0, i + 1)))]);
const OUTPUTS = ['out', 'lse', 'dq', 'dk', 'dv'] as const;

// Covering set: every length, head dim and head ratio of the issue appears at least once, with both masks, a ragged
// batch holding empty query and key sequences, and lenQ < lenK and lenQ > lenK under causal.
const CASES: AttentionCase[] = [
  { lensQ: [1], lensK: [1], hq: 1, hkv: 1, d: 8, causal: false },
  { lensQ: [7], lensK: [7], hq: 6, hkv: 2, d: 59, causal: true },
  { lensQ: [113], lensK: [113], hq: 6, hkv: 1, d: 64, causal: false, scale: 0.3 },
  { lensQ: [203], lensK: [203], hq: 1, hkv: 1, d: 128, causal: true },
  { lensQ: [1023], lensK: [1023], hq: 1, hkv: 1, d: 8, causal: true },
  { lensQ: [1025], lensK: [1025], hq: 1, hkv: 1, d: 32, causal: false },
  { lensQ: [5, 0, 130, 64, 1], lensK: [5, 3, 130, 0, 9], hq: 6, hkv: 2, d: 32, causal: true },
  { lensQ: [17, 40], lensK: [33, 0], hq: 6, hkv: 1, d: 59, causal: false },
  { lensQ: [50], lensK: [200], hq: 6, hkv: 2, d: 64, causal: true },
  { lensQ: [200], lensK: [50], hq: 6, hkv: 1, d: 8, causal: true },
];

interface Inputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  dout: Float32Array;
}

function inputs(c: AttentionCase, seed: number): Inputs {
  const tq = sum(c.lensQ), tk = sum(c.lensK);
  // |q|, |k| up to 2 so the softmax is far from uniform
  return { q: randomArray(tq * c.hq * c.d, seed, -2, 2), k: randomArray(tk * c.hkv * c.d, seed + 1, -2, 2), v: randomArray(tk * c.hkv * c.d, seed + 2), dout: randomArray(tq * c.hq * c.d, seed + 3) };
}

function options(c: AttentionCase) {
  const ragged = c.lensQ.length > 1;
  return { causal: c.causal, scale: c.scale, cuSeqlensQ: ragged ? prefix(c.lensQ) : undefined, cuSeqlensK: ragged ? prefix(c.lensK) : undefined };
}

/** Runs forward and backward into poisoned outputs; returns every output as f32. */
function run(c: AttentionCase, x: Inputs, dtype: Float = 'f32'): Record<(typeof OUTPUTS)[number], Float32Array> {
  const tq = sum(c.lensQ), tk = sum(c.lensK);
  const qs = [tq, c.hq, c.d], ks = [tk, c.hkv, c.d];
  const q = cpu(x.q, qs, dtype), k = cpu(x.k, ks, dtype), v = cpu(x.v, ks, dtype), dout = cpu(x.dout, qs, dtype);
  const out = poison(qs, dtype), lseOut = poison([c.hq, tq]);
  const dqOut = poison(qs, dtype), dkOut = poison(ks, dtype), dvOut = poison(ks, dtype);
  const o = options(c);
  ops.attention(q, k, v, { ...o, out, lseOut });
  ops.attentionBackward(dout, q, k, v, out, lseOut, { ...o, dqOut, dkOut, dvOut });
  const read = (t: Tensor) => (t.dtype === 'f32' ? t.readInto(new Float32Array(t.size)) : Float32Array.from(t.readInto(new Uint16Array(t.size)), dtype === 'bf16' ? bf16ToF32 : f16ToF32));
  const result = { out: read(out), lse: read(lseOut), dq: read(dqOut), dk: read(dkOut), dv: read(dvOut) };
  for (const t of [q, k, v, dout, out, lseOut, dqOut, dkOut, dvOut]) t.dispose();
  return result;
}

const maxAbs = (a: ArrayLike<number>) => Array.prototype.reduce.call(a, (m: number, x: number) => (Number.isFinite(x) ? Math.max(m, Math.abs(x)) : m), 0) as number;

/** The tolerance rule on one output; +inf entries of lse (rows that see no key) must match exactly. */
function checkRule(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, naive: ArrayLike<number>, factor: number): void {
  const finite = (a: ArrayLike<number>) => Array.from(a, (x, i) => (ref[i] === Infinity ? 0 : x));
  for (let i = 0; i < ref.length; i++) if (ref[i] === Infinity) expect(got[i], `${name}[${i}] must be +inf`).toBe(Infinity);
  const err = maxAbsError(finite(got), finite(ref)), naiveErr = maxAbsError(finite(naive), finite(ref));
  const floor = 2 ** -21 * Math.max(maxAbs(ref), 1e-3);
  expect(withinRule(err, naiveErr, factor, floor), `${name}: error ${err.toExponential(2)} vs naive f32 ${naiveErr.toExponential(2)} (floor ${floor.toExponential(1)})`).toBe(true);
}

describe('ops.attention', () => {
  it('forward and backward against float64 within the tolerance rule: covering shapes, every ISA, poisoned outputs', () => {
    for (const [n, c] of CASES.entries()) {
      const x = inputs(c, 100 * n + 1);
      const ref = naiveAttention(c, x.q, x.k, x.v, x.dout, false);
      const naive = naiveAttention(c, x.q, x.k, x.v, x.dout, true);
      forEachIsa((isa) => {
        const got = run(c, x);
        for (const name of OUTPUTS) {
          const where = `${isa} lensQ=${c.lensQ} lensK=${c.lensK} H=${c.hq}:${c.hkv} D=${c.d} causal=${c.causal} ${name}`;
          checkRule(where, got[name], ref[name], naive[name], name === 'out' || name === 'lse' ? 2 : 3);
        }
      });
    }
  });

  it('is bitwise deterministic for any thread count (per ISA)', () => {
    const c = CASES[6]!;
    const x = inputs(c, 7);
    const threads = info().cpu.threads;
    try {
      forEachIsa(() => {
        const runs = [1, 3, threads].map((t) => {
          setThreads(t);
          return run(c, x);
        });
        for (const r of runs.slice(1)) for (const name of OUTPUTS) expect(firstBitDifference(r[name], runs[0]![name])).toBe(-1);
      });
    } finally {
      setThreads(threads);
    }
  });

  it('computes bf16 and f16 inputs in f32 (one rounding of each output)', () => {
    const c: AttentionCase = { lensQ: [3, 70], lensK: [9, 70], hq: 4, hkv: 2, d: 40, causal: true };
    for (const dtype of ['bf16', 'f16'] as const) {
      const x0 = inputs(c, 31);
      const round = (a: Float32Array) => Float32Array.from(dtype === 'bf16' ? Array.from(a, (v) => bf16ToF32(f32ToBf16(v))) : a.map((v) => Math.fround(v)));
      // f16 inputs: keep values exactly representable in f16 too (multiples of 2^-8 in [-2, 2])
      const x = dtype === 'bf16'
        ? { q: round(x0.q), k: round(x0.k), v: round(x0.v), dout: round(x0.dout) }
        : { q: x0.q.map((v) => Math.round(v * 256) / 256), k: x0.k.map((v) => Math.round(v * 256) / 256), v: x0.v.map((v) => Math.round(v * 256) / 256), dout: x0.dout.map((v) => Math.round(v * 256) / 256) };
      const ref = naiveAttention(c, x.q, x.k, x.v, x.dout, false);
      const got = run(c, x, dtype);
      const ulp = dtype === 'bf16' ? 2 ** -8 : 2 ** -11;
      for (const name of ['out', 'dq', 'dk', 'dv'] as const) {
        const scale = Math.max(maxAbs(ref[name]), 1e-3);
        // one rounding to the half type (half an ulp of the value) plus f32 noise
        expect(maxAbsError(got[name], ref[name]) / scale, `${dtype} ${name}`).toBeLessThan(1.01 * ulp);
      }
      checkRule(`${dtype} lse`, got.lse, ref.lse, Float64Array.from(ref.lse, (v) => Math.fround(v)), 4);
    }
  });

  it('matches PyTorch (goldens)', async () => {
    const golden = JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', 'attention.json'), 'utf8')) as { cases: Record<string, unknown>[] };
    expect(golden.cases.length).toBeGreaterThanOrEqual(3);
    for (const g of golden.cases) {
      const c = g.shape as AttentionCase;
      const x = { q: Float32Array.from(g.q as number[]), k: Float32Array.from(g.k as number[]), v: Float32Array.from(g.v as number[]), dout: Float32Array.from(g.dout as number[]) };
      const got = run(c, x);
      const naive = naiveAttention(c, x.q, x.k, x.v, x.dout, true);
      const torch = { out: g.out, lse: (g.lse as (number | null)[]).map((v) => v ?? Infinity), dq: g.dq, dk: g.dk, dv: g.dv } as Record<string, number[]>;
      for (const name of OUTPUTS) checkRule(`golden ${JSON.stringify(c)} ${name}`, got[name], torch[name]!, naive[name], name === 'out' || name === 'lse' ? 2 : 3);
    }
  });

  it('handles empty inputs and default options', async () => {
    const { out, lse } = ops.attention(cpu([], [0, 2, 8]), cpu([], [0, 1, 8]), cpu([], [0, 1, 8]));
    expect(out.shape).toEqual([0, 2, 8]);
    expect(lse.shape).toEqual([2, 0]);
    // no keys at all: zero output, lse +inf, zero gradients
    const q = cpu(randomArray(3 * 2 * 4, 1), [3, 2, 4]), k = cpu([], [0, 2, 4]);
    const r = ops.attention(q, k, k);
    expect(Array.from(await r.out.toArray())).toEqual(new Array(24).fill(0));
    expect(Array.from(await r.lse.toArray())).toEqual(new Array(6).fill(Infinity));
    const g = ops.attentionBackward(q, q, k, k, r.out, r.lse);
    expect(Array.from(await g.dq.toArray())).toEqual(new Array(24).fill(0));
    expect(g.dk.shape).toEqual([0, 2, 4]);
    // cuSeqlens as i32 tensors; the default scale is 1/sqrt(D)
    const qq = cpu(randomArray(10 * 2 * 16, 2), [10, 2, 16]), kk = cpu(randomArray(12 * 2 * 16, 3), [12, 2, 16]);
    const a = ops.attention(qq, kk, kk, { cuSeqlensQ: Tensor.from(Int32Array.of(0, 4, 10), [3], { device: 'cpu' }), cuSeqlensK: Tensor.from(Int32Array.of(0, 5, 12), [3], { device: 'cpu' }), scale: 0.25 });
    const b = ops.attention(qq, kk, kk, { cuSeqlensQ: Int32Array.of(0, 4, 10), cuSeqlensK: Int32Array.of(0, 5, 12) });
    expect(firstBitDifference(await a.out.toArray(), await b.out.toArray())).toBe(-1);
  });

  it('refuses bad input with a named error and writes nothing', async () => {
    const q = cpu(randomArray(4 * 6 * 8, 1), [4, 6, 8]), k = cpu(randomArray(5 * 2 * 8, 2), [5, 2, 8]), v = cpu(randomArray(5 * 2 * 8, 3), [5, 2, 8]);
    const out = cpu(new Float32Array(4 * 6 * 8).fill(7), [4, 6, 8]);
    const bad = (f: () => unknown, re: RegExp) => expect(f).toThrow(re);
    bad(() => ops.attention(cpu([1], [1]), k, v), /ops.attention: argument 'q' must have shape/);
    bad(() => ops.attention(q, cpu(randomArray(5 * 4 * 8, 2), [5, 4, 8]), cpu(randomArray(5 * 4 * 8, 2), [5, 4, 8])), /query heads \(6\) must be a positive multiple of key\/value heads \(4\)/);
    bad(() => ops.attention(q, k, cpu(randomArray(5 * 2 * 8, 2), [5, 2, 8], 'bf16')), /argument 'v' has shape|argument 'v' is bf16/);
    bad(() => ops.attention(q, cpu(randomArray(5 * 2 * 7, 2), [5, 2, 7]), cpu(randomArray(5 * 2 * 7, 2), [5, 2, 7])), /head dimension 7, q has 8/);
    bad(() => ops.attention(cpu(new Float32Array(257), [1, 1, 257]), cpu(new Float32Array(257), [1, 1, 257]), cpu(new Float32Array(257), [1, 1, 257])), /head dimension 257 is outside \[1, 256\]/);
    bad(() => ops.attention(Tensor.from([1, 2], [1, 1, 2], { dtype: 'i32' }), k, v), /argument 'q' is i32/);
    bad(() => ops.attention(q, k, v, { scale: NaN }), /ops.attention: argument 'scale' must be a finite number/);
    bad(() => ops.attention(q, k, v, { scale: -1 }), /'scale' must be positive/);
    bad(() => ops.attention(q, k, v, { causal: 1 as never }), /'causal' must be a boolean/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: Int32Array.of(0, 4) }), /give both 'cuSeqlensQ' and 'cuSeqlensK'/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: Int32Array.of(0, 3, 4), cuSeqlensK: Int32Array.of(0, 5) }), /'cuSeqlensQ' has 3 entries and 'cuSeqlensK' 2/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: Int32Array.of(0, 3, 2, 4), cuSeqlensK: Int32Array.of(0, 1, 2, 5) }), /'cuSeqlensQ' must be non-decreasing/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: Int32Array.of(0, 5), cuSeqlensK: Int32Array.of(0, 5) }), /'cuSeqlensQ' ends at 5 but the tensor has 4 rows/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: Int32Array.of(1, 4), cuSeqlensK: Int32Array.of(0, 5) }), /'cuSeqlensQ' must start at 0/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: Int32Array.of(0), cuSeqlensK: Int32Array.of(0) }), /needs at least 2 entries/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: [0, 4] as never, cuSeqlensK: Int32Array.of(0, 5) }), /'cuSeqlensQ' must be an Int32Array or an i32 Tensor/);
    bad(() => ops.attention(q, k, v, { cuSeqlensQ: cpu([0, 4], [2]), cuSeqlensK: Int32Array.of(0, 5) }), /'cuSeqlensQ' must be a 1-D i32 tensor/);
    bad(() => ops.attention(q, k, v, { out: cpu(new Float32Array(4), [4]) }), /argument 'out' has shape/);
    bad(() => ops.attention(q, k, v, { out: q }), /output tensor is also an input/);
    const { lse } = ops.attention(q, k, v, { out });
    bad(() => ops.attentionBackward(cpu([1], [1]), q, k, v, out, lse), /ops.attentionBackward: argument 'dOut' has shape/);
    bad(() => ops.attentionBackward(q, q, k, v, out, cpu([1], [1])), /argument 'lse' must be the f32 \(6, 4\) tensor/);
    bad(() => ops.attentionBackward(q, q, k, v, out, lse, { dqOut: out }), /output tensor is also an input/);
    // the native functions check everything themselves too
    const n = (await import('../src/native/addon.js')).native();
    bad(() => n.attention(q.handle, k.handle, v.handle, Int32Array.of(0, 2, 4), Int32Array.of(0, 6, 5), false, 1, null, null), /ops.attention: argument 'cuSeqlensK' must be non-decreasing/);
    bad(() => n.attention(q.handle, k.handle, v.handle, null, null, false, Infinity, null, null), /ops.attention: argument 'scale'/);
    bad(() => n.attentionBackward(q.handle, q.handle, k.handle, v.handle, out.handle, lse.handle, null, null, false, 1, k.handle, null, null), /ops.attentionBackward: argument 'dq'/);
    // nothing was written by the refused calls
    const before = Float32Array.from(await out.toArray());
    bad(() => ops.attention(q, k, v, { out, cuSeqlensQ: Int32Array.of(0, 5), cuSeqlensK: Int32Array.of(0, 5) }), /ends at 5/);
    expect(firstBitDifference(await out.toArray(), before)).toBe(-1);
  });
});

// A 131,072-token causal forward and backward (Hq = Hkv = 1, D = 16) in a child process: it completes, spot-checked
// rows match float64, and the peak RSS grows by less than 64 MB beyond the inputs and outputs.
describe.runIf(!!process.env.QWENLONG_TEST_LONG)('ops.attention at 131,072 tokens', () => {
  it('completes in O(T) memory', () => {
    const script = `
      import { Tensor, ops } from ${JSON.stringify(join(import.meta.dirname, '..', 'dist', 'src', 'index.js'))};
      const T = 131072, D = 16;
      let s = 12345;
      const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      const arr = () => Float32Array.from({ length: T * D }, rnd);
      const qa = arr(), ka = arr(), va = arr(), da = arr();
      const t = (a) => Tensor.from(a, [T, 1, D], { device: 'cpu' });
      const q = t(qa), k = t(ka), v = t(va), dout = t(da);
      const out = Tensor.zeros([T, 1, D], { device: 'cpu' }), lse = Tensor.zeros([1, T], { device: 'cpu' });
      const dq = Tensor.zeros([T, 1, D], { device: 'cpu' }), dk = Tensor.zeros([T, 1, D], { device: 'cpu' }), dv = Tensor.zeros([T, 1, D], { device: 'cpu' });
      const tiny = Tensor.zeros([64, 1, D], { device: 'cpu' });
      ops.attentionBackward(tiny, tiny, tiny, tiny, tiny, ops.attention(tiny, tiny, tiny, { causal: true }).lse, { causal: true });
      const base = process.resourceUsage().maxRSS;
      const t0 = Date.now();
      ops.attention(q, k, v, { causal: true, out, lseOut: lse });
      const t1 = Date.now();
      ops.attentionBackward(dout, q, k, v, out, lse, { causal: true, dqOut: dq, dkOut: dk, dvOut: dv });
      const t2 = Date.now();
      const peak = process.resourceUsage().maxRSS;
      const o = out.readInto(new Float32Array(T * D)), l = lse.readInto(new Float32Array(T)), g = dq.readInto(new Float32Array(T * D));
      // float64 reference for a few query rows (row i sees keys 0..i)
      let err = 0;
      for (const i of [0, 1, 4097, 65536, T - 1]) {
        const sc = new Float64Array(i + 1);
        let m = -Infinity;
        for (let j = 0; j <= i; j++) { let x = 0; for (let e = 0; e < D; e++) x += qa[i * D + e] * ka[j * D + e]; sc[j] = x / 4; m = Math.max(m, sc[j]); }
        let z = 0; for (let j = 0; j <= i; j++) { sc[j] = Math.exp(sc[j] - m); z += sc[j]; }
        const ref = new Float64Array(D), dqr = new Float64Array(D);
        for (let j = 0; j <= i; j++) for (let e = 0; e < D; e++) ref[e] += (sc[j] / z) * va[j * D + e];
        let delta = 0; for (let e = 0; e < D; e++) delta += da[i * D + e] * ref[e];
        for (let j = 0; j <= i; j++) { let dp = 0; for (let e = 0; e < D; e++) dp += da[i * D + e] * va[j * D + e]; const ds = (sc[j] / z) * (dp - delta) / 4; for (let e = 0; e < D; e++) dqr[e] += ds * ka[j * D + e]; }
        for (let e = 0; e < D; e++) err = Math.max(err, Math.abs(o[i * D + e] - ref[e]), Math.abs(g[i * D + e] - dqr[e]));
        err = Math.max(err, Math.abs(l[i] - (m + Math.log(z))) / 10);
      }
      console.log(JSON.stringify({ increaseMB: (peak - base) / 1024, forwardS: (t1 - t0) / 1e3, backwardS: (t2 - t1) / 1e3, err }));
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 1_500_000, maxBuffer: 1 << 20 });
    expect(child.status, child.stderr).toBe(0);
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as { increaseMB: number; forwardS: number; backwardS: number; err: number };
    console.log(`131,072-token causal attention: forward ${r.forwardS} s, backward ${r.backwardS} s, peak RSS +${r.increaseMB.toFixed(1)} MB, max error ${r.err.toExponential(2)}`);
    expect(r.increaseMB).toBeLessThan(64);
    expect(r.err).toBeLessThan(1e-4);
  }, 1_600_000);
});

describe.runIf(gpuRun())('ops.attention on CUDA against the CPU twin', () => {
  it('every configuration: dtypes, head dims, GQA, causal, varlen', async () => {
    const configs: (AttentionCase & { dtype: Float })[] = [];
    for (const dtype of ['bf16', 'f16', 'f32'] as const)
      for (const d of [8, 16, 32, 59, 64, 128, 256])
        for (const causal of [false, true]) configs.push({ lensQ: [300], lensK: [300], hq: 6, hkv: 2, d, causal, dtype });
    for (const dtype of ['bf16', 'f32'] as const) {
      configs.push({ lensQ: [5, 0, 130, 64, 1], lensK: [5, 3, 130, 0, 9], hq: 6, hkv: 1, d: 128, causal: true, dtype });
      configs.push({ lensQ: [50, 700], lensK: [200, 513], hq: 4, hkv: 4, d: 64, causal: true, dtype });
      configs.push({ lensQ: [2049], lensK: [2049], hq: 2, hkv: 1, d: 128, causal: false, dtype });
    }
    for (const c of configs) {
      const x = inputs(c, 5);
      const tq = sum(c.lensQ), tk = sum(c.lensK);
      const qs = [tq, c.hq, c.d], ks = [tk, c.hkv, c.d];
      const both = (a: Float32Array, s: number[]) => {
        const h = cpu(a, s, c.dtype);
        return [h, h.to('cuda')] as const;
      };
      const [qc, qg] = both(x.q, qs), [kc, kg] = both(x.k, ks), [vc, vg] = both(x.v, ks), [dc, dg] = both(x.dout, qs);
      const o = options(c);
      const fc = ops.attention(qc, kc, vc, o), fg = ops.attention(qg, kg, vg, o);
      const bc = ops.attentionBackward(dc, qc, kc, vc, fc.out, fc.lse, o), bg = ops.attentionBackward(dg, qg, kg, vg, fg.out, fg.lse, o);
      const tol = c.dtype === 'f32' ? 2e-5 : c.dtype === 'f16' ? 4e-3 : 2e-2;
      const pairs: [string, Tensor, Tensor][] = [['out', fc.out, fg.out], ['lse', fc.lse, fg.lse], ['dq', bc.dq, bg.dq], ['dk', bc.dk, bg.dk], ['dv', bc.dv, bg.dv]];
      for (const [name, a, b] of pairs) {
        const ref = await a.toFloat32Array(), got = await b.toFloat32Array();
        const finite = (arr: Float32Array) => arr.map((v) => (v === Infinity ? 0 : v));
        for (let i = 0; i < ref.length; i++) if (ref[i] === Infinity) expect(got[i]).toBe(Infinity);
        const scale = Math.max(maxAbs(ref), 1e-3);
        expect(maxAbsError(finite(got), finite(ref)) / scale, `${c.dtype} ${JSON.stringify(c)} ${name}`).toBeLessThan(name === 'out' || name === 'lse' ? tol : 2 * tol);
      }
      // varlen boundaries from an i32 tensor on the device give the same bits
      if (o.cuSeqlensQ && o.cuSeqlensK) {
        const onDevice = (a: Int32Array) => Tensor.from(a, [a.length], { device: 'cuda' });
        const again = ops.attention(qg, kg, vg, { ...o, cuSeqlensQ: onDevice(o.cuSeqlensQ), cuSeqlensK: onDevice(o.cuSeqlensK) });
        expect(firstBitDifference(await again.out.toFloat32Array(), await fg.out.toFloat32Array())).toBe(-1);
      }
    }
  });
});
