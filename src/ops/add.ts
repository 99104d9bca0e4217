/**
 * Elementwise scaled sums: `add(a, b, { alpha, beta })` = alpha·a + beta·b, and `scale(x, s)` = s·x.
 * a, b, out: the same shape, dtype (f32, f16, bf16; math in f32) and device. Products and the sum round
 * separately, so every CPU ISA and the GPU give the same bits.
 */
import { native } from '../native/addon.js';
import { Tensor, checkTensor } from '../native/tensor.js';
import { checkFinite, checkFloat, checkOptions, checkSameShape } from './checks.js';

export interface AddOptions {
  /** Scale of a. Default 1. */
  alpha?: number;
  /** Scale of b. Default 1. */
  beta?: number;
  /** Write the result here (may be a or b) instead of a new tensor. */
  out?: Tensor;
}

/** alpha·a + beta·b. */
export function add(a: Tensor, b: Tensor, options?: AddOptions): Tensor {
  const op = 'ops.add';
  const opts = checkOptions(op, options);
  checkFloat(op, 'a', checkTensor(a, op, 'a'));
  checkTensor(b, op, 'b');
  checkSameShape(op, 'b', b, a);
  const alpha = checkFinite(op, 'alpha', opts.alpha ?? 1);
  const beta = checkFinite(op, 'beta', opts.beta ?? 1);
  const out = opts.out === undefined ? undefined : checkSameShape(op, 'out', checkTensor(opts.out, op, 'out'), a);
  const handle = native().add(a.handle, b.handle, out ? out.handle : null, alpha, beta);
  return out ?? new Tensor(handle, a.shape, a.dtype, a.device);
}

export interface ScaleOptions {
  /** Write the result here (may be x) instead of a new tensor. */
  out?: Tensor;
}

/** s·x. */
export function scale(x: Tensor, s: number, options?: ScaleOptions): Tensor {
  const op = 'ops.scale';
  const opts = checkOptions(op, options);
  checkFloat(op, 'x', checkTensor(x, op, 'x'));
  const factor = checkFinite(op, 's', s);
  const out = opts.out === undefined ? undefined : checkSameShape(op, 'out', checkTensor(opts.out, op, 'out'), x);
  const handle = native().add(x.handle, null, out ? out.handle : null, factor, 0);
  return out ?? new Tensor(handle, x.shape, x.dtype, x.device);
}
