/** Shared test helpers: seeded random inputs, float64 references, the tolerance rule, ISA and device loops. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { info, setIsa } from '../src/native/runtime.js';

/** The package root (where dist/ is): child processes run there. */
export const root = join(import.meta.dirname, '..');

/** A child Node process running `code` as an ES module in the package root, with `env` added to this environment. */
export function runNode(code: string, env: Record<string, string> = {}, timeout?: number) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', timeout });
}

/** mulberry32: a small seeded generator, so every test input is reproducible. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniform values in [lo, hi) (never all zeros). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Largest |x - ref| over the arrays. */
export function maxAbsError(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(x[i]! - ref[i]!);
    if (!(e <= m)) m = e; // NaN propagates as a failure
  }
  return m;
}

/**
 * The tolerance rule (FlashAttention's): the op's error against the float64 reference must be within `factor`
 * (2 for forward, 3 for gradients) times the error of a naive implementation in the op's precision, plus a
 * tiny absolute floor.
 */
export function withinRule(opError: number, naiveError: number, factor = 2, floor = 1e-7): boolean {
  return opError <= factor * naiveError + floor;
}

/** The CPU ISAs this machine supports (every test that runs a CPU kernel runs it under each). */
export function cpuIsas(): string[] {
  return info().cpu.supportedIsas;
}

/** Run fn under each supported ISA, restoring the best one afterwards. */
export function forEachIsa(fn: (isa: string) => void): void {
  const isas = cpuIsas();
  try {
    for (const isa of isas) {
      setIsa(isa);
      fn(isa);
    }
  } finally {
    setIsa(isas[isas.length - 1]!);
  }
}

/** The device the suite targets: 'cuda' under `npm run test:gpu` (QWENLONG_DEVICE=cuda), else 'cpu'. */
export function gpuRun(): boolean {
  return process.env.QWENLONG_DEVICE === 'cuda';
}

/** Round a number to f16 or bf16 by arithmetic in float64 (independent of the bit-twiddling converters). */
export function roundToHalfReference(x: number, dtype: 'f16' | 'bf16'): number {
  if (Number.isNaN(x)) return NaN;
  if (!Number.isFinite(x)) return x;
  const mantBits = dtype === 'f16' ? 10 : 7;
  const minExp = dtype === 'f16' ? -14 : -126;
  const maxFinite = dtype === 'f16' ? 65504 : (2 - 2 ** -7) * 2 ** 127;
  const a = Math.abs(x);
  if (a === 0) return x;
  const e = Math.max(Math.floor(Math.log2(a)), minExp);
  // log2 can be off by one near powers of two: fix e so that 2^e <= a < 2^(e+1) (or e = minExp for subnormals).
  let exp = e;
  if (exp > minExp && 2 ** exp > a) exp--;
  if (2 ** (exp + 1) <= a) exp++;
  const ulp = 2 ** (exp - mantBits);
  const q = a / ulp;
  const fl = Math.floor(q);
  const frac = q - fl;
  const n = frac > 0.5 || (frac === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  const r = n * ulp;
  // Overflow: values at or beyond the midpoint between max finite and the next power round to infinity.
  const limit = maxFinite + 2 ** (Math.floor(Math.log2(maxFinite)) - mantBits) / 2;
  if (a >= limit) return Math.sign(x) * Infinity;
  return Math.sign(x) * r;
}

/** Index of the first element whose bits differ (or -1 when identical); fast on large arrays. */
export function firstBitDifference(a: ArrayBufferView, b: ArrayBufferView): number {
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (x.length !== y.length) return 0;
  if (x.equals(y)) return -1;
  const size = (a as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return Math.floor(i / size);
  return -1;
}
