// The dense layers (rmsNorm, swiglu, rope, embedding, adamw, gradNorm/clipGrad): float64 references computed here,
// PyTorch goldens (scripts/golden/dense.py), the tolerance rule, odd shapes, every ISA, poisoned outputs,
// finite-difference checks of each backward, bad input, and under test:gpu the CUDA kernels against the CPU twins.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { Tensor, ops } from '../src/index.js';
import { bf16ToF32, f32ToBf16 } from '../src/native/half.js';
import { native } from '../src/native/addon.js';
import { firstBitDifference, forEachIsa, gpuRun, maxAbsError, randomArray, rng, roundToHalfReference, withinRule } from './helpers.js';

const f32 = Math.fround;
const golden = JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', 'dense.json'), 'utf8')) as Record<string, Record<string, unknown>[]>;
const cpu = (data: ArrayLike<number>, shape: number[], dtype: 'f32' | 'bf16' | 'f16' = 'f32') =>
  Tensor.from(Array.isArray(data) ? data : Array.from(data), shape, { dtype, device: 'cpu' });
const nanLike = (shape: number[], dtype: 'f32' | 'bf16' | 'f16' = 'f32') => Tensor.from(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), shape, { dtype, device: 'cpu' });
const read = (t: Tensor) => t.toFloat32Array();

// Covering set of (rows, C): every size of the issue appears in both roles.
const ROW_SHAPES: [number, number][] = [[1, 1], [7, 63], [63, 7], [65, 129], [129, 65], [1000, 1], [1, 1000], [3, 4096]];

// ---------- references ----------
function rmsRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, C: number, eps: number, dy?: ArrayLike<number>) {
  const y = new Float64Array(rows * C), rr = new Float64Array(rows), dx = new Float64Array(rows * C), dw = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[r * C + c]! ** 2;
    const rrms = 1 / Math.sqrt(ss / C + eps);
    rr[r] = rrms;
    for (let c = 0; c < C; c++) y[r * C + c] = x[r * C + c]! * rrms * w[c]!;
    if (dy) {
      let m = 0;
      for (let c = 0; c < C; c++) m += dy[r * C + c]! * w[c]! * x[r * C + c]!;
      m /= C;
      for (let c = 0; c < C; c++) {
        dx[r * C + c] = rrms * (dy[r * C + c]! * w[c]! - x[r * C + c]! * rrms * rrms * m);
        dw[c] += dy[r * C + c]! * x[r * C + c]! * rrms;
      }
    }
  }
  return { y, rr, dx, dw };
}

// A naive f32 rmsnorm: the error budget the op is allowed (within 2x, the tolerance rule).
function rmsNaiveF32(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, C: number, eps: number) {
  const y = new Float32Array(rows * C);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss = f32(ss + f32(x[r * C + c]! * x[r * C + c]!));
    const rrms = f32(1 / f32(Math.sqrt(f32(f32(ss / C) + f32(eps)))));
    for (let c = 0; c < C; c++) y[r * C + c] = f32(f32(x[r * C + c]! * rrms) * w[c]!);
  }
  return y;
}

const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));

