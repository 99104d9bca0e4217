/**
 * RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · w, and its backward.
 *   x, y, dy, dx: (..., C)   w: (C)   rrms: (...) f32, the reciprocal RMS the backward needs   dw: (C) f32
 * x, w, y share a dtype (f32, f16, bf16); math in f32.
 */
import { native } from '../native/addon.js';
import { Tensor, checkTensor } from '../native/tensor.js';
import { checkFloat, checkOptions, checkOut, checkSameShape, outputTensor } from './checks.js';

export interface RmsNormOptions {
  /** Default 1e-5 (Llama-2; Qwen uses 1e-6). */
  eps?: number;
  out?: Tensor;
  rrmsOut?: Tensor;
}

function checkXW(op: string, x: Tensor, w: Tensor): void {
  checkFloat(op, 'x', checkTensor(x, op, 'x'));
  checkTensor(w, op, 'w');
  const c = x.shape[x.shape.length - 1];
  if (x.ndim === 0 || c === 0) throw new RangeError(`${op}: argument 'x' needs a non-empty last dimension`);
  if (w.ndim !== 1 || w.shape[0] !== c) throw new RangeError(`${op}: argument 'w' has shape [${w.shape.join(', ')}], expected [${c}]`);
  if (w.dtype !== x.dtype) throw new TypeError(`${op}: argument 'w' is ${w.dtype}, expected ${x.dtype}`);
  if (w.device !== x.device) throw new TypeError(`${op}: argument 'w' is on ${w.device}, expected ${x.device}`);
}

/** Returns y and rrms (keep rrms for rmsNormBackward). */
export function rmsNorm(x: Tensor, w: Tensor, options?: RmsNormOptions): { y: Tensor; rrms: Tensor } {
  const op = 'ops.rmsNorm';
  const opts = checkOptions(op, options);
  checkXW(op, x, w);
  const eps = opts.eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1)) throw new RangeError(`${op}: argument 'eps' must be a number in (0, 1)`);
  const rowsShape = x.shape.slice(0, -1);
  const out = checkOut(op, 'out', opts.out, x.shape, x.dtype, x.device);
  const rrmsOut = checkOut(op, 'rrmsOut', opts.rrmsOut, rowsShape, 'f32', x.device);
  const [y, rrms] = native().rmsNorm(x.handle, w.handle, eps, out?.handle ?? null, rrmsOut?.handle ?? null);
  return { y: out ?? outputTensor(y, x.shape, x.dtype, x.device), rrms: rrmsOut ?? outputTensor(rrms, rowsShape, 'f32', x.device) };
}

export interface RmsNormBackwardOptions {
  /** Compute dw (default true). */
  dw?: boolean;
  dxOut?: Tensor;
  /** Write dw here; with `accumulate`, add to it. */
  dwOut?: Tensor;
  accumulate?: boolean;
}

/** Gradients of rmsNorm: dx (like x) and dw ((C) f32, or null when `dw: false`). */
export function rmsNormBackward(dy: Tensor, x: Tensor, w: Tensor, rrms: Tensor, options?: RmsNormBackwardOptions): { dx: Tensor; dw: Tensor | null } {
  const op = 'ops.rmsNormBackward';
  const opts = checkOptions(op, options);
  checkXW(op, x, w);
  checkSameShape(op, 'dy', checkTensor(dy, op, 'dy'), x);
  checkTensor(rrms, op, 'rrms');
  const rowsShape = x.shape.slice(0, -1);
  if (rrms.dtype !== 'f32' || rrms.size !== x.size / x.shape[x.shape.length - 1]!) throw new RangeError(`${op}: argument 'rrms' must be the f32 (${rowsShape.join(', ')}) tensor rmsNorm returned`);
  const wantDw = opts.dw ?? true;
  const accumulate = opts.accumulate ?? false;
  if (accumulate && !opts.dwOut) throw new TypeError(`${op}: 'accumulate' needs 'dwOut'`);
  const c = x.shape[x.shape.length - 1]!;
  const dxOut = checkOut(op, 'dxOut', opts.dxOut, x.shape, x.dtype, x.device);
  const dwOut = wantDw ? checkOut(op, 'dwOut', opts.dwOut, [c], 'f32', x.device) : undefined;
  const [dx, dw] = native().rmsNormBackward(dy.handle, x.handle, w.handle, rrms.handle, dxOut?.handle ?? null, dwOut?.handle ?? null, wantDw, accumulate);
  return {
    dx: dxOut ?? outputTensor(dx, x.shape, x.dtype, x.device),
    dw: wantDw ? (dwOut ?? outputTensor(dw!, [c], 'f32', x.device)) : null,
  };
}
