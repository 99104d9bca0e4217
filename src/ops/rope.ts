/**
 * Rotary position embedding of queries or keys, and its backward (the inverse rotation).
 *   x, out: (T, H, D)   positions: (T) i32, optional (default t + offset, the decode case)
 * Pair conventions: `interleaved` pairs (2i, 2i+1), as llama2.c and Meta's checkpoints; `half` pairs (i, i + R/2),
 * as Hugging Face's. Angles are p · theta^(-2i/R), computed in f64; R = rotaryDim (default D) rotated dims.
 */
import { native } from '../native/addon.js';
import { type Tensor, checkTensor } from '../native/tensor.js';
import { checkFloat, checkOptions, checkOut, outputTensor } from './checks.js';

export interface RopeOptions {
  /** 'interleaved' (llama2.c / Meta) or 'half' (Hugging Face). Default 'half'. */
  convention?: 'interleaved' | 'half';
  /** Base of the frequencies. Default 10000 (Qwen3 uses 1e6). */
  theta?: number;
  /** Position of each token (i32, on x's device). */
  positions?: Tensor;
  /** Position of the first token when `positions` is not given (decode: the cache length). Default 0. */
  offset?: number;
  /** Rotated dimensions per head (even, ≤ D). Default D. */
  rotaryDim?: number;
  out?: Tensor;
}

function run(op: string, x: Tensor, options: RopeOptions | undefined, inverse: boolean): Tensor {
  const opts = checkOptions(op, options);
  checkFloat(op, 'x', checkTensor(x, op, 'x'));
  if (x.ndim !== 3) throw new RangeError(`${op}: argument 'x' must have shape (tokens, heads, headDim), not [${x.shape.join(', ')}]`);
  const convention = opts.convention ?? 'half';
  if (convention !== 'interleaved' && convention !== 'half') throw new TypeError(`${op}: 'convention' must be 'interleaved' or 'half'`);
  const positions = opts.positions === undefined ? null : checkTensor(opts.positions, op, 'positions');
  if (positions && (positions.dtype !== 'i32' || positions.size !== x.shape[0] || positions.device !== x.device)) {
    throw new RangeError(`${op}: 'positions' must be an i32 tensor of ${x.shape[0]} elements on ${x.device}`);
  }
  const out = checkOut(op, 'out', opts.out, x.shape, x.dtype, x.device);
  const h = native().rope(x.handle, positions?.handle ?? null, opts.offset ?? 0, opts.theta ?? 10000, opts.rotaryDim ?? x.shape[2]!, convention === 'interleaved', inverse, out?.handle ?? null);
  return out ?? outputTensor(h, x.shape, x.dtype, x.device);
}

/** Rotate x by its positions' angles. `out` may be x (in place). */
export function rope(x: Tensor, options?: RopeOptions): Tensor {
  return run('ops.rope', x, options, false);
}

/** The gradient of rope: dout rotated back by the same angles. */
export function ropeBackward(dout: Tensor, options?: RopeOptions): Tensor {
  return run('ops.ropeBackward', dout, options, true);
}