describe('ops.rmsNorm', () => {
  it('forward and backward against float64 within the tolerance rule, odd shapes, every ISA (same bits)', async () => {
    for (const [rows, C] of ROW_SHAPES) {
      const x = randomArray(rows * C, rows + C, -2, 2), w = randomArray(C, C, 0.5, 1.5), dy = randomArray(rows * C, rows * C + 1);
      const eps = 1e-5;
      const ref = rmsRef(x, w, rows, C, eps, dy);
      const naive = rmsNaiveF32(x, w, rows, C, eps);
      const tx = cpu(x, [rows, C]), tw = cpu(w, [C]), tdy = cpu(dy, [rows, C]);
      const seen: Float32Array[][] = [];
      forEachIsa(() => {
        const out = nanLike([rows, C]), rrmsOut = nanLike([rows]);
        const { rrms } = ops.rmsNorm(tx, tw, { eps, out, rrmsOut });
        const dxOut = nanLike([rows, C]), dwOut = nanLike([C]);
        ops.rmsNormBackward(tdy, tx, tw, rrms, { dxOut, dwOut });
        seen.push([out, rrmsOut, dxOut, dwOut].map((t) => t.readInto(new Float32Array(t.size))));
      });
      const [y, rr, dx, dw] = seen[0]!;
      expect(withinRule(maxAbsError(y!, ref.y), maxAbsError(naive, ref.y), 2, 1e-6)).toBe(true);
      expect(maxAbsError(rr!, ref.rr)).toBeLessThan(1e-5 * Math.max(...ref.rr));
      const scaleDx = Math.max(1, ...Array.from(ref.dx, Math.abs));
      expect(maxAbsError(dx!, ref.dx) / scaleDx).toBeLessThan(3e-6 * Math.sqrt(C));
      const scaleDw = Math.max(1, ...Array.from(ref.dw, Math.abs));
      expect(maxAbsError(dw!, ref.dw) / scaleDw).toBeLessThan(3e-6 * Math.sqrt(rows));
      for (const other of seen.slice(1)) other.forEach((arr, i) => expect(firstBitDifference(arr, seen[0]![i]!)).toBe(-1));
    }
  });

  it('matches PyTorch (goldens), accumulates dw, handles leading dims and bf16', async () => {
    for (const g of golden.rmsnorm!) {
      const { rows, cols, eps } = g as { rows: number; cols: number; eps: number };
      const x = cpu(g.x as number[], [rows, cols]), w = cpu(g.w as number[], [cols]), dy = cpu(g.dy as number[], [rows, cols]);
      const { y, rrms } = ops.rmsNorm(x, w, { eps });
      expect(maxAbsError(await read(y), g.y as number[])).toBeLessThan(2e-5);
      const { dx, dw } = ops.rmsNormBackward(dy, x, w, rrms);
      expect(maxAbsError(await read(dx), g.dx as number[])).toBeLessThan(5e-5);
      expect(maxAbsError(await read(dw!), g.dw as number[])).toBeLessThan(5e-5);
      const acc = cpu(g.dw as number[], [cols]);
      ops.rmsNormBackward(dy, x, w, rrms, { dwOut: acc, accumulate: true });
      expect(maxAbsError(await read(acc), (g.dw as number[]).map((v) => 2 * v))).toBeLessThan(1e-4);
    }
    const x3 = cpu(randomArray(2 * 3 * 8, 4), [2, 3, 8]);
    const { y, rrms } = ops.rmsNorm(x3, cpu(new Float32Array(8).fill(1), [8]));
    expect(y.shape).toEqual([2, 3, 8]);
    expect(rrms.shape).toEqual([2, 3]);
    // bf16: inputs rounded, math in f32, output rounded once
    const xb = randomArray(5 * 33, 5), wb = randomArray(33, 6, 0.5, 1.5);
    const tb = ops.rmsNorm(cpu(xb, [5, 33], 'bf16'), cpu(wb, [33], 'bf16')).y;
    const xr = Array.from(xb, (v) => bf16ToF32(f32ToBf16(v))), wr = Array.from(wb, (v) => bf16ToF32(f32ToBf16(v)));
    const ref = rmsRef(xr, wr, 5, 33, 1e-5).y;
    const naive = Float32Array.from(ref, (v) => bf16ToF32(f32ToBf16(v)));
    expect(withinRule(maxAbsError(await read(tb), ref), maxAbsError(naive, ref), 2, 1e-6)).toBe(true);
  });

  it('backward matches finite differences of the op itself', async () => {
    const rows = 2, C = 5, r = rng(3);
    const x = Float64Array.from({ length: rows * C }, () => r() * 2 - 1), w = Float64Array.from({ length: C }, () => r() + 0.5);
    const g = Float64Array.from({ length: rows * C }, () => r() * 2 - 1);
    const loss = (xs: ArrayLike<number>, ws: ArrayLike<number>) => {
      const y = ops.rmsNorm(cpu(xs, [rows, C]), cpu(ws, [C])).y.readInto(new Float32Array(rows * C));
      return y.reduce((s, v, i) => s + v * g[i]!, 0);
    };
    const { rrms } = ops.rmsNorm(cpu(x, [rows, C]), cpu(w, [C]));
    const { dx, dw } = ops.rmsNormBackward(cpu(g, [rows, C]), cpu(x, [rows, C]), cpu(w, [C]), rrms);
    const dxa = await read(dx), dwa = await read(dw!);
    const h = 1e-2;
    for (let i = 0; i < rows * C; i++) {
      const xp = Float64Array.from(x), xm = Float64Array.from(x);
      xp[i] += h;
      xm[i] -= h;
      expect(Math.abs((loss(xp, w) - loss(xm, w)) / (2 * h) - dxa[i]!)).toBeLessThan(2e-3);
    }
    for (let c = 0; c < C; c++) {
      const wp = Float64Array.from(w), wm = Float64Array.from(w);
      wp[c] += h;
      wm[c] -= h;
      expect(Math.abs((loss(x, wp) - loss(x, wm)) / (2 * h) - dwa[c]!)).toBeLessThan(2e-3);
    }
  });

  it('refuses bad input', () => {
    const x = cpu([1, 2, 3, 4], [2, 2]);
    expect(() => ops.rmsNorm(x, cpu([1, 2, 3], [3]))).toThrow(/ops.rmsNorm: argument 'w' has shape \[3\], expected \[2\]/);
    expect(() => ops.rmsNorm(x, cpu([1, 2], [2], 'bf16'))).toThrow(/argument 'w' is bf16/);
    expect(() => ops.rmsNorm(x, cpu([1, 2], [2]), { eps: -1 })).toThrow(/eps/);
    expect(() => ops.rmsNorm(Tensor.from([1, 2], [2], { dtype: 'i32' }), cpu([1, 2], [2]))).toThrow(/argument 'x' is i32/);
    const { rrms } = ops.rmsNorm(x, cpu([1, 2], [2]));
    expect(() => ops.rmsNormBackward(cpu([1, 2], [2]), x, cpu([1, 2], [2]), rrms)).toThrow(/argument 'dy' has shape/);
    expect(() => ops.rmsNormBackward(x, x, cpu([1, 2], [2]), rrms, { accumulate: true })).toThrow(/accumulate/);
  });
});

