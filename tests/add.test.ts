// ops.add / ops.scale: float64 reference, tolerance rule, every ISA, odd sizes, poisoned outputs, determinism,
// f16/bf16 rounding bit-exact with the independent converters, and (under test:gpu) CUDA against the CPU twin.
import { describe, expect, it } from 'vitest';

import { Tensor, ops, setThreads, info } from '../src/index.js';
import { f16ToF32, bf16ToF32, f32ToBf16, f32ToF16 } from '../src/native/half.js';
import { firstBitDifference, forEachIsa, gpuRun, maxAbsError, randomArray, roundToHalfReference, withinRule } from './helpers.js';

const SIZES = [1, 7, 113, 203, 1023, 1025, 300_007]; // the last spans several threads' ranges and the vector tails
const f32 = Math.fround;

function poisoned(n: number, dtype: 'f32' | 'f16' | 'bf16'): Tensor {
  return Tensor.from(new Float32Array(n).fill(NaN), [n], { dtype, device: 'cpu' });
}

describe('ops.add (f32)', () => {
  it('matches the float64 reference within the tolerance rule, and the naive f32 result bit for bit', async () => {
    for (const n of SIZES) {
      const a = randomArray(n, n);
      const b = randomArray(n, n + 1, -3, 3);
      const [alpha, beta] = [0.7, -1.3];
      const ref = Float64Array.from(a, (x, i) => alpha * x + beta * b[i]!);
      const naive = Float32Array.from(a, (x, i) => f32(f32(f32(alpha) * x) + f32(f32(beta) * b[i]!)));
      const ta = Tensor.from(a, [n], { device: 'cpu' });
      const tb = Tensor.from(b, [n], { device: 'cpu' });
      const results: Float32Array[] = [];
      forEachIsa(() => {
        const out = poisoned(n, 'f32');
        ops.add(ta, tb, { alpha, beta, out });
        results.push(out.readInto(new Float32Array(n)));
      });
      for (const got of results) {
        expect(withinRule(maxAbsError(got, ref), maxAbsError(naive, ref))).toBe(true);
        expect(firstBitDifference(got, naive)).toBe(-1); // also proves every poisoned element was written
      }
    }
  });

  it('scales, writes in place, and keeps shapes', async () => {
    const x = randomArray(1000, 5);
    const t = Tensor.from(x, [10, 100], { device: 'cpu' });
    const s = ops.scale(t, 2.5);
    expect(s.shape).toEqual([10, 100]);
    expect(await s.toArray()).toEqual(Float32Array.from(x, (v) => f32(f32(2.5) * v)));
    ops.add(t, t, { out: t, beta: -1 }); // a + (-1)·a, in place
    expect(Array.from(await t.toArray()).every((v) => v === 0)).toBe(true);
  });

  it('is bitwise deterministic across thread counts', async () => {
    const n = 1 << 20;
    const a = Tensor.from(randomArray(n, 8), [n], { device: 'cpu' });
    const b = Tensor.from(randomArray(n, 9), [n], { device: 'cpu' });
    const threads = info().cpu.threads;
    const outs: Float32Array[] = [];
    for (const t of [1, 3, threads]) {
      setThreads(t);
      outs.push(await ops.add(a, b, { alpha: 0.3, beta: 0.9 }).toArray());
    }
    setThreads(threads);
    expect(firstBitDifference(outs[1]!, outs[0]!)).toBe(-1);
    expect(firstBitDifference(outs[2]!, outs[0]!)).toBe(-1);
  });
});

