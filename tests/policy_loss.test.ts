// ops.policyLoss: a float64 reference with materialized logits written here, PyTorch goldens implementing verl's
// and TRL's published formulas, odd shapes, peaked rows, every aggregation / clip / mask / AEPO mode, micro-batch
// splits equal to the whole, finite differences, bad input, and the memory bound (long).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { Tensor, ops, setIsa } from '../src/index.js';
import { defaultWorkspace, type PolicyLossInput } from '../src/ops/policy_loss.js';
import { cpuIsas, forEachIsa, gpuRun, maxAbsError, rng } from './helpers.js';

type Agg = NonNullable<PolicyLossInput['aggregation']>;

interface Problem {
  T: number; H: number; V: number;
  hidden: Float64Array; weight: Float64Array; targets: Int32Array; adv: Float64Array; old: Float64Array | null;
  cu: number[]; groups: number[]; mask: number[] | null;
}

function makeProblem(T: number, H: number, V: number, seed: number, opts: { scale?: number; old?: boolean; mask?: boolean } = {}): Problem {
  const r = rng(seed);
  const hidden = Float64Array.from({ length: T * H }, () => Math.fround((r() * 2 - 1) * (opts.scale ?? 1)));
  const weight = Float64Array.from({ length: V * H }, () => Math.fround(r() * 2 - 1));
  const targets = Int32Array.from({ length: T }, () => Math.floor(r() * V));
  // sequences of 1..4 tokens (with an empty one when T allows), two per group
  const cu = [0];
  while (cu[cu.length - 1]! < T) cu.push(Math.min(T, cu[cu.length - 1]! + (cu.length === 2 ? 0 : 1 + Math.floor(r() * 4))));
  const B = cu.length - 1;
  const seqAdv = Array.from({ length: B }, () => r() * 2 - 1);
  const adv = new Float64Array(T);
  for (let b = 0; b < B; b++) adv.fill(Math.fround(seqAdv[b]!), cu[b]!, cu[b + 1]!);
  const old = opts.old ? Float64Array.from({ length: T }, () => Math.fround(-3 + r())) : null;
  const mask = opts.mask ? Array.from({ length: T }, () => (r() < 0.8 ? 1 : 0)) : null;
  return { T, H, V, hidden, weight, targets, adv, old, cu, groups: Array.from({ length: B }, (_, b) => b >> 1), mask };
}

interface RefOptions { agg: Agg; temperature: number; clipLow: number; clipHigh: number; dual: number; drop: false | 'zero' | 'remove'; lossScale?: number }