describe('ops.swiglu', () => {
  it('forward and backward against float64, odd sizes, every ISA, bf16, goldens', async () => {
    for (const n of [1, 7, 63, 65, 129, 1000, 100_003]) {
      const g = randomArray(n, n, -6, 6), u = randomArray(n, n + 1), d = randomArray(n, n + 2);
      const outs: Float32Array[][] = [];
      forEachIsa(() => {
        const out = nanLike([n]), dgateOut = nanLike([n]), dupOut = nanLike([n]);
        ops.swiglu(cpu(g, [n]), cpu(u, [n]), { out });
        ops.swigluBackward(cpu(d, [n]), cpu(g, [n]), cpu(u, [n]), { dgateOut, dupOut });
        outs.push([out, dgateOut, dupOut].map((t) => t.readInto(new Float32Array(n))));
      });
      const refOut = Float64Array.from(g, (gv, i) => gv * sigmoid(gv) * u[i]!);
      const refDg = Float64Array.from(g, (gv, i) => d[i]! * u[i]! * sigmoid(gv) * (1 + gv * (1 - sigmoid(gv))));
      const refDu = Float64Array.from(g, (gv, i) => d[i]! * gv * sigmoid(gv));
      const [out, dg, du] = outs[0]!;
      // f32 math on inputs of magnitude <= 6: a few ulps of the largest value
      expect(maxAbsError(out!, refOut)).toBeLessThan(4e-6);
      expect(maxAbsError(dg!, refDg)).toBeLessThan(4e-6);
      expect(maxAbsError(du!, refDu)).toBeLessThan(4e-6);
      for (const other of outs.slice(1)) other.forEach((arr, i) => expect(firstBitDifference(arr, outs[0]![i]!)).toBe(-1));
    }
    const s = golden.swiglu![0]!;
    const n = (s.gate as number[]).length;
    const out = ops.swiglu(cpu(s.gate as number[], [n]), cpu(s.up as number[], [n]));
    expect(maxAbsError(await read(out), s.out as number[])).toBeLessThan(1e-5);
    const { dgate, dup } = ops.swigluBackward(cpu(s.dout as number[], [n]), cpu(s.gate as number[], [n]), cpu(s.up as number[], [n]));
    expect(maxAbsError(await read(dgate), s.dgate as number[])).toBeLessThan(1e-5);
    expect(maxAbsError(await read(dup), s.dup as number[])).toBeLessThan(1e-5);
    const gb = randomArray(333, 9, -4, 4), ub = randomArray(333, 10);
    const yb = await read(ops.swiglu(cpu(gb, [333], 'bf16'), cpu(ub, [333], 'bf16')));
    const ref = Array.from(gb, (v, i) => {
      const gr = bf16ToF32(f32ToBf16(v));
      return gr * sigmoid(gr) * bf16ToF32(f32ToBf16(ub[i]!));
    });
    const naive = ref.map((v) => bf16ToF32(f32ToBf16(v)));
    expect(withinRule(maxAbsError(yb, ref), maxAbsError(naive, ref), 2, 1e-6)).toBe(true);
  });

  it('backward matches finite differences', async () => {
    const n = 6, g = [-3, -0.5, 0, 0.25, 1, 4], u = [0.5, -1, 2, 0.3, -0.7, 1.1], w = [1, -2, 0.5, 3, -1, 0.25];
    const loss = (gs: number[], us: number[]) => ops.swiglu(cpu(gs, [n]), cpu(us, [n])).readInto(new Float32Array(n)).reduce((s, v, i) => s + v * w[i]!, 0);
    const { dgate, dup } = ops.swigluBackward(cpu(w, [n]), cpu(g, [n]), cpu(u, [n]));
    const dg = await read(dgate), du = await read(dup);
    const h = 1e-2;
    for (let i = 0; i < n; i++) {
      const gp = [...g], gm = [...g], up = [...u], um = [...u];
      gp[i]! += h; gm[i]! -= h; up[i]! += h; um[i]! -= h;
      expect(Math.abs((loss(gp, u) - loss(gm, u)) / (2 * h) - dg[i]!)).toBeLessThan(2e-3);
      expect(Math.abs((loss(g, up) - loss(g, um)) / (2 * h) - du[i]!)).toBeLessThan(2e-3);
    }
  });
});

