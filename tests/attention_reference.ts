/**
 * A naive attention, forward and backward, in float64 or in float32 (every operation rounded with Math.fround):
 * the float64 run is the reference, the float32 run measures the error a same-precision naive implementation
 * makes (the tolerance rule's budget). Row by row, so memory stays O(T) even at a thousand tokens.
 */
export interface AttentionCase {
  lensQ: number[];
  lensK: number[];
  hq: number;
  hkv: number;
  d: number;
  causal: boolean;
  scale?: number;
}

export interface AttentionResult {
  out: Float64Array;
  lse: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

export function naiveAttention(c: AttentionCase, q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dout: ArrayLike<number>, f32: boolean): AttentionResult {
  const r = f32 ? Math.fround : (x: number) => x;
  const { hq, hkv, d } = c;
  const scale = r(c.scale ?? 1 / Math.sqrt(d));
  const totalQ = c.lensQ.reduce((a, b) => a + b, 0), totalK = c.lensK.reduce((a, b) => a + b, 0);
  const out = new Float64Array(totalQ * hq * d), lse = new Float64Array(hq * totalQ);
  const dq = new Float64Array(totalQ * hq * d), dk = new Float64Array(totalK * hkv * d), dv = new Float64Array(totalK * hkv * d);
  const group = hq / hkv;
  let q0 = 0, k0 = 0;
  for (let b = 0; b < c.lensQ.length; b++) {
    const lq = c.lensQ[b]!, lk = c.lensK[b]!;
    const p = new Float64Array(lk), dp = new Float64Array(lk);
    for (let h = 0; h < hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < lq; i++) {
        const qi = ((q0 + i) * hq + h) * d;
        const nvis = c.causal ? Math.max(0, Math.min(lk, i + 1 + lk - lq)) : lk;
        if (nvis === 0) {
          lse[h * totalQ + q0 + i] = Infinity;
          continue; // out and gradients stay 0
        }
        // s = scale q k^T; softmax
        let m = -Infinity;
        for (let j = 0; j < nvis; j++) {
          const kj = ((k0 + j) * hkv + hk) * d;
          let s = 0;
          for (let e = 0; e < d; e++) s = r(s + r(q[qi + e]! * k[kj + e]!));
          p[j] = r(s * scale);
          if (p[j]! > m) m = p[j]!;
        }
        let l = 0;
        for (let j = 0; j < nvis; j++) {
          p[j] = r(Math.exp(r(p[j]! - m)));
          l = r(l + p[j]!);
        }
        for (let j = 0; j < nvis; j++) p[j] = r(p[j]! / l);
        lse[h * totalQ + q0 + i] = r(m + r(Math.log(l)));
        // out = p v
        for (let e = 0; e < d; e++) {
          let o = 0;
          for (let j = 0; j < nvis; j++) o = r(o + r(p[j]! * v[((k0 + j) * hkv + hk) * d + e]!));
          out[qi + e] = o;
        }
        // backward: dp = dout v^T, delta = dout . out, ds = p (dp - delta)
        let delta = 0;
        for (let e = 0; e < d; e++) delta = r(delta + r(dout[qi + e]! * out[qi + e]!));
        for (let j = 0; j < nvis; j++) {
          const vj = ((k0 + j) * hkv + hk) * d;
          let s = 0;
          for (let e = 0; e < d; e++) s = r(s + r(dout[qi + e]! * v[vj + e]!));
          dp[j] = r(p[j]! * r(s - delta));
        }
        for (let j = 0; j < nvis; j++) {
          const kj = ((k0 + j) * hkv + hk) * d;
          const ds = r(dp[j]! * scale);
          for (let e = 0; e < d; e++) {
            dq[qi + e] = r(dq[qi + e]! + r(ds * k[kj + e]!));
            dk[kj + e] = r(dk[kj + e]! + r(ds * q[qi + e]!));
            dv[kj + e] = r(dv[kj + e]! + r(p[j]! * dout[qi + e]!));
          }
        }
      }
    }
    q0 += lq;
    k0 += lk;
  }
  return { out, lse, dq, dk, dv };
}
