/**
 * `cast(x, dtype)`: the elements of x in another float dtype (f32, f16, bf16), rounded to nearest even when
 * narrowing, as every op's stores round; equal dtypes give a copy. Same shape and device as x.
 */
import { native } from '../native/addon.js';
import { describe } from '../native/device.js';
import { Tensor, checkTensor } from '../native/tensor.js';
import { checkFloat, checkOptions } from './checks.js';

export interface CastOptions {
  /** Write the result here (x's shape and device, the target dtype) instead of a new tensor. */
  out?: Tensor;
}

export function cast(x: Tensor, dtype: 'f32' | 'f16' | 'bf16', options?: CastOptions): Tensor {
  const op = 'ops.cast';
  const opts = checkOptions(op, options);
  checkFloat(op, 'x', checkTensor(x, op, 'x'));
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') throw new TypeError(`${op}: argument 'dtype' must be 'f32', 'f16' or 'bf16', not ${describe(dtype)}`);
  const out = opts.out === undefined ? undefined : checkTensor(opts.out, op, 'out');
  if (out) {
    if (out.shape.length !== x.shape.length || out.shape.some((d, i) => d !== x.shape[i])) throw new RangeError(`${op}: argument 'out' has shape [${out.shape.join(', ')}], expected [${x.shape.join(', ')}]`);
    if (out.dtype !== dtype) throw new TypeError(`${op}: argument 'out' is ${out.dtype}, expected ${dtype}`);
    if (out.device !== x.device) throw new TypeError(`${op}: argument 'out' is on ${out.device}, expected ${x.device}`);
  }
  const handle = native().cast(x.handle, out ? out.handle : null, dtype);
  return out ?? new Tensor(handle, x.shape, dtype, x.device);
}
