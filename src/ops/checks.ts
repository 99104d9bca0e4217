/** Argument checks shared by the typed op API; each error names the op and the argument. */
import { describe } from '../native/device.js';
import type { NativeTensorHandle } from '../native/addon.js';
import type { Device } from '../native/device.js';
import { type DType, Tensor, checkTensor } from '../native/tensor.js';

export { checkOptions } from '../native/tensor.js';

const F32_MAX = 3.4028234663852886e38;

/** A number that stays finite in f32 (the kernels compute in f32). */
export function checkFinite(op: string, arg: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > F32_MAX) {
    throw new (typeof value === 'number' ? RangeError : TypeError)(`${op}: argument '${arg}' must be a finite number, not ${describe(value)}`);
  }
  return value;
}

/** Float dtypes only (f32, f16, bf16). */
export function checkFloat(op: string, arg: string, t: Tensor): Tensor {
  if (t.dtype !== 'f32' && t.dtype !== 'f16' && t.dtype !== 'bf16') {
    throw new TypeError(`${op}: argument '${arg}' is ${t.dtype}; ${op} takes f32, f16 or bf16`);
  }
  return t;
}

export function checkSameShape(op: string, arg: string, t: Tensor, ref: Tensor): Tensor {
  const same = t.shape.length === ref.shape.length && t.shape.every((d, i) => d === ref.shape[i]);
  if (!same) throw new RangeError(`${op}: argument '${arg}' has shape [${t.shape.join(', ')}], expected [${ref.shape.join(', ')}]`);
  if (t.dtype !== ref.dtype) throw new TypeError(`${op}: argument '${arg}' is ${t.dtype}, expected ${ref.dtype}`);
  if (t.device !== ref.device) throw new TypeError(`${op}: argument '${arg}' is on ${t.device}, expected ${ref.device}`);
  return t;
}

/** An optional output tensor: undefined, or a live tensor of exactly this shape, dtype and device. */
export function checkOut(op: string, arg: string, out: unknown, shape: readonly number[], dtype: DType, device: Device): Tensor | undefined {
  if (out === undefined) return undefined;
  const t = checkTensor(out, op, arg);
  const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!same) throw new RangeError(`${op}: argument '${arg}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  if (t.dtype !== dtype) throw new TypeError(`${op}: argument '${arg}' is ${t.dtype}, expected ${dtype}`);
  if (t.device !== device) throw new TypeError(`${op}: argument '${arg}' is on ${t.device}, expected ${device}`);
  return t;
}

/** Wrap a handle the native op created. */
export function outputTensor(handle: NativeTensorHandle, shape: readonly number[], dtype: DType, device: Device): Tensor {
  return new Tensor(handle, shape, dtype, device);
}
