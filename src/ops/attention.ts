/**
 * Exact softmax attention over packed ragged batches (FlashAttention-2's algorithm), and its backward.
 *   q, out, dOut, dq: (totalQ, Hq, D)   k, v, dk, dv: (totalK, Hkv, D)   lse: (Hq, totalQ) f32
 * `cuSeqlensQ` / `cuSeqlensK` (B + 1 prefix sums, an Int32Array or an i32 tensor) pack B sequences; without them
 * q and k are one sequence each. GQA/MQA: query head h reads kv head ⌊h / (Hq / Hkv)⌋; dk and dv sum over the
 * query heads that share a kv head. `causal` is aligned bottom-right: query i of a sequence sees keys
 * j ≤ i + lenK − lenQ. A query row that sees no key outputs 0 with lse = +∞ and gets zero gradients.
 * No T × T matrix is ever formed: the forward keeps an online softmax, the backward recomputes the probabilities
 * from q, k and lse, so extra memory is O(T). CPU: f32 math (f16/bf16 inputs converted on load); CUDA: f16/bf16
 * with f32 accumulation.
 */
import { type NativeTensorHandle, native } from '../native/addon.js';
import { Tensor, checkTensor } from '../native/tensor.js';
import { checkFinite, checkFloat, checkOptions, checkOut, checkSameShape, outputTensor } from './checks.js';

export interface AttentionOptions {
  /** Causal mask, aligned bottom-right when the query and key lengths differ. Default false. */
  causal?: boolean;
  /** Multiplies q·kᵀ. Default 1/√D. */
  scale?: number;
  /** Query sequence boundaries (B + 1 entries from 0 to totalQ, non-decreasing). Give both or neither. */
  cuSeqlensQ?: Int32Array | Tensor;
  /** Key sequence boundaries (B + 1 entries from 0 to totalK). */
  cuSeqlensK?: Int32Array | Tensor;
}

export interface AttentionForwardOptions extends AttentionOptions {
  out?: Tensor;
  lseOut?: Tensor;
}

export interface AttentionBackwardOptions extends AttentionOptions {
  dqOut?: Tensor;
  dkOut?: Tensor;
  dvOut?: Tensor;
}

interface Checked {
  causal: boolean;
  scale: number;
  cuQ: Int32Array | NativeTensorHandle | null;
  cuK: Int32Array | NativeTensorHandle | null;
}

function checkSeqlens(op: string, arg: string, value: unknown, device: string): Int32Array | NativeTensorHandle | null {
  if (value === undefined) return null;
  if (value instanceof Int32Array) return value;
  if (Tensor.isTensor(value)) {
    const t = checkTensor(value, op, arg);
    if (t.dtype !== 'i32' || t.ndim !== 1) throw new TypeError(`${op}: argument '${arg}' must be a 1-D i32 tensor, not ${t.dtype} [${t.shape.join(', ')}]`);
    if (t.device !== device) throw new TypeError(`${op}: argument '${arg}' is on ${t.device}, expected ${device}`);
    return t.handle;
  }
  throw new TypeError(`${op}: argument '${arg}' must be an Int32Array or an i32 Tensor`);
}

