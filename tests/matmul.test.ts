// ops.matmul: float64 reference and the tolerance rule on a covering set of odd shapes in every layout, under
// every ISA; batched and broadcast operands; alpha/beta with beta = 0 never reading (NaN-poisoned) C; f16/bf16
// inputs and outputs; bitwise determinism across runs and thread counts; PyTorch goldens; bad input; and (under
// test:gpu) CUDA against the CPU twin. QWENLONG_TEST_LONG adds large products.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { Tensor, info, ops, setThreads } from '../src/index.js';
import { native } from '../src/native/addon.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/native/half.js';
import { firstBitDifference, forEachIsa, gpuRun, maxAbsError, randomArray, withinRule } from './helpers.js';

const f32 = Math.fround;
type Float = 'f32' | 'f16' | 'bf16';

/** op(A): (M, K) values, row-major; stored as (K, M) when transposed. The same for B. */
interface Operands {
  m: number;
  n: number;
  k: number;
  batch: number;
  opA: Float32Array[]; // per batch entry (one shared entry when broadcast)
  opB: Float32Array[];
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
  return out;
}

/** Stores op(X) (rows × cols per entry) as a tensor, transposed when asked, batched when there are several. */
function store(op: Float32Array[], rows: number, cols: number, trans: boolean, dtype: Float, batched: boolean): Tensor {
  const parts = op.map((x) => (trans ? transpose(x, rows, cols) : x));
  const data = new Float32Array(parts.length * rows * cols);
  parts.forEach((p, z) => data.set(p, z * rows * cols));
  const shape = trans ? [cols, rows] : [rows, cols];
  return Tensor.from(data, batched ? [parts.length, ...shape] : shape, { dtype, device: 'cpu' });
}

/** The values a half dtype keeps (what the op sees). */
function rounded(x: Float32Array, dtype: Float): Float32Array {
  if (dtype === 'f32') return x;
  const [enc, dec] = dtype === 'bf16' ? [f32ToBf16, bf16ToF32] : [f32ToF16, f16ToF32];
  return Float32Array.from(x, (v) => dec(enc(v)));
}

function operands(m: number, n: number, k: number, seed: number, dtype: Float, batchA = 0, batchB = 0): Operands {
  const batch = Math.max(batchA, batchB, 1);
  const opA = Array.from({ length: Math.max(batchA, 1) }, (_, z) => rounded(randomArray(m * k, seed + 17 * z), dtype));
  const opB = Array.from({ length: Math.max(batchB, 1) }, (_, z) => rounded(randomArray(k * n, seed + 1000 + 17 * z), dtype));
  return { m, n, k, batch, opA, opB };
}

/**
 * alpha · op(A) · op(B) + beta · C per batch entry: in float64 (the reference) and as the naive f32 loop the
 * tolerance rule measures against (sum in k order, then alpha · sum + beta · c, every step rounded to f32).
 */
function reference(o: Operands, alpha: number, beta: number, c: Float32Array | null): { exact: Float64Array; naive: Float32Array } {
  const { m, n, k, batch } = o;
  const exact = new Float64Array(batch * m * n);
  const naive = new Float32Array(batch * m * n);
  const fa = f32(alpha), fb = f32(beta);
  for (let z = 0; z < batch; z++) {
    const A = o.opA[o.opA.length === 1 ? 0 : z]!, B = o.opB[o.opB.length === 1 ? 0 : z]!;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0, s32 = 0;
        for (let p = 0; p < k; p++) {
          const prod = A[i * k + p]! * B[p * n + j]!;
          s += prod;
          s32 = f32(s32 + f32(prod));
        }
        const idx = z * m * n + i * n + j;
        const cv = c ? c[idx]! : 0;
        exact[idx] = alpha * s + beta * cv;
        naive[idx] = beta === 0 ? f32(fa * s32) : f32(f32(fa * s32) + f32(fb * cv));
      }
    }
  }
  return { exact, naive };
}

function poisoned(shape: number[], dtype: Float): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  return Tensor.from(new Float32Array(n).fill(NaN), shape, { dtype, device: 'cpu' });
}

const LAYOUTS = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;
const name = (ta: boolean, tb: boolean) => `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`;

