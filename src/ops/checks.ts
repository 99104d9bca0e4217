/** Argument checks shared by the typed op API; each error names the op and the argument. */
import { describe } from '../native/device.js';
import type { Tensor } from '../native/tensor.js';

export function checkFinite(op: string, arg: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new (typeof value === 'number' ? RangeError : TypeError)(`${op}: argument '${arg}' must be a finite number, not ${describe(value)}`);
  }
  return value;
}

export function checkSameShape(op: string, arg: string, t: Tensor, ref: Tensor): Tensor {
  const same = t.shape.length === ref.shape.length && t.shape.every((d, i) => d === ref.shape[i]);
  if (!same) throw new RangeError(`${op}: argument '${arg}' has shape [${t.shape.join(', ')}], expected [${ref.shape.join(', ')}]`);
  if (t.dtype !== ref.dtype) throw new TypeError(`${op}: argument '${arg}' is ${t.dtype}, expected ${ref.dtype}`);
  if (t.device !== ref.device) throw new TypeError(`${op}: argument '${arg}' is on ${t.device}, expected ${ref.device}`);
  return t;
}