function ropeRef(x: ArrayLike<number>, T: number, H: number, D: number, R: number, theta: number, interleaved: boolean, pos: (t: number) => number, sign = 1) {
  const out = Float64Array.from(x);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < R / 2; i++) {
      const ang = pos(t) * theta ** ((-2 * i) / R);
      const c = Math.cos(ang), s = sign * Math.sin(ang);
      for (let h = 0; h < H; h++) {
        const base = (t * H + h) * D;
        const ia = base + (interleaved ? 2 * i : i), ib = base + (interleaved ? 2 * i + 1 : i + R / 2);
        out[ia] = x[ia]! * c - x[ib]! * s;
        out[ib] = x[ia]! * s + x[ib]! * c;
      }
    }
  return out;
}

describe('ops.rope', () => {
  it('both conventions, offsets, explicit positions, partial rotary dims, against float64 and PyTorch', async () => {
    const cases: [number, number, number, number, number, number][] = [[1, 1, 2, 2, 10000, 0], [7, 3, 64, 64, 10000, 5], [65, 2, 59 + 1, 32, 1e6, 0], [129, 1, 128, 128, 500000, 131_000], [3, 6, 8, 8, 10000, 1]];
    for (const [T, H, D, R, theta, offset] of cases) {
      const x = randomArray(T * H * D, T * H + D);
      for (const convention of ['interleaved', 'half'] as const) {
        const ref = ropeRef(x, T, H, D, R, theta, convention === 'interleaved', (t) => t + offset);
        const out = nanLike([T, H, D]);
        ops.rope(cpu(x, [T, H, D]), { convention, theta, offset, rotaryDim: R, out });
        // |x| <= 1: the rotation's f32 error is a few ulps; angles are exact to f64 even at position 131K
        expect(maxAbsError(await read(out), ref)).toBeLessThan(1e-6);
        const back = ops.ropeBackward(out, { convention, theta, offset, rotaryDim: R });
        expect(maxAbsError(await read(back), x)).toBeLessThan(2e-6);
      }
    }
    const positions = Tensor.from([9, 3, 3, 0], [4], { dtype: 'i32', device: 'cpu' });
    const xp = randomArray(4 * 2 * 6, 77);
    const refp = ropeRef(xp, 4, 2, 6, 6, 10000, false, (t) => [9, 3, 3, 0][t]!);
    expect(maxAbsError(await read(ops.rope(cpu(xp, [4, 2, 6]), { positions })), refp)).toBeLessThan(1e-6);
    for (const g of golden.rope!) {
      const { tokens, heads, dim, rotaryDim, theta, convention, offset } = g as { tokens: number; heads: number; dim: number; rotaryDim: number; theta: number; convention: 'half' | 'interleaved'; offset: number };
      const out = ops.rope(cpu(g.x as number[], [tokens, heads, dim]), { convention, theta, offset, rotaryDim });
      expect(maxAbsError(await read(out), g.out as number[])).toBeLessThan(2e-5);
    }
  });

  it('the angle table kept between calls is remade whenever positions (even rewritten in place), offset, theta or dims change; pool-sized calls', async () => {
    const T = 2048, H = 4, D = 16; // 131K elements: split over the pool's threads
    const x = randomArray(T * H * D, 5);
    const pos = Int32Array.from({ length: T }, (_, t) => (t * 7) % 5000);
    const positions = Tensor.from(pos, [T], { dtype: 'i32', device: 'cpu' });
    const check = async (label: string, opts: { theta: number; rotaryDim: number; offset?: number; positions?: Tensor }, at: (t: number) => number) => {
      const ref = ropeRef(x, T, H, D, opts.rotaryDim, opts.theta, false, at);
      for (let rep = 0; rep < 2; rep++) {
        const got = await read(ops.rope(cpu(x, [T, H, D]), { convention: 'half', ...opts }));
        expect(maxAbsError(got, ref), `${label}, call ${rep + 1}`).toBeLessThan(1e-6);
      }
    };
    await check('positions', { theta: 10000, rotaryDim: 16, positions }, (t) => pos[t]!);
    pos[100] = 4321;
    const positions2 = Tensor.from(pos, [T], { dtype: 'i32', device: 'cpu' });
    await check('new positions', { theta: 10000, rotaryDim: 16, positions: positions2 }, (t) => pos[t]!);
    await check('offset', { theta: 10000, rotaryDim: 16, offset: 7 }, (t) => t + 7);
    await check('another offset', { theta: 10000, rotaryDim: 16, offset: 8 }, (t) => t + 8);
    await check('theta', { theta: 1e6, rotaryDim: 16, offset: 8 }, (t) => t + 8);
    await check('rotary dims', { theta: 1e6, rotaryDim: 8, offset: 8 }, (t) => t + 8);
    // the same positions tensor rewritten in place between two calls
    const inPlace = Tensor.from(Int32Array.from({ length: T }, (_, t) => t), [T], { dtype: 'i32', device: 'cpu' });
    await check('in place, before', { theta: 10000, rotaryDim: 16, positions: inPlace }, (t) => t);
    const shifted = Tensor.from(Int32Array.from({ length: T }, (_, t) => t + 3), [T], { dtype: 'i32', device: 'cpu' });
    native().memcpy(inPlace.handle, shifted.handle);
    await check('in place, after', { theta: 10000, rotaryDim: 16, positions: inPlace }, (t) => t + 3);
    for (const t of [positions, positions2, inPlace, shifted]) t.dispose();
  });

  it('backward is the transpose of the forward (<rope(x), g> = <x, ropeBackward(g)>), in place works', async () => {
    const T = 5, H = 2, D = 8, x = randomArray(T * H * D, 1), g = randomArray(T * H * D, 2);
    const fx = await read(ops.rope(cpu(x, [T, H, D]), { offset: 3 }));
    const bg = await read(ops.ropeBackward(cpu(g, [T, H, D]), { offset: 3 }));
    const lhs = fx.reduce((s, v, i) => s + v * g[i]!, 0), rhs = bg.reduce((s, v, i) => s + v * x[i]!, 0);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-5);
    const t = cpu(x, [T, H, D]);
    ops.rope(t, { offset: 3, out: t });
    expect(firstBitDifference(await read(t), fx)).toBe(-1);
  });

  it('refuses bad input', () => {
    expect(() => ops.rope(cpu([1, 2], [2]))).toThrow(/ops.rope: argument 'x' must have shape/);
    expect(() => ops.rope(cpu(new Float32Array(8), [1, 1, 8]), { rotaryDim: 3 })).toThrow(/rotaryDim/);
    expect(() => ops.rope(cpu(new Float32Array(8), [1, 1, 8]), { offset: -1 })).toThrow(/offset/);
    expect(() => ops.rope(cpu(new Float32Array(8), [1, 1, 8]), { theta: 0 })).toThrow(/theta/);
    expect(() => ops.rope(cpu(new Float32Array(8), [1, 1, 8]), { convention: 'x' as never })).toThrow(/convention/);
  });
});