// Every size in {1, 7, 63, 65, 129, 1000} appears as M, as N and as K; 63/65/129 straddle the register tiles
// (6 × 16, 14 × 32, 4 × 8) and 1000 spans several cache blocks in each dimension that has one.
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 63], [7, 1, 65], [63, 65, 1], [65, 129, 7], [129, 63, 1000],
  [1000, 7, 129], [7, 1000, 65], [65, 1000, 1], [1000, 1, 7], [129, 129, 129], [63, 7, 1000],
];

describe('ops.matmul (f32)', () => {
  it('matches float64 within the tolerance rule: covering shapes × every layout × every ISA, NaN-poisoned out', async () => {
    for (const [m, n, k] of SHAPES) {
      const o = operands(m, n, k, m * 7919 + n * 31 + k, 'f32');
      const { exact, naive } = reference(o, 1, 0, null);
      const naiveError = maxAbsError(naive, exact);
      for (const [ta, tb] of LAYOUTS) {
        const a = store(o.opA, m, k, ta, 'f32', false);
        const b = store(o.opB, k, n, tb, 'f32', false);
        forEachIsa((isa) => {
          const out = poisoned([m, n], 'f32');
          ops.matmul(a, b, { transA: ta, transB: tb, out });
          const got = out.readInto(new Float32Array(m * n));
          const err = maxAbsError(got, exact); // NaN (an unwritten element) fails here
          expect(withinRule(err, naiveError, 2, 1e-6), `${m}x${n}x${k} ${name(ta, tb)} ${isa}: ${err} vs naive ${naiveError}`).toBe(true);
          out.dispose();
        });
        a.dispose();
        b.dispose();
      }
    }
  });

  it('alpha and beta: C = alpha·AB + beta·C, every layout and ISA', async () => {
    for (const [m, n, k] of [[70, 45, 300], [13, 200, 17]] as const) {
      const o = operands(m, n, k, 99 + m, 'f32');
      const c0 = randomArray(m * n, 5 + n, -2, 2);
      const [alpha, beta] = [0.75, -1.25];
      const { exact, naive } = reference(o, alpha, beta, c0);
      for (const [ta, tb] of LAYOUTS) {
        const a = store(o.opA, m, k, ta, 'f32', false);
        const b = store(o.opB, k, n, tb, 'f32', false);
        forEachIsa((isa) => {
          const out = Tensor.from(c0, [m, n], { device: 'cpu' });
          ops.matmul(a, b, { transA: ta, transB: tb, alpha, beta, out });
          const err = maxAbsError(out.readInto(new Float32Array(m * n)), exact);
          expect(withinRule(err, maxAbsError(naive, exact), 2, 1e-6), `${name(ta, tb)} ${isa}: ${err}`).toBe(true);
          out.dispose();
        });
      }
    }
  });

  it('beta = 0 never reads C: NaN and infinity in out do not leak', async () => {
    const [m, n, k] = [37, 50, 600]; // K > one k block, so later blocks add to what the first wrote
    const o = operands(m, n, k, 4242, 'f32');
    const { exact } = reference(o, 2, 0, null);
    const a = store(o.opA, m, k, false, 'f32', false), b = store(o.opB, k, n, true, 'f32', false);
    forEachIsa(() => {
      const bad = new Float32Array(m * n).map((_, i) => (i % 2 ? NaN : -Infinity));
      const out = Tensor.from(bad, [m, n], { device: 'cpu' });
      ops.matmul(a, b, { transB: true, alpha: 2, out });
      const got = out.readInto(new Float32Array(m * n));
      expect(got.every(Number.isFinite)).toBe(true);
      expect(maxAbsError(got, exact)).toBeLessThan(1e-4);
    });
  });

  it('batched, and a 2-D operand broadcast over a batched one', async () => {
    const [m, n, k] = [33, 19, 70];
    for (const [batchA, batchB] of [[3, 3], [4, 0], [0, 2]] as const) {
      const o = operands(m, n, k, 7 + batchA * 10 + batchB, 'f32', batchA, batchB);
      const c0 = randomArray(o.batch * m * n, 12);
      const { exact, naive } = reference(o, 1.5, 0.5, c0);
      for (const [ta, tb] of LAYOUTS) {
        const a = store(o.opA, m, k, ta, 'f32', batchA > 0);
        const b = store(o.opB, k, n, tb, 'f32', batchB > 0);
        forEachIsa((isa) => {
          const out = Tensor.from(c0, [o.batch, m, n], { device: 'cpu' });
          ops.matmul(a, b, { transA: ta, transB: tb, alpha: 1.5, beta: 0.5, out });
          const err = maxAbsError(out.readInto(new Float32Array(o.batch * m * n)), exact);
          expect(withinRule(err, maxAbsError(naive, exact), 2, 1e-6), `batch ${batchA}/${batchB} ${name(ta, tb)} ${isa}: ${err}`).toBe(true);
        });
        // Without out: a new (batch, M, N) tensor.
        const fresh = ops.matmul(a, b, { transA: ta, transB: tb });
        expect(fresh.shape).toEqual([o.batch, m, n]);
        expect(fresh.dtype).toBe('f32');
        fresh.dispose();
      }
    }
    // Many small products run one per task: still the reference.
    const small = operands(8, 8, 8, 77, 'f32', 64, 64);
    const { exact } = reference(small, 1, 0, null);
    const got = await ops.matmul(store(small.opA, 8, 8, false, 'f32', true), store(small.opB, 8, 8, false, 'f32', true)).toArray();
    expect(maxAbsError(got, exact)).toBeLessThan(1e-5);
  });

  it('empty products: M, N or batch 0 give empty results; K = 0 gives beta·C', async () => {
    expect(ops.matmul(Tensor.zeros([0, 5], { device: 'cpu' }), Tensor.zeros([5, 3], { device: 'cpu' })).shape).toEqual([0, 3]);
    expect(ops.matmul(Tensor.zeros([4, 5], { device: 'cpu' }), Tensor.zeros([5, 0], { device: 'cpu' })).shape).toEqual([4, 0]);
    expect(ops.matmul(Tensor.zeros([0, 4, 5], { device: 'cpu' }), Tensor.zeros([5, 3], { device: 'cpu' })).shape).toEqual([0, 4, 3]);
    const a = Tensor.zeros([3, 0], { device: 'cpu' }), b = Tensor.zeros([0, 2], { device: 'cpu' });
    expect(Array.from(await ops.matmul(a, b).toArray())).toEqual([0, 0, 0, 0, 0, 0]);
    const out = Tensor.from([1, 2, 3, 4, 5, 6], [3, 2], { device: 'cpu' });
    ops.matmul(a, b, { out, beta: 2 });
    expect(Array.from(await out.toArray())).toEqual([2, 4, 6, 8, 10, 12]);
    const nan = poisoned([3, 2], 'f32');
    ops.matmul(a, b, { out: nan });
    expect(Array.from(await nan.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('is bitwise deterministic across runs and thread counts (fixed ISA)', async () => {
    const [m, n, k] = [300, 260, 700];
    const o = operands(m, n, k, 31337, 'f32');
    const threads = info().cpu.threads;
    for (const [ta, tb] of LAYOUTS) {
      const a = store(o.opA, m, k, ta, 'f32', false), b = store(o.opB, k, n, tb, 'f32', false);
      forEachIsa((isa) => {
        const runs: Float32Array[] = [];
        for (const t of [threads, threads, 1, 3]) {
          setThreads(t);
          const out = ops.matmul(a, b, { transA: ta, transB: tb });
          runs.push(out.readInto(new Float32Array(m * n)));
          out.dispose();
        }
        setThreads(threads);
        for (const r of runs.slice(1)) expect(firstBitDifference(r, runs[0]!), `${name(ta, tb)} ${isa}`).toBe(-1);
      });
    }
  });
});

describe('ops.matmul: a row does not depend on the others', () => {
  // A decode step multiplies one or a few rows; a prefill, many. Each element is the same FMA chain over k whatever
  // the number of rows (the kernels for fewer rows than a register tile included), so the rows agree bitwise. 300
  // rows are more than one M block under every ISA, so the full product takes the blocked path (B packed whole),
  // while up to an M block's rows take the path that packs B a few panels at a time; n = 700 spans several of those.
  it('rows of a few-row product equal the same rows of a 300-row product, bitwise: layouts, ISAs, alpha/beta, bf16, two k blocks', async () => {
    const M = 300;
    for (const [n, k, dtype] of [[130, 37, 'f32'], [700, 1100, 'f32'], [45, 300, 'bf16'], [300, 2051, 'bf16']] as const) {
      const o = operands(M, n, k, 4242 + k, dtype);
      const c0 = randomArray(M * n, 77);
      for (const [ta, tb] of LAYOUTS) {
        const b = store(o.opB, k, n, tb, dtype, false);
        forEachIsa((isa) => {
          const run = (rows: number, start: number, alpha: number, beta: number) => {
            const a = store([o.opA[0]!.subarray(start * k, (start + rows) * k)], rows, k, ta, dtype, false);
            const out = Tensor.from(c0.subarray(start * n, (start + rows) * n), [rows, n], { dtype: 'f32', device: 'cpu' });
            ops.matmul(a, b, { transA: ta, transB: tb, alpha, beta, out });
            const got = out.readInto(new Float32Array(rows * n));
            a.dispose();
            out.dispose();
            return got;
          };
          for (const [alpha, beta] of [[1, 0], [0.75, -1.25]] as const) {
            const full = run(M, 0, alpha, beta);
            for (const rows of [1, 2, 3, 5, 13, 16, 100]) {
              for (const start of [0, M - rows]) {
                const part = run(rows, start, alpha, beta);
                expect(firstBitDifference(part, full.subarray(start * n, (start + rows) * n)), `${rows} rows from ${start}, ${n}x${k} ${dtype} ${name(ta, tb)} ${isa} alpha ${alpha}`).toBe(-1);
              }
            }
          }
        });
        b.dispose();
      }
    }
  });
});

describe('ops.matmul (f16, bf16)', () => {
  for (const dtype of ['bf16', 'f16'] as const) {
    it(`${dtype} inputs, f32 and ${dtype} results, every layout and ISA`, async () => {
      // 31 x 45 x 4099: k in three blocks of the bf16-pair kernel (kc 2048 elements, rounded to whole pairs), the last
      // with an odd count (a pair whose high half is zero), in every layout.
      for (const [m, n, k] of [[65, 129, 7], [7, 63, 1000], [129, 33, 300], [31, 45, 4099]] as const) {
        const o = operands(m, n, k, 555 + k, dtype);
        const c0 = rounded(randomArray(m * n, 556 + k), dtype);
        const { exact, naive } = reference(o, 1, 0, null);
        const withC = reference(o, 0.5, 2, c0);
        const naiveHalf = Float32Array.from(withC.naive, (v) => rounded(Float32Array.of(v), dtype)[0]!);
        for (const [ta, tb] of LAYOUTS) {
          const a = store(o.opA, m, k, ta, dtype, false), b = store(o.opB, k, n, tb, dtype, false);
          forEachIsa((isa) => {
            const out = poisoned([m, n], 'f32');
            ops.matmul(a, b, { transA: ta, transB: tb, out });
            const err = maxAbsError(out.readInto(new Float32Array(m * n)), exact);
            expect(withinRule(err, maxAbsError(naive, exact), 2, 1e-6), `${dtype}→f32 ${m}x${n}x${k} ${name(ta, tb)} ${isa}`).toBe(true);
            const half = Tensor.from(c0, [m, n], { dtype, device: 'cpu' });
            ops.matmul(a, b, { transA: ta, transB: tb, alpha: 0.5, beta: 2, out: half });
            const got = Float32Array.from(half.readInto(new Uint16Array(m * n)), dtype === 'bf16' ? bf16ToF32 : f16ToF32);
            const herr = maxAbsError(got, withC.exact);
            expect(withinRule(herr, maxAbsError(naiveHalf, withC.exact), 2, 1e-6), `${dtype}→${dtype} ${m}x${n}x${k} ${name(ta, tb)} ${isa}: ${herr}`).toBe(true);
            out.dispose();
            half.dispose();
          });
        }
      }
    });
  }

  it('half results are rounded bit for bit as alpha · sum + beta · C then round-to-nearest-even, under every ISA', () => {
    // Small integers: every product and sum is exact in f32 whatever the kernel's order, so the half result depends
    // only on the finishing pass (alpha · sum, + beta · C, rounding), compared with the independent converters.
    const [m, n, k, alpha, beta] = [7, 45, 37, 0.3, -1.7];
    const ints = (count: number, seed: number) => Float32Array.from(randomArray(count, seed), (v) => Math.round(v * 8));
    const oa = ints(m * k, 31), ob = ints(k * n, 32);
    const sums = new Float32Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) sums[i * n + j] += oa[i * k + p]! * ob[p * n + j]!;
    for (const dtype of ['bf16', 'f16'] as const) {
      const [enc, dec] = dtype === 'bf16' ? [f32ToBf16, bf16ToF32] : [f32ToF16, f16ToF32];
      const c0 = Uint16Array.from(randomArray(m * n, 33), (v) => enc(v * 50));
      const want = Uint16Array.from(sums, (t, i) => enc(f32(f32(f32(alpha) * t) + f32(f32(beta) * dec(c0[i]!)))));
      const a = Tensor.from(oa, [m, k], { dtype, device: 'cpu' }), b = Tensor.from(ob, [k, n], { dtype, device: 'cpu' });
      forEachIsa((isa) => {
        const out = Tensor.from(c0, [m, n], { dtype, device: 'cpu' });
        ops.matmul(a, b, { alpha, beta, out });
        const got = out.readInto(new Uint16Array(m * n));
        const first = got.findIndex((v, i) => v !== want[i]);
        expect(first, `${dtype} ${isa}: element ${first} is ${got[first]}, not ${want[first]}`).toBe(-1);
        out.dispose();
      });
      a.dispose();
      b.dispose();
    }
  });

  it('the result dtype defaults to the inputs\', outDtype f32 overrides, and batched half inputs work', async () => {
    const o = operands(9, 10, 11, 3, 'bf16', 2, 2);
    const a = store(o.opA, 9, 11, false, 'bf16', true), b = store(o.opB, 11, 10, true, 'bf16', true);
    const half = ops.matmul(a, b, { transB: true });
    expect(half.dtype).toBe('bf16');
    const full = ops.matmul(a, b, { transB: true, outDtype: 'f32' });
    expect(full.dtype).toBe('f32');
    const { exact } = reference(o, 1, 0, null);
    expect(maxAbsError(await full.toArray(), exact)).toBeLessThan(1e-5);
    const asHalf = await half.toFloat32Array();
    expect(maxAbsError(asHalf, exact)).toBeLessThan(2 ** -7 * 4);
  });
});

describe('ops.matmul PyTorch goldens', () => {
  interface Golden {
    name: string;
    m: number;
    n: number;
    k: number;
    transA: boolean;
    transB: boolean;
    alpha: number;
    beta: number;
    dtype: Float;
    aShape: number[];
    bShape: number[];
    a: number[];
    b: number[];
    c?: number[];
    expected: number[];
    expectedShape: number[];
  }
  const doc = JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', 'matmul.json'), 'utf8')) as { cases: Golden[] };

  it(`matches torch.matmul on ${doc.cases.length} cases under every ISA`, async () => {
    for (const g of doc.cases) {
      const a = Tensor.from(g.a, g.aShape, { dtype: g.dtype, device: 'cpu' });
      const b = Tensor.from(g.b, g.bShape, { dtype: g.dtype, device: 'cpu' });
      // Our own float64 reference on the same stored values bounds how far torch and we may each be.
      const batchA = g.aShape.length === 3 ? g.aShape[0]! : 0, batchB = g.bShape.length === 3 ? g.bShape[0]! : 0;
      const split = (x: number[], shape: number[], rows: number, cols: number, trans: boolean) => {
        const per = rows * cols, entries = shape.length === 3 ? shape[0]! : 1;
        return Array.from({ length: entries }, (_, z) => {
          const part = Float32Array.from(x.slice(z * per, (z + 1) * per));
          return trans ? transpose(part, cols, rows) : part;
        });
      };
      const o: Operands = {
        m: g.m, n: g.n, k: g.k, batch: Math.max(batchA, batchB, 1),
        opA: split(g.a, g.aShape, g.m, g.k, g.transA), opB: split(g.b, g.bShape, g.k, g.n, g.transB),
      };
      const c = g.c ? Float32Array.from(g.c) : null;
      const { exact, naive } = reference(o, g.alpha, g.beta, c);
      const tol = 2 * maxAbsError(naive, exact) + maxAbsError(Float32Array.from(g.expected), exact) + 1e-6;
      forEachIsa((isa) => {
        const out = Tensor.from(c ?? new Float32Array(g.expected.length).fill(NaN), g.expectedShape, { device: 'cpu' });
        ops.matmul(a, b, { transA: g.transA, transB: g.transB, alpha: g.alpha, beta: g.beta, out });
        const got = out.readInto(new Float32Array(g.expected.length));
        expect(maxAbsError(got, g.expected), `${g.name} ${isa}`).toBeLessThanOrEqual(tol);
        out.dispose();
      });
    }
  });
});

describe('ops.matmul bad input', () => {
  const a = Tensor.from(randomArray(6, 1), [2, 3], { device: 'cpu' });
  const b = Tensor.from(randomArray(12, 2), [3, 4], { device: 'cpu' });

  it('names the op and the argument', () => {
    expect(() => ops.matmul({} as Tensor, b)).toThrow(/ops.matmul: argument 'a' must be a Tensor/);
    expect(() => ops.matmul(a, null as unknown as Tensor)).toThrow(/ops.matmul: argument 'b' must be a Tensor/);
    expect(() => ops.matmul(Tensor.from([1, 2], [2], { dtype: 'i32', device: 'cpu' }), b)).toThrow(/argument 'a' is i32/);
    expect(() => ops.matmul(a, Tensor.from(randomArray(12, 2), [3, 4], { dtype: 'bf16', device: 'cpu' }))).toThrow(/argument 'b' is bf16, expected f32/);
    expect(() => ops.matmul(Tensor.from([1, 2, 3], [3], { device: 'cpu' }), b)).toThrow(/argument 'a' has shape \[3\]; expected 2 dimensions/);
    expect(() => ops.matmul(a, Tensor.zeros([1, 1, 3, 4], { device: 'cpu' }))).toThrow(/argument 'b' has shape \[1, 1, 3, 4\]/);
    expect(() => ops.matmul(a, Tensor.zeros([4, 3], { device: 'cpu' }))).toThrow(/argument 'b' has shape \[4, 3\], whose K = 4 does not match K = 3/);
    expect(() => ops.matmul(a, b, { transA: true })).toThrow(RangeError);
    expect(() => ops.matmul(Tensor.zeros([2, 2, 3], { device: 'cpu' }), Tensor.zeros([3, 3, 4], { device: 'cpu' }))).toThrow(/argument 'b' has batch 3, expected 2/);
    expect(() => ops.matmul(a, b, { transA: 1 as unknown as boolean })).toThrow(/argument 'transA' must be a boolean/);
    expect(() => ops.matmul(a, b, { alpha: NaN })).toThrow(/argument 'alpha' must be a finite number/);
    expect(() => ops.matmul(a, b, { beta: Infinity, out: Tensor.zeros([2, 4], { device: 'cpu' }) })).toThrow(/argument 'beta' must be a finite number/);
    expect(() => ops.matmul(a, b, { beta: 1 })).toThrow(/argument 'beta' is 1 but there is no 'out'/);
    expect(() => ops.matmul(a, b, { out: Tensor.zeros([4, 2], { device: 'cpu' }) })).toThrow(/argument 'out' has shape \[4, 2\], expected \[2, 4\]/);
    expect(() => ops.matmul(a, b, { out: Tensor.zeros([2, 4], { dtype: 'f16', device: 'cpu' }) })).toThrow(/argument 'out' is f16, expected f32/);
    expect(() => ops.matmul(a, b, { outDtype: 'bf16' })).toThrow(/argument 'outDtype' must be 'f32' \(f32 or the inputs' dtype\), not 'bf16'/);
    expect(() => ops.matmul(a, b, { outDtype: 'f32', out: Tensor.zeros([2, 4], { dtype: 'i32', device: 'cpu' }) })).toThrow(/argument 'out' is i32/);
    const halves = Tensor.from(randomArray(12, 2), [3, 4], { dtype: 'f16', device: 'cpu' });
    expect(() => ops.matmul(Tensor.from(randomArray(6, 1), [2, 3], { dtype: 'f16', device: 'cpu' }), halves, { outDtype: 'bf16' })).toThrow(/must be 'f32' or 'f16'/);
    const square = Tensor.from(randomArray(9, 3), [3, 3], { device: 'cpu' });
    expect(() => ops.matmul(square, square, { out: square })).toThrow(/argument 'out' must not be 'a' or 'b'/);
    expect(() => ops.matmul(a, b, 'fast' as never)).toThrow(/ops.matmul: options must be an object/);
    const gone = Tensor.from([1, 2, 3, 4], [2, 2], { device: 'cpu' });
    gone.dispose();
    expect(() => ops.matmul(gone, gone)).toThrow(/argument 'a' has been disposed/);
  });

  it('the native entry point checks on its own too', () => {
    const x = native();
    const vector = Tensor.from([1], [1], { device: 'cpu' });
    expect(() => x.matmul(vector.handle, b.handle, null, false, false, 1, 0, null)).toThrow(/ops.matmul: argument 'a' has shape \[1\]/);
    expect(() => x.matmul(a.handle, b.handle, null, 'no' as never, false, 1, 0, null)).toThrow(/argument 'transA' must be a boolean/);
    expect(() => x.matmul(a.handle, b.handle, null, false, false, 1, 3, null)).toThrow(/argument 'beta'/);
    expect(() => x.matmul(a.handle, b.handle, null, false, false, NaN, 0, null)).toThrow(/argument 'alpha'/);
    expect(() => x.matmul(a.handle, b.handle, null, false, false, 1, 0, 'u8')).toThrow(/argument 'outDtype'/);
    expect(() => x.matmul(a.handle, a.handle, null, false, false, 1, 0, null)).toThrow(/K = 2 does not match K = 3/);
    expect(() => x.matmul(a.handle, b.handle, a.handle, false, false, 1, 0, null)).toThrow(/argument 'out' has shape \[2, 3\], expected \[2, 4\]/);
    const huge = () => x.matmul(Tensor.zeros([2 ** 30, 0], { device: 'cpu' }).handle, Tensor.zeros([0, 2 ** 30], { device: 'cpu' }).handle, null, false, false, 1, 0, null);
    expect(huge).toThrow(/more than 2\^40 elements/);
  });

  it('leaves out untouched when it refuses', async () => {
    const out = Tensor.from([9, 9, 9, 9, 9, 9, 9, 9], [2, 4], { device: 'cpu' });
    expect(() => ops.matmul(a, b, { out, alpha: NaN })).toThrow();
    expect(() => ops.matmul(a, Tensor.zeros([4, 4], { device: 'cpu' }), { out })).toThrow();
    expect(() => ops.matmul(a, b, { out, transB: true })).toThrow();
    expect(Array.from(await out.toArray())).toEqual([9, 9, 9, 9, 9, 9, 9, 9]);
  });
});

describe.runIf(!!process.env.QWENLONG_TEST_LONG)('ops.matmul large (QWENLONG_TEST_LONG)', () => {
  it('1024 × 1536 × 2048 in every layout against float64 on sampled rows', async () => {
    const [m, n, k] = [1024, 1536, 2048];
    const o = operands(m, n, k, 2024, 'f32');
    const rows = [0, 1, 511, 777, 1023];
    for (const [ta, tb] of LAYOUTS) {
      const a = store(o.opA, m, k, ta, 'f32', false), b = store(o.opB, k, n, tb, 'f32', false);
      const got = await ops.matmul(a, b, { transA: ta, transB: tb }).toArray();
      for (const i of rows) {
        const sub: Operands = { m: 1, n, k, batch: 1, opA: [o.opA[0]!.subarray(i * k, (i + 1) * k)], opB: o.opB };
        const { exact, naive } = reference(sub, 1, 0, null);
        const err = maxAbsError(got.subarray(i * n, (i + 1) * n), exact);
        expect(withinRule(err, maxAbsError(naive, exact), 2, 1e-6), `${name(ta, tb)} row ${i}`).toBe(true);
      }
      a.dispose();
      b.dispose();
    }
  });
});

describe.runIf(gpuRun())('ops.matmul on CUDA', () => {
  it('matches the CPU twin within the tolerance rule: layouts, odd shapes, batches, dtypes', async () => {
    const cases: [number, number, number, number][] = [[1, 1, 1, 0], [7, 63, 65, 0], [129, 65, 1000, 0], [1000, 129, 63, 2], [256, 512, 384, 3]];
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      for (const [m, n, k, batch] of cases) {
        const o = operands(m, n, k, m + n + k, dtype, batch, batch);
        const { exact, naive } = reference(o, 1, 0, null);
        const tol = (dtype === 'f32' ? 2 : 4) * maxAbsError(naive, exact) + 1e-5 * Math.sqrt(k);
        for (const [ta, tb] of LAYOUTS) {
          const a = store(o.opA, m, k, ta, dtype, batch > 0), b = store(o.opB, k, n, tb, dtype, batch > 0);
          const cpu = await ops.matmul(a, b, { transA: ta, transB: tb, outDtype: 'f32' }).toArray();
          const ag = a.to('cuda'), bg = b.to('cuda');
          const shape = batch > 0 ? [batch, m, n] : [m, n];
          const out = Tensor.from(new Float32Array(o.batch * m * n).fill(NaN), shape, { device: 'cuda' });
          ops.matmul(ag, bg, { transA: ta, transB: tb, out });
          const gpu = await out.toArray();
          expect(maxAbsError(gpu, cpu), `${dtype} ${m}x${n}x${k} batch ${batch} ${name(ta, tb)}`).toBeLessThanOrEqual(tol);
          expect(maxAbsError(gpu, exact)).toBeLessThanOrEqual(tol);
          for (const t of [a, b, ag, bg, out]) t.dispose();
        }
      }
    }
  });
  // The Hopper kernel (matmul_wgmma.cu) is opt-in through QWENLONG_MATMUL_KERNEL until it has been checked on a card.
  // It takes 16-bit inputs whose stored rows start on 16 bytes: M, N and K multiples of 8 here, with edges inside
  // the 128 x BN x 64 tiles and the 64-element boxes of the MN-major layouts.
  const hopper = gpuRun() && info().cuda.devices[0]?.computeCapability === '9.0';
  it.runIf(hopper)('the Hopper wgmma kernel (QWENLONG_MATMUL_KERNEL=wgmma / wgmma128) matches float64 in every layout (compute capability 9.0 only)', async () => {
    const cases: [number, number, number][] = [[8, 8, 8], [72, 200, 1000], [136, 520, 64], [1000, 136, 72], [256, 512, 384], [304, 776, 2048]];
    const before = process.env.QWENLONG_MATMUL_KERNEL;
    // Strict: a product this kernel cannot take throws instead of going to the mma.sync kernel, so the results
    // checked below are this kernel's.
    process.env.QWENLONG_MATMUL_WGMMA_STRICT = '1';
    try {
      for (const dtype of ['bf16', 'f16'] as const) {
        for (const [m, n, k] of cases) {
          const o = operands(m, n, k, m * 3 + n + k, dtype);
          const { exact, naive } = reference(o, 1, 0, null);
          const c0 = randomArray(m * n, m + 5 * n);
          const rule = 4 * maxAbsError(naive, exact) + 1e-5 * Math.sqrt(k);
          const big = exact.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
          for (const kernel of ['wgmma', 'wgmma128']) {
            process.env.QWENLONG_MATMUL_KERNEL = kernel;
            for (const [ta, tb] of LAYOUTS) {
              const a = store(o.opA, m, k, ta, dtype, false), b = store(o.opB, k, n, tb, dtype, false);
              const ag = a.to('cuda'), bg = b.to('cuda');
              for (const [alpha, beta, outDtype] of [[1, 0, 'f32'], [0.5, 2, 'f32'], [1, 0, dtype]] as const) {
                const want = Float64Array.from(exact, (v, i) => alpha * v + beta * c0[i]!);
                const tol = alpha * rule + (beta ? 1e-6 * beta : 0) + (outDtype === 'f32' ? 0 : 8e-3 * big);
                const out = Tensor.from(beta ? c0 : new Float32Array(m * n).fill(NaN), [m, n], { dtype: outDtype, device: 'cuda' });
                ops.matmul(ag, bg, { transA: ta, transB: tb, alpha, beta, out });
                const gpu = await out.toArray();
                expect(maxAbsError(gpu, want), `${kernel} ${dtype} ${m}x${n}x${k} ${name(ta, tb)} alpha ${alpha} beta ${beta} out ${outDtype}`).toBeLessThanOrEqual(tol);
                out.dispose();
              }
              for (const t of [a, b, ag, bg]) t.dispose();
            }
          }
        }
      }
    } finally {
      delete process.env.QWENLONG_MATMUL_WGMMA_STRICT;
      if (before === undefined) delete process.env.QWENLONG_MATMUL_KERNEL;
      else process.env.QWENLONG_MATMUL_KERNEL = before;
    }
  });
});
