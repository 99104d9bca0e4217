/**
 * The matrix product: `matmul(a, b, { transA, transB, alpha, beta, out, outDtype })`
 *   = alpha · op(a) · op(b) + beta · out, where op(x) is x or its transpose.
 *
 *   a: (M, K), or (K, M) with transA; or batched (Bt, ·, ·)
 *   b: (K, N), or (N, K) with transB; or batched (Bt, ·, ·). A 2-D operand is shared by every batch entry.
 *   result: (M, N), or (Bt, M, N) when either operand is batched
 *
 * a and b share a dtype (f32, f16 or bf16) and a device; the product accumulates in f32. The result is f32 or
 * the inputs' dtype (`outDtype`, or the dtype of `out`; default the inputs'). With beta = 0 (the default) `out`
 * is written without being read. Layouts: NN (x·W), NT (x·Wᵀ, the LM head), TN (dW = xᵀ·dy), TT.
 * On the CPU the result is bitwise identical from run to run and across thread counts for a given ISA.
 */
import { native } from '../native/addon.js';
import { describe } from '../native/device.js';
import { type DType, Tensor, checkTensor } from '../native/tensor.js';
import { checkFinite, checkFloat, checkOptions } from './checks.js';

export interface MatmulOptions {
  /** Use aᵀ: a is stored (K, M). Default false. */
  transA?: boolean;
  /** Use bᵀ: b is stored (N, K). Default false. */
  transB?: boolean;
  /** Scale of the product. Default 1. */
  alpha?: number;
  /** Scale of what `out` holds before the call; needs `out` when not 0. Default 0. */
  beta?: number;
  /** Write the result here instead of a new tensor; must not be a or b. */
  out?: Tensor;
  /** The result's dtype: 'f32' or the inputs' dtype. Default: out's dtype, else the inputs'. */
  outDtype?: DType;
}

function checkBool(op: string, arg: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${op}: argument '${arg}' must be a boolean, not ${describe(value)}`);
  return value;
}

function checkMatrix(op: string, arg: string, t: Tensor): Tensor {
  checkFloat(op, arg, t);
  if (t.ndim !== 2 && t.ndim !== 3) {
    throw new RangeError(`${op}: argument '${arg}' has shape [${t.shape.join(', ')}]; expected 2 dimensions (rows, columns) or 3 (batch, rows, columns)`);
  }
  return t;
}

/** alpha · op(a) · op(b) + beta · out. */
export function matmul(a: Tensor, b: Tensor, options?: MatmulOptions): Tensor {
  const op = 'ops.matmul';
  const opts = checkOptions(op, options);
  checkMatrix(op, 'a', checkTensor(a, op, 'a'));
  checkMatrix(op, 'b', checkTensor(b, op, 'b'));
  if (b.dtype !== a.dtype) throw new TypeError(`${op}: argument 'b' is ${b.dtype}, expected ${a.dtype} (the dtype of 'a')`);
  if (b.device !== a.device) throw new TypeError(`${op}: argument 'b' is on ${b.device}, expected ${a.device}`);
  const transA = checkBool(op, 'transA', opts.transA ?? false);
  const transB = checkBool(op, 'transB', opts.transB ?? false);
  const alpha = checkFinite(op, 'alpha', opts.alpha ?? 1);
  const beta = checkFinite(op, 'beta', opts.beta ?? 0);

  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const [bRows, bCols] = b.shape.slice(-2) as [number, number];
  const m = transA ? aCols : aRows;
  const k = transA ? aRows : aCols;
  const kb = transB ? bCols : bRows;
  const n = transB ? bRows : bCols;
  if (kb !== k) {
    throw new RangeError(
      `${op}: argument 'b' has shape [${b.shape.join(', ')}]${transB ? ' (transposed)' : ''}, whose K = ${kb} does not match K = ${k} of 'a' [${a.shape.join(', ')}]${transA ? ' (transposed)' : ''}`,
    );
  }
  if (a.ndim === 3 && b.ndim === 3 && a.shape[0] !== b.shape[0]) {
    throw new RangeError(`${op}: argument 'b' has batch ${b.shape[0]}, expected ${a.shape[0]} (the batch of 'a') or a 2-D 'b'`);
  }
  const batch = a.ndim === 3 ? a.shape[0]! : b.ndim === 3 ? b.shape[0]! : undefined;
  const shape = batch === undefined ? [m, n] : [batch, m, n];

  const resultDtypes: DType[] = a.dtype === 'f32' ? ['f32'] : ['f32', a.dtype];
  if (opts.outDtype !== undefined && !resultDtypes.includes(opts.outDtype)) {
    throw new TypeError(`${op}: argument 'outDtype' must be ${resultDtypes.map((d) => `'${d}'`).join(' or ')} (f32 or the inputs' dtype), not ${describe(opts.outDtype)}`);
  }
  const out = opts.out === undefined ? undefined : checkTensor(opts.out, op, 'out');
  if (out) {
    if (out.device !== a.device) throw new TypeError(`${op}: argument 'out' is on ${out.device}, expected ${a.device}`);
    if (out.ndim !== shape.length || out.shape.some((d, i) => d !== shape[i])) {
      throw new RangeError(`${op}: argument 'out' has shape [${out.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    const allowed = opts.outDtype ? [opts.outDtype] : resultDtypes;
    if (!allowed.includes(out.dtype)) throw new TypeError(`${op}: argument 'out' is ${out.dtype}, expected ${allowed.join(' or ')}`);
    if (out.size > 0 && (out === a || out === b)) {
      throw new RangeError(`${op}: argument 'out' must not be 'a' or 'b' (the product cannot be written over its inputs)`);
    }
  } else if (beta !== 0) {
    throw new RangeError(`${op}: argument 'beta' is ${beta} but there is no 'out' to scale; pass out or beta = 0`);
  }
  const outDtype = out ? out.dtype : (opts.outDtype ?? a.dtype);
  const handle = native().matmul(a.handle, b.handle, out ? out.handle : null, transA, transB, alpha, beta, opts.outDtype ?? null);
  return out ?? new Tensor(handle, shape, outDtype, a.device);
}