describe('ops.embedding', () => {
  it('looks up rows and scatters gradients deterministically (token order), bf16 tables, goldens', async () => {
    for (const [V, C, T] of [[1, 1, 1], [7, 63, 65], [1000, 7, 129], [65, 129, 1000]] as const) {
      const table = randomArray(V * C, V + C), r = rng(T);
      const ids = Int32Array.from({ length: T }, () => Math.floor(r() * V));
      const idsT = Tensor.from(ids, [T], { device: 'cpu' });
      const out = ops.embedding(idsT, cpu(table, [V, C]), { out: nanLike([T, C]) });
      const expected = new Float32Array(T * C);
      ids.forEach((id, t) => expected.set(table.subarray(id * C, id * C + C), t * C));
      expect(firstBitDifference(await read(out), expected)).toBe(-1);
      const dout = randomArray(T * C, T);
      const naive = new Float32Array(V * C);
      ids.forEach((id, t) => {
        for (let c = 0; c < C; c++) naive[id * C + c] = f32(naive[id * C + c]! + dout[t * C + c]!);
      });
      forEachIsa(() => {
        const dtable = ops.embeddingBackward(cpu(dout, [T, C]), idsT, V, { out: nanLike([V, C]) });
        expect(firstBitDifference(dtable.readInto(new Float32Array(V * C)), naive)).toBe(-1);
      });
    }
    const g = golden.embedding![0]!;
    const { vocab, dim } = g as { vocab: number; dim: number };
    const ids = Tensor.from(g.ids as number[], [(g.ids as number[]).length], { dtype: 'i32', device: 'cpu' });
    expect(maxAbsError(await read(ops.embedding(ids, cpu(g.table as number[], [vocab, dim]))), g.out as number[])).toBeLessThan(1e-6);
    const dt = ops.embeddingBackward(cpu(g.dout as number[], [(g.ids as number[]).length, dim]), ids, vocab);
    expect(maxAbsError(await read(dt), g.dtable as number[])).toBeLessThan(1e-5);
    ops.embeddingBackward(cpu(g.dout as number[], [(g.ids as number[]).length, dim]), ids, vocab, { out: dt, accumulate: true });
    expect(maxAbsError(await read(dt), (g.dtable as number[]).map((v) => 2 * v))).toBeLessThan(2e-5);
    const tb = ops.embedding(ids, cpu(g.table as number[], [vocab, dim], 'bf16'));
    expect(tb.dtype).toBe('bf16');
  });

  it('refuses out-of-range ids without writing anything', async () => {
    const out = cpu([5, 5, 5, 5], [2, 2]);
    const ids = Tensor.from([1, 2], [2], { dtype: 'i32', device: 'cpu' });
    expect(() => ops.embedding(ids, cpu([1, 2, 3, 4], [2, 2]), { out })).toThrow(/ops.embedding: ids\[1\] = 2 is outside \[0, 2\)/);
    expect(Array.from(await read(out))).toEqual([5, 5, 5, 5]);
    expect(() => ops.embedding(Tensor.from([-1], [1], { dtype: 'i32', device: 'cpu' }), cpu([1, 2], [1, 2]))).toThrow(RangeError);
    expect(() => ops.embedding(cpu([0], [1]), cpu([1, 2], [1, 2]))).toThrow(/argument 'ids' is f32, expected i32/);
    expect(() => ops.embeddingBackward(cpu([1, 2], [1, 2]), ids, 0)).toThrow(/vocab/);
  });
});

