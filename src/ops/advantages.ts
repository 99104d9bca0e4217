/**
 * Advantages and batch entropy for GRPO-style updates (QwenLong-L1.5 Eq. 3, 7, 11). Computed in f64 on the host:
 * these are per-response (B) quantities, small beside the model's work.
 */
import { Tensor } from '../native/tensor.js';
import { describe } from '../native/device.js';

export interface GroupAdvantageOptions {
  /**
   * The std that divides the group-centred reward: over the batch's responses of the same task ('task', the paper's
   * Eq. 7, default), of the same group ('group', GRPO), of the whole batch ('batch'), or none ('none').
   */
  std?: 'task' | 'group' | 'batch' | 'none';
  eps?: number;
  /** A group of one response: mean 0 ('keep', verl's convention, default) or advantage 0 ('zero', TRL's). */
  singleton?: 'keep' | 'zero';
}

/** Array.from with errors (detached buffers, hostile iterables) that name the op and the argument. */
function listOf<T>(op: string, arg: string, values: ArrayLike<T>): T[] {
  try {
    return Array.from(values);
  } catch (err) {
    throw new TypeError(`${op}: argument '${arg}' cannot be read: ${(err as Error).message}`);
  }
}

function checkIdList(op: string, arg: string, values: unknown, n: number): (string | number)[] {
  if (!values || typeof values !== 'object' || typeof (values as ArrayLike<unknown>).length !== 'number') throw new TypeError(`${op}: argument '${arg}' must be an array, not ${describe(values)}`);
  const list = listOf(op, arg, values as ArrayLike<unknown>);
  if (list.length !== n) throw new RangeError(`${op}: argument '${arg}' has ${list.length} entries, expected ${n} (one per response)`);
  list.forEach((v, i) => {
    if (typeof v !== 'string' && (typeof v !== 'number' || !Number.isFinite(v))) throw new TypeError(`${op}: ${arg}[${i}] must be a string or a finite number`);
  });
  return list as (string | number)[];
}

/** Unbiased std of `xs`; 1 for fewer than 2 values. */
function unbiasedStd(xs: number[]): number {
  if (xs.length < 2) return 1;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
}

