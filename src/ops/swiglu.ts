/**
 * SwiGLU, the gated MLP activation: out = silu(gate) · up, and its backward.
 *   gate, up, out, dout, dgate, dup: the same shape and dtype (f32, f16, bf16); math in f32.
 */
import { native } from '../native/addon.js';
import { type Tensor, checkTensor } from '../native/tensor.js';
import { checkFloat, checkOptions, checkOut, checkSameShape, outputTensor } from './checks.js';

export function swiglu(gate: Tensor, up: Tensor, options?: { out?: Tensor }): Tensor {
  const op = 'ops.swiglu';
  const opts = checkOptions(op, options);
  checkFloat(op, 'gate', checkTensor(gate, op, 'gate'));
  checkSameShape(op, 'up', checkTensor(up, op, 'up'), gate);
  const out = checkOut(op, 'out', opts.out, gate.shape, gate.dtype, gate.device);
  const h = native().swiglu(gate.handle, up.handle, out?.handle ?? null);
  return out ?? outputTensor(h, gate.shape, gate.dtype, gate.device);
}

export function swigluBackward(dout: Tensor, gate: Tensor, up: Tensor, options?: { dgateOut?: Tensor; dupOut?: Tensor }): { dgate: Tensor; dup: Tensor } {
  const op = 'ops.swigluBackward';
  const opts = checkOptions(op, options);
  checkFloat(op, 'gate', checkTensor(gate, op, 'gate'));
  checkSameShape(op, 'up', checkTensor(up, op, 'up'), gate);
  checkSameShape(op, 'dout', checkTensor(dout, op, 'dout'), gate);
  const dgateOut = checkOut(op, 'dgateOut', opts.dgateOut, gate.shape, gate.dtype, gate.device);
  const dupOut = checkOut(op, 'dupOut', opts.dupOut, gate.shape, gate.dtype, gate.device);
  const [dg, du] = native().swigluBackward(dout.handle, gate.handle, up.handle, dgateOut?.handle ?? null, dupOut?.handle ?? null);
  return {
    dgate: dgateOut ?? outputTensor(dg, gate.shape, gate.dtype, gate.device),
    dup: dupOut ?? outputTensor(du, gate.shape, gate.dtype, gate.device),
  };
}