describe('ops.adamw', () => {
  it('matches torch.optim.AdamW over 10 steps (goldens) and the float64 formula', async () => {
    for (const g of golden.adamw!) {
      const { n, steps, lr, beta1, beta2, eps, weightDecay } = g as { n: number; steps: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
      const p = cpu(g.params as number[], [n]), m = Tensor.zeros([n], { device: 'cpu' }), v = Tensor.zeros([n], { device: 'cpu' });
      const copy = Tensor.zeros([n], { dtype: 'bf16', device: 'cpu' });
      // float64 mirror of the update
      const P = Float64Array.from(g.params as number[]), M = new Float64Array(n), V = new Float64Array(n);
      for (let s = 1; s <= steps; s++) {
        const grad = (g.grads as number[][])[s - 1]!;
        ops.adamw(p, cpu(grad, [n]), m, v, { lr, step: s, beta1, beta2, eps, weightDecay, paramsCopy: copy });
        for (let i = 0; i < n; i++) {
          P[i] *= 1 - lr * weightDecay;
          M[i] = beta1 * M[i]! + (1 - beta1) * grad[i]!;
          V[i] = beta2 * V[i]! + (1 - beta2) * grad[i]! ** 2;
          P[i] -= (lr / (1 - beta1 ** s)) * (M[i]! / (Math.sqrt(V[i]!) / Math.sqrt(1 - beta2 ** s) + eps));
        }
      }
      const final = await read(p);
      expect(maxAbsError(final, g.final as number[])).toBeLessThan(2e-6);
      expect(maxAbsError(final, P)).toBeLessThan(2e-6);
      expect(maxAbsError(await read(m), g.m as number[])).toBeLessThan(1e-6);
      expect(maxAbsError(await read(v), g.v as number[])).toBeLessThan(1e-6);
      expect(Array.from(await copy.toArray())).toEqual(Array.from(final, (x) => f32ToBf16(x)));
    }
  });

  it('is the same under every ISA, takes bf16 grads and a grad scale, refuses bad input', async () => {
    const n = 100_001, g = randomArray(n, 1), p0 = randomArray(n, 2);
    const results: Float32Array[] = [];
    forEachIsa(() => {
      const p = cpu(p0, [n]), m = Tensor.zeros([n], { device: 'cpu' }), v = Tensor.zeros([n], { device: 'cpu' });
      for (let s = 1; s <= 3; s++) ops.adamw(p, cpu(g, [n], 'bf16'), m, v, { lr: 0.01, step: s, gradScale: 0.5 });
      results.push(p.readInto(new Float32Array(n)));
    });
    for (const r of results.slice(1)) expect(firstBitDifference(r, results[0]!)).toBe(-1);
    const p = cpu([1, 2], [2]), m = Tensor.zeros([2], { device: 'cpu' }), v = Tensor.zeros([2], { device: 'cpu' });
    expect(() => ops.adamw(p, cpu([1], [1]), m, v, { lr: 0.1, step: 1 })).toThrow(/ops.adamw: argument 'grads' has 1 elements, expected 2/);
    expect(() => ops.adamw(p, p, m, m, { lr: 0.1, step: 1 })).toThrow(/different tensors/);
    expect(() => ops.adamw(p, p, m, v, { lr: 0.1, step: 0 })).toThrow(/step/);
    expect(() => ops.adamw(p, p, m, v, { lr: NaN, step: 1 })).toThrow(/lr/);
    expect(() => ops.adamw(cpu([1, 2], [2], 'bf16'), p, m, v, { lr: 0.1, step: 1 })).toThrow(/argument 'params' has dtype bf16/);
  });
});

describe('ops.gradNorm / ops.clipGrad', () => {
  it('global norm over many tensors (float64 reference, goldens), clipping in place', async () => {
    const sizes = [1, 7, 65_537, 200_000];
    const arrays = sizes.map((n, k) => randomArray(n, k + 50));
    const ref = Math.sqrt(arrays.reduce((s, a) => s + a.reduce((t, v) => t + v * v, 0), 0));
    const tensors = arrays.map((a, k) => cpu(a, [sizes[k]!]));
    const norm = await ops.gradNorm(tensors).item();
    expect(Math.abs(norm - ref) / ref).toBeLessThan(1e-6);
    const before = await ops.clipGrad(tensors, 1).item();
    expect(before).toBe(norm);
    expect(Math.abs((await ops.gradNorm(tensors).item()) - 1)).toBeLessThan(1e-5);
    for (const g of golden.clip!) {
      const ts = (g.tensors as number[][]).map((a) => cpu(a, [a.length]));
      const nrm = await ops.clipGrad(ts, g.maxNorm as number).item();
      expect(Math.abs(nrm - (g.norm as number))).toBeLessThan(1e-5);
      for (let k = 0; k < ts.length; k++) expect(maxAbsError(await read(ts[k]!), (g.after as number[][])[k]!)).toBeLessThan(1e-6);
    }
    const mixed = [cpu(randomArray(9, 1), [9], 'bf16'), cpu(randomArray(3, 2), [3])];
    expect(await ops.gradNorm(mixed).item()).toBeGreaterThan(0);
  });

  it('refuses bad input', () => {
    const a = cpu([1, 2], [2]);
    expect(() => ops.gradNorm([])).toThrow(/empty/);
    expect(() => ops.gradNorm([a, {} as Tensor])).toThrow(/ops.gradNorm: argument 'tensors\[1\]' must be a Tensor/);
    expect(() => ops.clipGrad([a, a], 1)).toThrow(/appears twice/);
    const view = a.reshape([a.size]); // the same memory through another tensor would be scaled twice too
    expect(() => ops.clipGrad([a, view], 1)).toThrow(/'tensors\[1\]' appears twice/);
    view.dispose();
    expect(() => ops.clipGrad([a], 0)).toThrow(/maxNorm/);
    expect(() => ops.gradNorm([Tensor.from([1], [1], { dtype: 'i32' })])).toThrow(/dtype i32/);
  });
});

describe('ops.cast', () => {
  it('rounds to nearest even when narrowing (an independent reference), widens exactly, copies equal dtypes', async () => {
    // Values across magnitudes, ties (a bf16 tie: 1 + 2^-8), f16 overflow and subnormals, signed zero, infinities.
    const x = Float32Array.from([...randomArray(1000, 11).map((v, i) => v * 2 ** ((i % 40) - 20)), 1 + 2 ** -8, 1 + 3 * 2 ** -8, 70000, -70000, 3e-6, -0, Infinity, -Infinity, 1e-40]);
    const xt = cpu(x, [x.length]);
    for (const dtype of ['bf16', 'f16'] as const) {
      const y = ops.cast(xt, dtype);
      expect(y.dtype).toBe(dtype);
      expect(y.shape).toEqual([x.length]);
      const got = await y.toFloat32Array();
      for (let i = 0; i < x.length; i++) expect(Object.is(got[i], Math.fround(roundToHalfReference(x[i]!, dtype))), `${dtype} of ${x[i]}: ${got[i]}`).toBe(true);
      const back = await ops.cast(y, 'f32').toFloat32Array();
      expect(Array.from(back)).toEqual(Array.from(got));
      const same = ops.cast(y, dtype);
      expect(Array.from(await same.toFloat32Array())).toEqual(Array.from(got));
      same.dispose();
      y.dispose();
    }
    const out = Tensor.empty([x.length], { dtype: 'bf16', device: 'cpu' });
    expect(ops.cast(xt, 'bf16', { out })).toBe(out);
    expect(() => ops.cast(xt, 'f16', { out })).toThrow(/ops.cast: argument 'out' is bf16, expected f16/);
    expect(() => ops.cast(xt, 'bf16', { out: Tensor.empty([3], { dtype: 'bf16', device: 'cpu' }) })).toThrow(/argument 'out' has shape \[3\]/);
    expect(() => ops.cast(xt, 'i32' as 'f32')).toThrow(/argument 'dtype' must be 'f32', 'f16' or 'bf16'/);
    expect(() => ops.cast(Tensor.from([1, 2], [2], { dtype: 'i32', device: 'cpu' }), 'f32')).toThrow(/ops.cast/);
    out.dispose();
    xt.dispose();
  });
});

describe.runIf(gpuRun())('dense layers on CUDA against the CPU twins', () => {
  const both = (data: Float32Array, shape: number[], dtype: 'f32' | 'bf16' | 'f16' = 'f32') => {
    const c = cpu(data, shape, dtype);
    return [c, c.to('cuda')] as const;
  };
  it('cast: every pair of float dtypes gives the CPU twin\'s bits', async () => {
    const x = randomArray(100_003, 21).map((v, i) => v * 2 ** ((i % 30) - 15));
    for (const from of ['f32', 'bf16', 'f16'] as const) {
      const [xc, xg] = both(x, [x.length], from);
      for (const to of ['f32', 'bf16', 'f16'] as const) {
        const a = await read(ops.cast(xc, to)), b = await read(ops.cast(xg, to));
        expect(firstBitDifference(b, a), `${from} -> ${to}`).toBe(-1);
      }
      xc.dispose();
      xg.dispose();
    }
  });

  it('rmsNorm, swiglu, rope, embedding, adamw, gradNorm', async () => {
    for (const dtype of ['f32', 'bf16'] as const) {
      const tol = dtype === 'f32' ? 2e-5 : 2e-2;
      const [xc, xg] = both(randomArray(129 * 1000, 1), [129, 1000], dtype), [wc, wg] = both(randomArray(1000, 2), [1000], dtype);
      const [dyc, dyg] = both(randomArray(129 * 1000, 3), [129, 1000], dtype);
      const fc = ops.rmsNorm(xc, wc), fg = ops.rmsNorm(xg, wg);
      expect(maxAbsError(await read(fg.y), await read(fc.y))).toBeLessThan(tol);
      const bc = ops.rmsNormBackward(dyc, xc, wc, fc.rrms), bg = ops.rmsNormBackward(dyg, xg, wg, fg.rrms);
      expect(maxAbsError(await read(bg.dx), await read(bc.dx))).toBeLessThan(tol);
      expect(maxAbsError(await read(bg.dw!), await read(bc.dw!))).toBeLessThan(tol * 10);
      expect(maxAbsError(await read(ops.swiglu(xg, dyg)), await read(ops.swiglu(xc, dyc)))).toBeLessThan(tol);
      const sb = ops.swigluBackward(xg, dyg, xg), sc = ops.swigluBackward(xc, dyc, xc);
      expect(maxAbsError(await read(sb.dgate), await read(sc.dgate))).toBeLessThan(tol);
      const [rc, rg] = both(randomArray(65 * 6 * 128, 4), [65, 6, 128], dtype);
      for (const convention of ['half', 'interleaved'] as const) {
        expect(maxAbsError(await read(ops.rope(rg, { convention, offset: 100_000 })), await read(ops.rope(rc, { convention, offset: 100_000 })))).toBeLessThan(tol);
      }
      const ids = Tensor.from(Int32Array.from({ length: 1000 }, (_, i) => (i * 7919) % 129), [1000], { device: 'cpu' });
      expect(firstBitDifference(await ops.embedding(ids.to('cuda'), xg).toArray(), await ops.embedding(ids, xc).toArray())).toBe(-1);
      const [dc, dg] = both(randomArray(1000 * 1000, 5), [1000, 1000], dtype);
      expect(firstBitDifference(await ops.embeddingBackward(dg, ids.to('cuda'), 129).toArray(), await ops.embeddingBackward(dc, ids, 129).toArray())).toBe(-1);
      expect(() => ops.embedding(Tensor.from([500], [1], { dtype: 'i32', device: 'cuda' }), xg)).toThrow(/outside/);
      const nc = await ops.gradNorm([xc, dyc]).item(), ng = await ops.gradNorm([xg, dyg]).item();
      expect(Math.abs(nc - ng) / nc).toBeLessThan(1e-6);
    }
    const n = 300_001, [pc, pg] = both(randomArray(n, 7), [n]), [gc, gg] = both(randomArray(n, 8), [n]);
    const mc = Tensor.zeros([n], { device: 'cpu' }), vc = Tensor.zeros([n], { device: 'cpu' }), mg = mc.to('cuda'), vg = vc.to('cuda');
    for (let s = 1; s <= 3; s++) {
      ops.adamw(pc, gc, mc, vc, { lr: 1e-3, step: s });
      ops.adamw(pg, gg, mg, vg, { lr: 1e-3, step: s });
    }
    expect(firstBitDifference(await pg.toArray(), await pc.toArray())).toBe(-1);
  });
});