/** A_i = (r_i − mean of its group) / (std + eps), one advantage per response. */
export function groupAdvantages(
  rewards: ArrayLike<number>,
  groupIds: ArrayLike<string | number>,
  taskIds: ArrayLike<string | number>,
  options: GroupAdvantageOptions = {},
): Float64Array {
  const op = 'ops.groupAdvantages';
  if (!rewards || typeof rewards !== 'object' || typeof rewards.length !== 'number') throw new TypeError(`${op}: argument 'rewards' must be an array of numbers`);
  const r = listOf(op, 'rewards', rewards).map((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${op}: rewards[${i}] = ${describe(v)} is not a finite number`);
    return v;
  });
  const groups = checkIdList(op, 'groupIds', groupIds, r.length);
  const tasks = checkIdList(op, 'taskIds', taskIds, r.length);
  const std = options.std ?? 'task';
  const eps = options.eps ?? 1e-6;
  const singleton = options.singleton ?? 'keep';
  if (!['task', 'group', 'batch', 'none'].includes(std)) throw new TypeError(`${op}: 'std' must be task, group, batch or none`);
  if (!['keep', 'zero'].includes(singleton)) throw new TypeError(`${op}: 'singleton' must be keep or zero`);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`${op}: 'eps' must be a finite number >= 0`);

  const members = (keys: (string | number)[]) => {
    const m = new Map<string | number, number[]>();
    keys.forEach((k, i) => (m.get(k) ?? m.set(k, []).get(k)!).push(i));
    return m;
  };
  const byGroup = members(groups);
  const groupMean = new Map<string | number, number>();
  for (const [g, idx] of byGroup) groupMean.set(g, idx.length < 2 ? 0 : idx.reduce((a, i) => a + r[i]!, 0) / idx.length);
  const stdOf = new Float64Array(r.length).fill(1);
  if (std !== 'none') {
    const sets = std === 'task' ? members(tasks) : std === 'group' ? byGroup : new Map([['all', r.map((_, i) => i)]]);
    for (const idx of sets.values()) {
      const s = unbiasedStd(idx.map((i) => r[i]!));
      for (const i of idx) stdOf[i] = s;
    }
  }
  const out = new Float64Array(r.length);
  for (let i = 0; i < r.length; i++) {
    if (singleton === 'zero' && byGroup.get(groups[i]!)!.length < 2) continue;
    const centred = r[i]! - groupMean.get(groups[i]!)!;
    out[i] = std === 'none' ? centred : centred / (stdOf[i]! + eps);
  }
  return out;
}

function readCuSeqlens(op: string, cuSeqlens: unknown, total: number): Int32Array {
  if (!(cuSeqlens instanceof Int32Array) && !Array.isArray(cuSeqlens)) throw new TypeError(`${op}: argument 'cuSeqlens' must be an Int32Array or an array`);
  const cu = Int32Array.from(listOf(op, 'cuSeqlens', cuSeqlens as ArrayLike<number>));
  if (cu.length < 1 || cu[0] !== 0 || cu[cu.length - 1] !== total) throw new RangeError(`${op}: 'cuSeqlens' must start at 0 and end at ${total}`);
  for (let b = 1; b < cu.length; b++) if (cu[b]! < cu[b - 1]!) throw new RangeError(`${op}: 'cuSeqlens' must not decrease (at ${b})`);
  return cu;
}

/** Each sequence's advantage on each of its tokens: (T) f32, for ops.policyLoss. */
export function broadcastAdvantages(advantages: ArrayLike<number>, cuSeqlens: Int32Array | readonly number[]): Float32Array {
  const op = 'ops.broadcastAdvantages';
  if (!advantages || typeof advantages !== 'object' || typeof advantages.length !== 'number') throw new TypeError(`${op}: argument 'advantages' must be an array of numbers`);
  const last = Array.isArray(cuSeqlens) || cuSeqlens instanceof Int32Array ? (cuSeqlens[cuSeqlens.length - 1] ?? 0) : 0;
  const cu = readCuSeqlens(op, cuSeqlens, last);
  if (advantages.length !== cu.length - 1) throw new RangeError(`${op}: ${advantages.length} advantages for ${cu.length - 1} sequences`);
  const out = new Float32Array(cu[cu.length - 1]!);
  for (let b = 0; b + 1 < cu.length; b++) out.fill(advantages[b]!, cu[b]!, cu[b + 1]!);
  return out;
}

/**
 * The batch entropy of Eq. 11: the mean over non-empty sequences of each sequence's mean token entropy (tokens
 * with mask 0 left out; a sequence with no unmasked token is empty).
 */
export async function batchEntropy(entropy: Tensor | ArrayLike<number>, cuSeqlens: Int32Array | readonly number[], tokenMask?: ArrayLike<number>): Promise<number> {
  const op = 'ops.batchEntropy';
  let values: ArrayLike<number>;
  if (Tensor.isTensor(entropy)) {
    if (entropy.dtype !== 'f32') throw new TypeError(`${op}: argument 'entropy' must be f32, not ${entropy.dtype}`);
    values = (await entropy.toArray()) as Float32Array;
  } else if (entropy && typeof entropy === 'object' && typeof entropy.length === 'number') {
    values = entropy;
  } else {
    throw new TypeError(`${op}: argument 'entropy' must be a Tensor or an array of numbers`);
  }
  const cu = readCuSeqlens(op, cuSeqlens, values.length);
  if (tokenMask && tokenMask.length !== values.length) throw new RangeError(`${op}: 'tokenMask' has ${tokenMask.length} entries, expected ${values.length}`);
  let sum = 0;
  let sequences = 0;
  for (let b = 0; b + 1 < cu.length; b++) {
    let s = 0;
    let n = 0;
    for (let t = cu[b]!; t < cu[b + 1]!; t++) {
      if (tokenMask && !tokenMask[t]) continue;
      s += values[t]!;
      n++;
    }
    if (n > 0) {
      sum += s / n;
      sequences++;
    }
  }
  return sequences ? sum / sequences : 0;
}