describe('ops.add (f16, bf16)', () => {
  // Every f16 pattern, scaled and summed: each result must be the correctly rounded f32 math, i.e. what the
  // float64-arithmetic rounding reference gives (and the same bits under every ISA).
  for (const dtype of ['f16', 'bf16'] as const) {
    it(`${dtype}: every 16-bit pattern rounds as float64 arithmetic says, under every ISA`, async () => {
      // 8 more than every pattern: the vector kernels' 8-lane tail rounds them (values near 1 that need rounding).
      const n = 65536 + 8;
      const bitsA = Uint16Array.from({ length: n }, (_, i) => (i < 65536 ? i : 0x3f81 + 37 * (i - 65536)));
      const bitsB = Uint16Array.from({ length: n }, (_, i) => (i * 40503 + 12345) & 0xffff);
      const decode = dtype === 'f16' ? f16ToF32 : bf16ToF32;
      const encode = dtype === 'f16' ? f32ToF16 : f32ToBf16;
      const a = Tensor.from(bitsA, [n], { dtype, device: 'cpu' });
      const b = Tensor.from(bitsB, [n], { dtype, device: 'cpu' });
      for (const [alpha, beta] of [[1, 1], [0.5, 0], [3, -0.25]] as const) {
        const expected = new Uint16Array(n);
        const misrounded: number[] = [];
        for (let i = 0; i < n; i++) {
          const scaled = f32(f32(alpha) * decode(bitsA[i]!));
          const y = beta === 0 ? scaled : f32(scaled + f32(f32(beta) * decode(bitsB[i]!)));
          expected[i] = encode(y);
          // the converter itself against float64 rounding (skipping NaN payloads)
          if (!Number.isNaN(y) && decode(expected[i]!) !== roundToHalfReference(y, dtype)) misrounded.push(i);
        }
        expect(misrounded).toEqual([]);
        const seen: Uint16Array[] = [];
        forEachIsa(() => {
          const out = poisoned(n, dtype);
          if (beta === 0) ops.scale(a, alpha, { out });
          else ops.add(a, b, { alpha, beta, out });
          seen.push(out.readInto(new Uint16Array(n)));
        });
        for (const got of seen) {
          const mismatches: number[] = [];
          for (let i = 0; i < n; i++) {
            const gNaN = Number.isNaN(decode(got[i]!));
            const eNaN = Number.isNaN(decode(expected[i]!));
            if (gNaN !== eNaN || (!eNaN && got[i] !== expected[i])) mismatches.push(i);
          }
          expect(mismatches.slice(0, 10)).toEqual([]);
        }
      }
    });
  }

  it('bf16 odd sizes within the tolerance rule against float64', async () => {
    for (const n of SIZES) {
      const x = randomArray(n, 3 * n), y = randomArray(n, 3 * n + 1);
      const a = Tensor.from(x, [n], { dtype: 'bf16', device: 'cpu' });
      const b = Tensor.from(y, [n], { dtype: 'bf16', device: 'cpu' });
      const ax = await a.toFloat32Array(), by = await b.toFloat32Array();
      const ref = Float64Array.from(ax, (v, i) => v + by[i]!);
      const naive = Float32Array.from(ref, (v) => bf16ToF32(f32ToBf16(v)));
      const got = await ops.add(a, b).toFloat32Array();
      expect(withinRule(maxAbsError(got, ref), maxAbsError(naive, ref))).toBe(true);
    }
  });
});

describe.runIf(gpuRun())('ops.add on CUDA', () => {
  it('matches the CPU twin bit for bit, every dtype and odd size', async () => {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      for (const n of [...SIZES, 1 << 24]) {
        const x = randomArray(n, n + 7), y = randomArray(n, n + 8);
        const ac = Tensor.from(x, [n], { dtype, device: 'cpu' }), bc = Tensor.from(y, [n], { dtype, device: 'cpu' });
        const cpu = await ops.add(ac, bc, { alpha: 0.75, beta: -2 }).toArray();
        const ag = ac.to('cuda'), bg = bc.to('cuda');
        const out = Tensor.from(new Float32Array(n).fill(NaN), [n], { dtype, device: 'cuda' });
        ops.add(ag, bg, { alpha: 0.75, beta: -2, out });
        expect(firstBitDifference(await out.toArray(), cpu)).toBe(-1);
        expect(firstBitDifference(await ops.scale(ag, 3).toArray(), await ops.scale(ac, 3).toArray())).toBe(-1);
      }
    }
  });
});