function checkCommon(op: string, q: Tensor, k: Tensor, v: Tensor, opts: Partial<AttentionOptions>): Checked {
  checkFloat(op, 'q', checkTensor(q, op, 'q'));
  checkTensor(k, op, 'k');
  checkTensor(v, op, 'v');
  if (q.ndim !== 3) throw new RangeError(`${op}: argument 'q' must have shape (totalQ, headsQ, headDim), not [${q.shape.join(', ')}]`);
  if (k.ndim !== 3) throw new RangeError(`${op}: argument 'k' must have shape (totalK, headsKv, headDim), not [${k.shape.join(', ')}]`);
  checkSameShape(op, 'v', v, k);
  if (k.dtype !== q.dtype) throw new TypeError(`${op}: argument 'k' is ${k.dtype}, expected ${q.dtype}`);
  if (k.device !== q.device) throw new TypeError(`${op}: argument 'k' is on ${k.device}, expected ${q.device}`);
  const [, hq, d] = q.shape as [number, number, number];
  const hkv = k.shape[1]!;
  if (d < 1 || d > 256) throw new RangeError(`${op}: head dimension ${d} is outside [1, 256]`);
  if (k.shape[2] !== d) throw new RangeError(`${op}: argument 'k' has head dimension ${k.shape[2]}, q has ${d}`);
  if (hq < 1 || hkv < 1 || hq % hkv !== 0) throw new RangeError(`${op}: query heads (${hq}) must be a positive multiple of key/value heads (${hkv})`);
  const causal = opts.causal ?? false;
  if (typeof causal !== 'boolean') throw new TypeError(`${op}: option 'causal' must be a boolean`);
  const scale = opts.scale === undefined ? 1 / Math.sqrt(d) : checkFinite(op, 'scale', opts.scale);
  if (!(scale > 0)) throw new RangeError(`${op}: option 'scale' must be positive`);
  const cuQ = checkSeqlens(op, 'cuSeqlensQ', opts.cuSeqlensQ, q.device);
  const cuK = checkSeqlens(op, 'cuSeqlensK', opts.cuSeqlensK, q.device);
  if ((cuQ === null) !== (cuK === null)) throw new TypeError(`${op}: give both 'cuSeqlensQ' and 'cuSeqlensK', or neither`);
  return { causal, scale, cuQ, cuK };
}

/** Attention forward: `out` like q and `lse` (Hq, totalQ) f32, the log-sum-exp of each row (keep it for the backward). */
export function attention(q: Tensor, k: Tensor, v: Tensor, options?: AttentionForwardOptions): { out: Tensor; lse: Tensor } {
  const op = 'ops.attention';
  const opts = checkOptions(op, options);
  const c = checkCommon(op, q, k, v, opts);
  const lseShape = [q.shape[1]!, q.shape[0]!];
  const out = checkOut(op, 'out', opts.out, q.shape, q.dtype, q.device);
  const lseOut = checkOut(op, 'lseOut', opts.lseOut, lseShape, 'f32', q.device);
  const [o, l] = native().attention(q.handle, k.handle, v.handle, c.cuQ, c.cuK, c.causal, c.scale, out?.handle ?? null, lseOut?.handle ?? null);
  return { out: out ?? outputTensor(o, q.shape, q.dtype, q.device), lse: lseOut ?? outputTensor(l, lseShape, 'f32', q.device) };
}

/**
 * Attention backward: dq, dk, dv from dOut and the forward's out and lse (the same options as the forward).
 * Deterministic: dk/dv by key tile and dq by query tile in separate passes, no atomics.
 */
export function attentionBackward(dOut: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, options?: AttentionBackwardOptions): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = 'ops.attentionBackward';
  const opts = checkOptions(op, options);
  const c = checkCommon(op, q, k, v, opts);
  checkSameShape(op, 'dOut', checkTensor(dOut, op, 'dOut'), q);
  checkSameShape(op, 'out', checkTensor(out, op, 'out'), q);
  checkTensor(lse, op, 'lse');
  const lseShape = [q.shape[1]!, q.shape[0]!];
  if (lse.dtype !== 'f32' || lse.ndim !== 2 || lse.shape[0] !== lseShape[0] || lse.shape[1] !== lseShape[1] || lse.device !== q.device) {
    throw new RangeError(`${op}: argument 'lse' must be the f32 (${lseShape.join(', ')}) tensor ops.attention returned`);
  }
  const dqOut = checkOut(op, 'dqOut', opts.dqOut, q.shape, q.dtype, q.device);
  const dkOut = checkOut(op, 'dkOut', opts.dkOut, k.shape, k.dtype, k.device);
  const dvOut = checkOut(op, 'dvOut', opts.dvOut, v.shape, v.dtype, v.device);
  const [dq, dk, dv] = native().attentionBackward(dOut.handle, q.handle, k.handle, v.handle, out.handle, lse.handle, c.cuQ, c.cuK, c.causal, c.scale,
    dqOut?.handle ?? null, dkOut?.handle ?? null, dvOut?.handle ?? null);
  return {
    dq: dqOut ?? outputTensor(dq, q.shape, q.dtype, q.device),
    dk: dkOut ?? outputTensor(dk, k.shape, k.dtype, k.device),
    dv: dvOut ?? outputTensor(dv, v.shape, v.dtype, v.device),
  };
}
