/**
 * `cast(x, dtype)`: the elements of x in another float dtype (f32, f16, bf16), rounded to nearest even when
 * narrowing, as every op's stores round; equal dtypes give a copy. Same shape and device as x.
 */
import { native } from '../native/addon.js';
import { describe } from '../native/device.js';
import { type Tensor, checkTensor } from '../native/tensor.js';
import { checkFloat, checkOptions, checkOut, outputTensor } from './checks.js';

export interface CastOptions {
  /** Write the result here (x's shape and device, the target dtype) instead of a new tensor. */
  out?: Tensor;
}

export function cast(x: Tensor, dtype: 'f32' | 'f16' | 'bf16', options?: CastOptions): Tensor {
  const op = 'ops.cast';
  const opts = checkOptions(op, options);
  checkFloat(op, 'x', checkTensor(x, op, 'x'));
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') throw new TypeError(`${op}: argument 'dtype' must be 'f32', 'f16' or 'bf16', not ${describe(dtype)}`);
  const out = checkOut(op, 'out', opts.out, x.shape, dtype, x.device);
  const handle = native().cast(x.handle, out ? out.handle : null, dtype);
  return out ?? outputTensor(handle, x.shape, dtype, x.device);
}
