// The TypeScript f16/bf16 converters against float64 arithmetic rounding, over every f16 pattern, random f32
// values and the edge cases (ties, subnormals, overflow, NaN, signed zero).
import { describe, expect, it } from 'vitest';

import { bf16ToF32, contiguousStrides, f16ToF32, f32ToBf16, f32ToF16, fromHalfBits, toHalfBits } from '../src/native/half.js';
import { rng, roundToHalfReference } from './helpers.js';

function f32(x: number): number {
  return Math.fround(x);
}

describe('f16', () => {
  it('decodes every pattern and re-encodes it unchanged (NaNs stay NaN)', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const v = f16ToF32(h);
      const back = f32ToF16(v);
      if (Number.isNaN(v) ? !Number.isNaN(f16ToF32(back)) : back !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds random f32 values to nearest even, as float64 arithmetic does', () => {
    const r = rng(11);
    const wrong: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      // log-uniform magnitudes from deep subnormal to overflow
      const x = f32((r() < 0.5 ? -1 : 1) * 2 ** (-30 + 48 * r()));
      if (f16ToF32(f32ToF16(x)) !== roundToHalfReference(x, 'f16')) wrong.push(x);
    }
    expect(wrong).toEqual([]);
  });

  it('handles ties, subnormals, overflow and specials', () => {
    const cases = [0, -0, 1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -26, 65504, 65519.99, 65520, 1e9, Infinity, -Infinity, 2 ** -14, 2 ** -14 - 2 ** -25];
    for (const x of cases) {
      const fx = f32(x);
      expect(Object.is(f16ToF32(f32ToF16(fx)), roundToHalfReference(fx, 'f16'))).toBe(true);
    }
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
  });
});

describe('bf16', () => {
  it('rounds random f32 values to nearest even, as float64 arithmetic does', () => {
    const r = rng(12);
    const wrong: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      const x = f32((r() < 0.5 ? -1 : 1) * 2 ** (-140 + 270 * r()));
      if (bf16ToF32(f32ToBf16(x)) !== roundToHalfReference(x, 'bf16')) wrong.push(x);
    }
    expect(wrong).toEqual([]);
  });

  it('handles ties, overflow and specials', () => {
    const cases = [0, 1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.3895313892515355e38, 3.4e38, -2.5, 2 ** -133, 2 ** -126];
    for (const x of cases) {
      const fx = f32(x);
      expect(bf16ToF32(f32ToBf16(fx))).toBe(roundToHalfReference(fx, 'bf16'));
    }
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
  });
});

describe('array helpers', () => {
  it('converts arrays both ways and computes row-major strides', () => {
    const xs = [0.1, -2, 3.5, 1e-6];
    for (const dt of ['f16', 'bf16'] as const) {
      const back = fromHalfBits(toHalfBits(xs, dt), dt);
      xs.forEach((x, i) => expect(back[i]).toBe(roundToHalfReference(f32(x), dt)));
    }
    expect(contiguousStrides([2, 3, 4])).toEqual([12, 4, 1]);
    expect(contiguousStrides([])).toEqual([]);
  });
});
