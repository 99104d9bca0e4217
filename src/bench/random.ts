/** Seeded uniform floats in [-scale, scale) (xorshift32), for benchmark inputs that are neither zeros nor Math.random's. */
export function seededFloats(n: number, seed: number, scale = 0.5): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return a;
}
