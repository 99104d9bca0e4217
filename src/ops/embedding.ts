/**
 * Token embedding lookup, and its backward (a deterministic scatter-add).
 *   ids: (...) i32 in [0, V)   table: (V, C) f32/f16/bf16   out: (..., C)   dtable: (V, C) f32
 * An id outside [0, V) is a RangeError (on CUDA, detected on the device and reported after a sync).
 */
import { native } from '../native/addon.js';
import { type Tensor, checkTensor } from '../native/tensor.js';
import { checkOptions, checkOut, outputTensor } from './checks.js';

function checkIds(op: string, ids: Tensor): void {
  checkTensor(ids, op, 'ids');
  if (ids.dtype !== 'i32') throw new TypeError(`${op}: argument 'ids' is ${ids.dtype}, expected i32`);
}

export function embedding(ids: Tensor, table: Tensor, options?: { out?: Tensor }): Tensor {
  const op = 'ops.embedding';
  const opts = checkOptions(op, options);
  checkIds(op, ids);
  checkTensor(table, op, 'table');
  if (table.ndim !== 2) throw new RangeError(`${op}: argument 'table' must have shape (vocab, dim), not [${table.shape.join(', ')}]`);
  const shape = [...ids.shape, table.shape[1]!];
  const out = checkOut(op, 'out', opts.out, shape, table.dtype, table.device);
  const h = native().embedding(ids.handle, table.handle, out?.handle ?? null);
  return out ?? outputTensor(h, shape, table.dtype, table.device);
}

export interface EmbeddingBackwardOptions {
  /** Write here ((V, C) f32); with `accumulate`, add to its contents. */
  out?: Tensor;
  accumulate?: boolean;
}

/** dtable[v] = Σ over tokens t with ids[t] = v of dout[t], summed in token order. */
export function embeddingBackward(dout: Tensor, ids: Tensor, vocab: number, options?: EmbeddingBackwardOptions): Tensor {
  const op = 'ops.embeddingBackward';
  const opts = checkOptions(op, options);
  checkIds(op, ids);
  checkTensor(dout, op, 'dout');
  if (!Number.isInteger(vocab) || vocab < 1) throw new RangeError(`${op}: argument 'vocab' must be a positive integer`);
  const dim = dout.shape[dout.ndim - 1] ?? 0;
  const accumulate = opts.accumulate ?? false;
  if (accumulate && !opts.out) throw new TypeError(`${op}: 'accumulate' needs 'out'`);
  const out = checkOut(op, 'out', opts.out, [vocab, dim], 'f32', dout.device);
  const h = native().embeddingBackward(dout.handle, ids.handle, vocab, out?.handle ?? null, accumulate);
  return out ?? outputTensor(h, [vocab, dim], 'f32', dout.device);
}
