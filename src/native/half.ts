/**
 * Typed-array helpers: f16 and bf16 conversion (Node 20 has no Float16Array, and no JS type holds bf16) and
 * row-major strides. Rounding is to nearest, ties to even, bit-exact with the native kernels (and F16C).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 → bf16 bits. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff; // NaN stays NaN (quiet)
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bf16 bits → number. */
export function bf16ToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** f32 → IEEE half bits (subnormals kept, overflow to ±inf). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    if (a < 0x33000000) return sign;
    const exp = a >>> 23;
    const mant = (a & 0x7fffff) | 0x800000;
    const shift = 126 - exp;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half += 1;
    return sign | half;
  }
  const r = (a + 0xfff + ((a >>> 13) & 1) - 0x38000000) >>> 13;
  return sign | r;
}

/** IEEE half bits → number. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Convert numbers to f16 or bf16 bits. */
export function toHalfBits(values: ArrayLike<number>, dtype: 'f16' | 'bf16'): Uint16Array {
  const out = new Uint16Array(values.length);
  const convert = dtype === 'f16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < values.length; i++) out[i] = convert(values[i]!);
  return out;
}

/** Convert f16 or bf16 bits to a Float32Array. */
export function fromHalfBits(bits: Uint16Array, dtype: 'f16' | 'bf16'): Float32Array {
  const out = new Float32Array(bits.length);
  const convert = dtype === 'f16' ? f16ToF32 : bf16ToF32;
  for (let i = 0; i < bits.length; i++) out[i] = convert(bits[i]!);
  return out;
}

/** Row-major (C-order) strides, in elements, of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/** Number of elements of a shape (1 for a 0-d tensor). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i]!;
  return n;
}