// float64, logits materialized, aggregation written from the definitions (not from the op's helper)
function reference(p: Problem, o: RefOptions) {
  const { T, H, V } = p;
  const logp = new Float64Array(T), ent = new Float64Array(T), dlogp = new Float64Array(T), lt = new Float64Array(T);
  const probs: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    const x = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < H; k++) s += p.hidden[t * H + k]! * p.weight[v * H + k]!;
      x[v] = s / o.temperature;
    }
    let m = -Infinity;
    for (const xv of x) m = Math.max(m, xv);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(x[v]! - m);
    const lse = m + Math.log(z);
    const pr = Float64Array.from(x, (xv) => Math.exp(xv - lse));
    probs.push(pr);
    logp[t] = x[p.targets[t]!]! - lse;
    ent[t] = pr.reduce((s, pv, v) => s + pv * (lse - x[v]!), 0);
    const A = p.adv[t]!;
    if (!p.old) {
      lt[t] = -A;
      dlogp[t] = -A;
    } else {
      const ratio = Math.exp(Math.min(20, Math.max(-20, logp[t]! - p.old[t]!)));
      const l1 = -A * ratio, l2 = -A * Math.min(1 + o.clipHigh, Math.max(1 - o.clipLow, ratio));
      let l = Math.max(l1, l2), d = l1 >= l2 ? -A * ratio : 0;
      if (o.dual > 0 && A < 0 && -A * o.dual < l) {
        l = -A * o.dual;
        d = 0;
      }
      lt[t] = l;
      dlogp[t] = d;
    }
  }
  // aggregation weights
  const B = p.cu.length - 1;
  const m = (t: number) => (p.mask ? p.mask[t]! : 1);
  const seqOf = new Int32Array(T);
  for (let b = 0; b < B; b++) for (let t = p.cu[b]!; t < p.cu[b + 1]!; t++) seqOf[t] = b;
  const neg = (b: number) => p.cu[b + 1]! > p.cu[b]! && p.adv[p.cu[b]!]! < 0;
  const inNorm = (t: number) => m(t) * (o.drop === 'remove' && neg(seqOf[t]!) ? 0 : 1);
  const active = (t: number) => m(t) * (o.drop && neg(seqOf[t]!) ? 0 : 1);
  const seqTok = Array.from({ length: B }, (_, b) => { let s = 0; for (let t = p.cu[b]!; t < p.cu[b + 1]!; t++) s += inNorm(t); return s; });
  const coef = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const b = seqOf[t]!;
    let div: number;
    if (o.agg === 'token-mean') div = Array.from({ length: T }, (_, u) => inNorm(u)).reduce((a, x) => a + x, 0);
    else if (o.agg === 'seq-mean-token-mean') div = seqTok.filter((x) => x > 0).length * seqTok[b]!;
    else if (o.agg === 'seq-mean-token-sum-norm') div = o.lossScale!;
    else {
      const g = p.groups[b]!;
      const groupTok = new Map<number, number>();
      p.groups.forEach((gg, bb) => groupTok.set(gg, (groupTok.get(gg) ?? 0) + seqTok[bb]!));
      div = [...groupTok.values()].filter((x) => x > 0).length * groupTok.get(g)!;
    }
    coef[t] = div > 0 ? active(t) / div : 0;
  }
  let loss = 0;
  for (let t = 0; t < T; t++) loss += coef[t]! * lt[t]!;
  const dHidden = new Float64Array(T * H), dWeight = new Float64Array(V * H);
  for (let t = 0; t < T; t++) {
    const g = (coef[t]! * dlogp[t]!) / o.temperature;
    for (let v = 0; v < V; v++) {
      const dx = g * ((v === p.targets[t] ? 1 : 0) - probs[t]![v]!);
      if (dx === 0) continue;
      for (let k = 0; k < H; k++) {
        dHidden[t * H + k] += dx * p.weight[v * H + k]!;
        dWeight[v * H + k] += dx * p.hidden[t * H + k]!;
      }
    }
  }
  let nll = 0, n = 0;
  for (let t = 0; t < T; t++) if (m(t)) { nll -= logp[t]!; n++; }
  return { loss, logp, ent, dHidden, dWeight, nll: n ? nll / n : 0 };
}

function run(p: Problem, o: RefOptions, extra: Partial<PolicyLossInput> = {}, dtype: 'f32' | 'bf16' | 'f16' = 'f32', device: 'cpu' | 'cuda' = 'cpu') {
  return ops.policyLoss({
    hidden: Tensor.from(p.hidden, [p.T, p.H], { dtype, device }),
    weight: Tensor.from(p.weight, [p.V, p.H], { dtype, device }),
    targets: p.targets,
    advantages: Float32Array.from(p.adv),
    cuSeqlens: p.cu,
    groupIds: p.groups,
    ...(p.mask ? { tokenMask: p.mask } : {}),
    ...(p.old ? { oldLogp: Float32Array.from(p.old) } : {}),
    temperature: o.temperature,
    clipLow: o.clipLow,
    clipHigh: o.clipHigh,
    ...(o.dual ? { dualClip: o.dual } : {}),
    aggregation: o.agg,
    ...(o.lossScale ? { lossScale: o.lossScale } : {}),
    dropNegative: o.drop,
    ...extra,
  });
}

const base: RefOptions = { agg: 'token-mean', temperature: 1, clipLow: 0.2, clipHigh: 0.28, dual: 0, drop: false };

async function compare(p: Problem, o: RefOptions, tol: number, extra: Partial<PolicyLossInput> = {}) {
  const ref = reference(p, o);
  const out = run(p, o, extra);
  const scale = (a: ArrayLike<number>) => Array.from(a).reduce((mx, v) => Math.max(mx, Math.abs(v)), 1e-3);
  expect(Math.abs((await out.loss.item()) - ref.loss)).toBeLessThan(tol * Math.max(1, Math.abs(ref.loss)));
  expect(Math.abs((await out.nll.item()) - ref.nll)).toBeLessThan(tol * Math.max(1, ref.nll));
  expect(maxAbsError(await out.logp.toArray(), ref.logp)).toBeLessThan(tol * scale(ref.logp));
  expect(maxAbsError(await out.entropy.toArray(), ref.ent)).toBeLessThan(tol * Math.max(1, scale(ref.ent)));
  expect(maxAbsError(await out.dHidden!.toArray(), ref.dHidden)).toBeLessThan(tol * scale(ref.dHidden));
  expect(maxAbsError(await out.dWeight!.toArray(), ref.dWeight)).toBeLessThan(tol * scale(ref.dWeight));
  return out;
}

describe('ops.policyLoss', () => {
  it('matches the float64 reference on odd shapes (T 1/7/113, V 1/37/1000/32003, H 8/64), every ISA', async () => {
    const shapes: [number, number, number][] = [[1, 8, 1], [7, 8, 37], [113, 64, 1000], [7, 64, 32003]];
    for (const [T, H, V] of shapes) {
      const p = makeProblem(T, H, V, T * V + H);
      // small workspace: several chunks, so the chunked dWeight accumulation is exercised
      for (const isa of cpuIsas()) {
        setIsa(isa);
        await compare(p, base, 2e-4, { workspaceBytes: 4 * V * 5 });
      }
      setIsa(cpuIsas().at(-1)!);
    }
  });

  it('peaked rows: the entropy keeps its relative precision down to 1e-7 nats, every ISA', async () => {
    // H = 1, so each logit a_t * w_v is one f32 product (exact in float64 of the rounded operands): row t has one
    // word far above the rest, at gaps that take the entropy from ~7 down to ~7e-8 nats (where S = 1 + 2e-9).
    const V = 1003, gaps = [0.5, 8, 16, 20, 24];  // 1003: the vector builds' masked tail too
    const weight = Float64Array.from({ length: V }, (_, v) => Math.fround(v === 0 ? 1 : -(v % 17) / 16));
    const hidden = Float64Array.from(gaps, (g) => Math.fround(g));
    const expected = gaps.map((_, t) => {
      const x = Array.from(weight, (w) => Math.fround(hidden[t]! * w));
      const m = Math.max(...x), s = x.reduce((acc, xi) => acc + Math.exp(xi - m), 0), lse = m + Math.log(s);
      return x.reduce((acc, xi) => acc + Math.exp(xi - lse) * (lse - xi), 0);
    });
    expect(expected.at(-1)!).toBeLessThan(1e-7);
    // The target is the peak: logp = -(log S) is as small as the entropy, and as exact.
    const logpRef = gaps.map((_, t) => {
      const x = Array.from(weight, (w) => Math.fround(hidden[t]! * w));
      const m = Math.max(...x);
      return -Math.log1p(x.reduce((acc, xi, v) => acc + (v === 0 ? 0 : Math.exp(xi - m)), 0));
    });
    try {
      for (const isa of cpuIsas()) {
        setIsa(isa);
        const out = ops.policyLoss({
          hidden: Tensor.from(hidden, [gaps.length, 1], { device: 'cpu' }),
          weight: Tensor.from(weight, [V, 1], { device: 'cpu' }),
          targets: new Int32Array(gaps.length),
          advantages: new Float32Array(gaps.length).fill(1),
          cuSeqlens: [0, gaps.length],
        });
        const ent = await out.entropy.toArray(), logp = await out.logp.toArray();
        for (let t = 0; t < gaps.length; t++) {
          expect(Math.abs(ent[t]! - expected[t]!) / expected[t]!, `${isa}, entropy of row ${t}`).toBeLessThan(1e-4);
          expect(Math.abs(logp[t]! - logpRef[t]!) / Math.abs(logpRef[t]!), `${isa}, logp of row ${t}`).toBeLessThan(1e-4);
        }
      }
    } finally {
      setIsa(cpuIsas().at(-1)!);
    }
  });

  it('every aggregation, temperature, clip and dual clip with oldLogp, masks, dropNegative zero/remove, peaked rows', async () => {
    const p = makeProblem(41, 16, 257, 9, { old: true, mask: true, scale: 30 / 4 });
    for (const agg of ['token-mean', 'group-token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'] as Agg[]) {
      for (const drop of [false, 'zero', 'remove'] as const) {
        await compare(p, { ...base, agg, drop, temperature: 0.7, dual: 3, lossScale: 64 }, 5e-4);
      }
    }
    const onPolicy = makeProblem(23, 8, 97, 10, { mask: true, scale: 30 / 3 });
    await compare(onPolicy, { ...base, agg: 'group-token-mean', drop: 'zero' }, 5e-4);
  });

  it('micro-batches with the whole batch’s normalizers sum to the whole batch’s gradient', async () => {
    const p = makeProblem(30, 8, 64, 11, { mask: true });
    const whole = run(p, { ...base, agg: 'group-token-mean' });
    const dW = await whole.dWeight!.toArray();
    // split at a sequence boundary
    const cut = p.cu[Math.floor(p.cu.length / 2)]!;
    const bcut = p.cu.indexOf(cut);
    const groupTokens: Record<string, number> = {};
    const counted = (t: number) => p.mask![t]!;
    for (let b = 0; b + 1 < p.cu.length; b++) for (let t = p.cu[b]!; t < p.cu[b + 1]!; t++) groupTokens[String(p.groups[b])] = (groupTokens[String(p.groups[b])] ?? 0) + counted(t);
    const groups = Object.values(groupTokens).filter((x) => x > 0).length;
    let sum = new Float64Array(dW.length);
    let lossSum = 0;
    for (const [t0, t1, b0, b1] of [[0, cut, 0, bcut], [cut, p.T, bcut, p.cu.length - 1]] as const) {
      const part: Problem = {
        ...p, T: t1 - t0,
        hidden: p.hidden.slice(t0 * p.H, t1 * p.H), targets: p.targets.slice(t0, t1), adv: p.adv.slice(t0, t1),
        cu: p.cu.slice(b0, b1 + 1).map((x) => x - t0), groups: p.groups.slice(b0, b1), mask: p.mask!.slice(t0, t1),
      };
      const out = run(part, { ...base, agg: 'group-token-mean' }, { normalizers: { groups, groupTokens } });
      const d = await out.dWeight!.toArray();
      sum = sum.map((s, i) => s + d[i]!);
      lossSum += await out.loss.item();
    }
    expect(maxAbsError(sum, dW)).toBeLessThan(1e-6);
    expect(Math.abs(lossSum - (await whole.loss.item()))).toBeLessThan(1e-6);
  });

  it('matches verl and TRL formulas computed by PyTorch (goldens)', async () => {
    const golden = JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', 'policy_loss.json'), 'utf8')) as { cases: Record<string, unknown>[] };
    for (const c of golden.cases) {
      const T = c.T as number, H = c.H as number, V = c.V as number;
      const out = ops.policyLoss({
        hidden: Tensor.from(c.hidden as number[], [T, H], { device: 'cpu' }),
        weight: Tensor.from(c.weight as number[], [V, H], { device: 'cpu' }),
        targets: c.targets as number[], advantages: c.advantages as number[], cuSeqlens: c.cuSeqlens as number[],
        temperature: c.temperature as number, clipLow: c.clipLow as number, clipHigh: c.clipHigh as number,
        ...(c.dualClip ? { dualClip: c.dualClip as number } : {}),
        ...(c.oldLogp ? { oldLogp: c.oldLogp as number[] } : {}),
        ...(c.tokenMask ? { tokenMask: c.tokenMask as number[] } : {}),
        aggregation: c.aggregation as Agg,
      });
      const name = c.name as string;
      expect(Math.abs((await out.loss.item()) - (c.loss as number)), name).toBeLessThan(1e-4);
      expect(maxAbsError(await out.logp.toArray(), c.logp as number[]), name).toBeLessThan(1e-4);
      expect(maxAbsError(await out.entropy.toArray(), c.entropy as number[]), name).toBeLessThan(1e-4);
      expect(maxAbsError(await out.dHidden!.toArray(), c.dHidden as number[]), name).toBeLessThan(1e-4);
      expect(maxAbsError(await out.dWeight!.toArray(), c.dWeight as number[]), name).toBeLessThan(1e-4);
    }
  });

  it('backward matches finite differences of the loss', async () => {
    const p = makeProblem(3, 4, 9, 12, { old: true });
    const o = { ...base, temperature: 0.8 };
    const out = run(p, o);
    const dH = await out.dHidden!.toArray();
    const h = 1e-3;
    for (let i = 0; i < p.T * p.H; i++) {
      const lossAt = (delta: number) => { const q = { ...p, hidden: Float64Array.from(p.hidden) }; q.hidden[i] += delta; return reference(q, o).loss; };
      // the reference's loss is smooth in hidden away from clip boundaries; the op's gradient must match it
      expect(Math.abs((lossAt(h) - lossAt(-h)) / (2 * h) - dH[i]!)).toBeLessThan(1e-4);
    }
  });

  it('bf16 and f16 inputs: f32 math, within tolerance of the float64 reference on the rounded inputs, every ISA', async () => {
    // V 300: the vector passes' 8-lane tail (4 words) and the bf16-pair GEMM's odd k (T 17) both occur.
    const p = makeProblem(17, 32, 300, 13);
    for (const dtype of ['bf16', 'f16'] as const) {
      const round = async (x: Float64Array, shape: number[]) => Float64Array.from(await Tensor.from(x, shape, { dtype }).toFloat32Array());
      const rounded: Problem = { ...p, hidden: await round(p.hidden, [17, 32]), weight: await round(p.weight, [300, 32]) };
      const ref = reference(rounded, base);
      const scale = (x: Float64Array) => Array.from(x).reduce((mx, v) => Math.max(mx, Math.abs(v)), 0);
      forEachIsa((isa) => {
        const out = run(p, base, {}, dtype);
        expect(maxAbsError(out.logp.readInto(new Float32Array(17)), ref.logp), `${dtype} ${isa} logp`).toBeLessThan(1e-4);
        // dlogits pass through the inputs' dtype for the gradient GEMMs: that dtype's relative precision (measured
        // 2.7e-3 / 3.1e-4 of the largest element here)
        expect(maxAbsError(out.dWeight!.readInto(new Float32Array(300 * 32)), ref.dWeight) / scale(ref.dWeight), `${dtype} ${isa} dWeight`).toBeLessThan(dtype === 'bf16' ? 5e-3 : 1e-3);
        expect(maxAbsError(out.dHidden!.readInto(new Float32Array(17 * 32)), ref.dHidden) / scale(ref.dHidden), `${dtype} ${isa} dHidden`).toBeLessThan(dtype === 'bf16' ? 5e-3 : 1e-3);
      });
    }
  });

  it('refuses bad input', () => {
    const p = makeProblem(4, 4, 5, 14);
    const h = Tensor.from(p.hidden, [4, 4]), w = Tensor.from(p.weight, [5, 4]);
    const ok = { hidden: h, weight: w, targets: p.targets, advantages: Float32Array.from(p.adv), cuSeqlens: p.cu };
    expect(() => ops.policyLoss({ ...ok, targets: [0, 1, 2, 5] })).toThrow(/targets\[3\] = 5 is outside \[0, 5\)/);
    expect(() => ops.policyLoss({ ...ok, cuSeqlens: [0, 3] })).toThrow(/cuSeqlens/);
    expect(() => ops.policyLoss({ ...ok, weight: Tensor.zeros([5, 3]) })).toThrow(/weight/);
    expect(() => ops.policyLoss({ ...ok, advantages: [1, 2] })).toThrow(/advantages' has 2 entries, expected 4/);
    expect(() => ops.policyLoss({ ...ok, aggregation: 'group-token-mean' })).toThrow(/groupIds/);
    expect(() => ops.policyLoss({ ...ok, aggregation: 'seq-mean-token-sum-norm' })).toThrow(/lossScale/);
    expect(() => ops.policyLoss({ ...ok, temperature: 0 })).toThrow(/temperature/);
    expect(() => ops.policyLoss({ ...ok, dualClip: 0.5 })).toThrow(/dualClip/);
    expect(() => ops.policyLoss({ ...ok, hidden: Tensor.from(p.hidden, [4, 4], { dtype: 'bf16' }) })).toThrow(/dtype/);
  });

  it.runIf(process.env.QWENLONG_TEST_LONG)('T=8192, H=512, V=65536 stays within 64 MB of extra memory', () => {
    const script = `
      import { Tensor, ops } from './dist/src/index.js';
      const T = 8192, H = 512, V = 65536;
      // Inputs built natively from a small table (rows gathered by ops.embedding), so no large transient array
      // raises the peak before the op runs.
      const table = Tensor.from(Float32Array.from({ length: 1021 * H }, (_, i) => Math.sin(i) * 0.05), [1021, H], { device: 'cpu' });
      const rows = (n, k) => Tensor.from(Int32Array.from({ length: n }, (_, i) => (i * k) % 1021), [n], { dtype: 'i32', device: 'cpu' });
      const hidden = ops.embedding(rows(T, 7), table), weight = ops.embedding(rows(V, 13), table);
      const dHiddenOut = Tensor.zeros([T, H], { device: 'cpu' }), dWeightOut = Tensor.zeros([V, H], { device: 'cpu' });
      // zeros may come as untouched pages: write them, so the outputs count in the baseline, not as extra memory
      ops.add(dHiddenOut, dHiddenOut, { out: dHiddenOut });
      ops.add(dWeightOut, dWeightOut, { out: dWeightOut });
      const targets = Int32Array.from({ length: T }, (_, i) => (i * 7919) % V), advantages = new Float32Array(T).fill(0.5);
      global.gc();
      if (process.argv.at(-1) !== 'skip') ops.policyLoss({ hidden, weight, targets, advantages, cuSeqlens: [0, T], dHiddenOut, dWeightOut, workspaceBytes: 32 << 20 });
      console.log(JSON.stringify({ peakKiB: process.resourceUsage().maxRSS }));`;
    // The same process twice, with and without the op: the difference of their peak RSS is what the op adds (the
    // inputs, outputs and the transient arrays that built them are in both).
    const peak = (...args: string[]) => {
      const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script, ...args], { cwd: join(import.meta.dirname, '..'), encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { peakKiB: number }).peakKiB;
    };
    const extraMB = (peak('run') - peak('skip')) / 1024;
    console.log(`policy loss T=8192 H=512 V=65536, 32 MiB workspace: peak RSS ${extraMB.toFixed(1)} MB above the same process without the op`);
    expect(extraMB).toBeLessThan(64);
  }, 900_000);
});

describe.runIf(gpuRun())('ops.policyLoss on CUDA against the CPU twin', () => {
  const p = makeProblem(113, 64, 1000, 21, { old: true, mask: true, scale: 5 });
  const o = { ...base, agg: 'group-token-mean' as Agg, dual: 3 };
  async function same(dtype: 'f32' | 'bf16' | 'f16', extra: Partial<PolicyLossInput> = {}) {
    const c = run(p, o, extra, dtype, 'cpu'), g = run(p, o, extra, dtype, 'cuda');
    const tol = dtype === 'f32' ? 1e-4 : 2e-2;
    expect(Math.abs((await g.loss.item()) - (await c.loss.item()))).toBeLessThan(tol);
    expect(maxAbsError(await g.logp.toArray(), await c.logp.toArray())).toBeLessThan(tol);
    expect(maxAbsError(await g.entropy.toArray(), await c.entropy.toArray())).toBeLessThan(tol);
    if (extra.grads === false) {
      expect(g.dHidden).toBeNull();
      return;
    }
    expect(maxAbsError(await g.dHidden!.toArray(), await c.dHidden!.toArray())).toBeLessThan(tol);
    expect(maxAbsError(await g.dWeight!.toArray(), await c.dWeight!.toArray())).toBeLessThan(tol);
  }

  it('f32, bf16 and f16', async () => {
    for (const dtype of ['f32', 'bf16', 'f16'] as const) await same(dtype);
  });

  it('16-bit inputs over many chunks (the 16-bit gradient copy reused, dWeight accumulated) and without gradients', async () => {
    // f32 logits plus the 2-byte copy: 6 bytes a word, 5 rows a chunk, 23 chunks for 113 tokens.
    for (const dtype of ['bf16', 'f16'] as const) await same(dtype, { workspaceBytes: 6 * 1000 * 5 });
    await same('bf16', { grads: false });
  });

  it('a target outside the vocabulary in a device tensor is refused (the kernel raises a flag)', () => {
    const targets = Tensor.from(Int32Array.from(p.targets, (t, i) => (i === 57 ? 1000 : t)), [p.T], { dtype: 'i32', device: 'cuda' });
    try {
      expect(() => run(p, o, { targets }, 'bf16', 'cuda')).toThrow(/outside \[0, 1000\)/);
    } finally {
      targets.dispose();
    }
  });
});

describe('default workspace', () => {
  it('128 MiB on the CPU; on CUDA room for 2048 rows (f32 logits, plus a 2-byte copy for half gradients), 128 MiB to 2 GiB', () => {
    expect(defaultWorkspace('cpu', 16384, 151936, true)).toBe(128 * 2 ** 20);
    expect(defaultWorkspace('cuda', 16384, 151936, true)).toBe(2048 * 151936 * 6);
    expect(defaultWorkspace('cuda', 16384, 151936, false)).toBe(2048 * 151936 * 4);
    expect(defaultWorkspace('cuda', 2000, 32768, false)).toBe(2000 * 32768 * 4);
    expect(defaultWorkspace('cuda', 7, 1000, true)).toBe(128 * 2 ** 20);
    expect(defaultWorkspace('cuda', 4096, 1_000_000, true)).toBe(2 ** 31);
  });
});
