/**
 * The fused policy-gradient loss over the LM head (QwenLong-L1.5 §2, Eq. 4, 8–9): logits are computed a chunk of
 * tokens at a time in an f32 workspace, so T×V logits never exist.
 *
 *   hidden: (T, H), weight: (V, H) (f32, f16 or bf16), targets: (T) i32, advantages: (T) f32 (each sequence's
 *   advantage on its tokens), cuSeqlens: (B+1), groupIds: (B), tokenMask: (T) optional, oldLogp: (T) optional.
 *
 * The host folds aggregation, masks and AEPO's dropping into one coefficient per token (d loss / d l_t); the native
 * op does the rest. See docs/api.md for the aggregation modes.
 */
import { native } from '../native/addon.js';
import { describe } from '../native/device.js';
import { Tensor, checkTensor } from '../native/tensor.js';
import { checkFinite, checkOptions, checkOut, outputTensor } from './checks.js';

export type Aggregation = 'token-mean' | 'group-token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum-norm';

export interface PolicyLossNormalizers {
  /** token-mean: the whole batch's count of counted tokens. */
  tokens?: number;
  /** group-token-mean: the whole batch's number of groups, and each group's count of counted tokens. */
  groups?: number;
  groupTokens?: Record<string, number> | Map<string | number, number>;
  /** seq-mean-token-mean: the whole batch's number of (non-empty) sequences. */
  sequences?: number;
}

export interface PolicyLossInput {
  hidden: Tensor;
  weight: Tensor;
  targets: Tensor | Int32Array | readonly number[];
  advantages: Tensor | Float32Array | readonly number[];
  cuSeqlens: Int32Array | readonly number[];
  groupIds?: readonly (string | number)[];
  tokenMask?: ArrayLike<number>;
  oldLogp?: Tensor | Float32Array | readonly number[];
  temperature?: number;
  clipLow?: number;
  clipHigh?: number;
  /** Dual-clip bound c > 1 for A < 0 (off by default). */
  dualClip?: number;
  aggregation?: Aggregation;
  /** seq-mean-token-sum-norm's divisor. */
  lossScale?: number;
  normalizers?: PolicyLossNormalizers;
  /** AEPO: 'zero' keeps negative sequences' tokens in the normalizer but drops their gradient; 'remove' drops both. */
  dropNegative?: false | 'zero' | 'remove';
  /**
   * Bytes for the logits chunk (f32, plus a 2-byte copy for bf16/f16 gradients). Default: 128 MiB on the CPU; on
   * CUDA enough for 2048 rows (a chunk's GEMMs then fill the card: dHidden has only rows x H outputs), at most 2 GiB.
   */
  workspaceBytes?: number;
  /** Compute dHidden and dWeight (default true). */
  grads?: boolean;
  dHiddenOut?: Tensor;
  dWeightOut?: Tensor;
}

export interface PolicyLossOutput {
  /** () f32: Σ_t coef_t · l_t. */
  loss: Tensor;
  /** () f32: mean −logp over the unmasked tokens. */
  nll: Tensor;
  logp: Tensor;
  entropy: Tensor;
  /** (T, H) f32 and (V, H) f32, or null with `grads: false`. */
  dHidden: Tensor | null;
  dWeight: Tensor | null;
}

const op = 'ops.policyLoss';

function hostNumbers(arg: string, value: unknown, n: number, opName = op): Float64Array {
  if (Tensor.isTensor(value)) {
    if (value.device !== 'cpu') throw new TypeError(`${opName}: '${arg}' must be on the cpu (the host computes the aggregation from it)`);
    value = value.readInto(new (value.dtype === 'i32' ? Int32Array : Float32Array)(value.size));
  }
  if (!value || typeof value !== 'object' || typeof (value as ArrayLike<number>).length !== 'number') throw new TypeError(`${opName}: '${arg}' must be an array of numbers, not ${describe(value)}`);
  let out: Float64Array;
  try {
    out = Float64Array.from(value as ArrayLike<number>);
  } catch (err) {
    throw new TypeError(`${opName}: '${arg}' cannot be read: ${(err as Error).message}`);
  }
  if (n >= 0 && out.length !== n) throw new RangeError(`${opName}: '${arg}' has ${out.length} entries, expected ${n}`);
  return out;
}

function toDevice(arg: string, value: unknown, n: number, dtype: 'i32' | 'f32', device: Tensor['device']): { t: Tensor; owned: boolean } {
  if (Tensor.isTensor(value)) {
    checkTensor(value, op, arg);
    if (value.dtype !== dtype || value.size !== n) throw new TypeError(`${op}: '${arg}' must be a ${dtype} tensor of ${n} elements`);
    if (value.device === device) return { t: value, owned: false };
    return { t: value.to(device), owned: true };
  }
  const host = hostNumbers(arg, value, n);
  if (dtype === 'i32' && host.some((v) => !Number.isInteger(v))) throw new RangeError(`${op}: '${arg}' must hold integers`);
  return { t: Tensor.from(dtype === 'i32' ? Int32Array.from(host) : Float32Array.from(host), [n], { device }), owned: true };
}

type CoefficientOptions = Pick<PolicyLossInput, 'groupIds' | 'tokenMask' | 'aggregation' | 'lossScale' | 'normalizers' | 'dropNegative'>;

/** The per-token coefficient d loss / d l_t for an aggregation, masks and AEPO's dropping; and the nll mask. */
export function policyLossCoefficients(
  tokens: number,
  cuSeqlens: Int32Array | readonly number[],
  advantages: ArrayLike<number>,
  options?: CoefficientOptions,
): { coef: Float32Array; mask: Float32Array } {
  const name = 'ops.policyLossCoefficients';
  if (typeof tokens !== 'number' || !Number.isInteger(tokens) || tokens < 0 || tokens > 2 ** 31) throw new RangeError(`${name}: argument 'tokens' must be a non-negative integer`);
  const opts = checkOptions(name, options);
  return coefficients(name, tokens, Array.from(hostNumbers('cuSeqlens', cuSeqlens, -1, name)), hostNumbers('advantages', advantages, tokens, name), opts);
}

function coefficients(op: string, tokens: number, cu: number[], advantages: ArrayLike<number>, opts: CoefficientOptions): { coef: Float32Array; mask: Float32Array } {
  if (cu.length < 1 || cu[0] !== 0 || cu[cu.length - 1] !== tokens) throw new RangeError(`${op}: 'cuSeqlens' must start at 0 and end at T = ${tokens}`);
  for (let b = 1; b < cu.length; b++) if (!Number.isInteger(cu[b]) || cu[b]! < cu[b - 1]!) throw new RangeError(`${op}: 'cuSeqlens' must be non-decreasing integers (at ${b})`);
  const B = cu.length - 1;
  const aggregation = opts.aggregation ?? 'token-mean';
  if (!['token-mean', 'group-token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'].includes(aggregation)) throw new TypeError(`${op}: unknown aggregation '${String(aggregation)}'`);
  const drop = opts.dropNegative ?? false;
  if (drop !== false && drop !== 'zero' && drop !== 'remove') throw new TypeError(`${op}: 'dropNegative' must be false, 'zero' or 'remove'`);
  const mask = new Float32Array(tokens).fill(1);
  if (opts.tokenMask !== undefined) {
    const m = hostNumbers('tokenMask', opts.tokenMask, tokens, op);
    for (let t = 0; t < tokens; t++) mask[t] = m[t] ? 1 : 0;
  }
  let groups: (string | number)[] | null = null;
  if (opts.groupIds !== undefined) {
    if (!Array.isArray(opts.groupIds)) throw new TypeError(`${op}: 'groupIds' must be an array`);
    groups = Array.from(opts.groupIds);
  }
  if (aggregation === 'group-token-mean' && !groups) throw new TypeError(`${op}: 'group-token-mean' needs 'groupIds'`);
  if (groups && groups.length !== B) throw new RangeError(`${op}: 'groupIds' has ${groups.length} entries, expected ${B} (one per sequence)`);
  // Which sequences AEPO drops, and which tokens count in the normalizer.
  const dropped = new Array<boolean>(B).fill(false);
  if (drop) for (let b = 0; b < B; b++) dropped[b] = cu[b + 1]! > cu[b]! && advantages[cu[b]!]! < 0;
  const counted = (b: number, t: number) => (drop === 'remove' && dropped[b] ? 0 : mask[t]!);
  const seqTokens = new Float64Array(B);
  for (let b = 0; b < B; b++) for (let t = cu[b]!; t < cu[b + 1]!; t++) seqTokens[b] = seqTokens[b]! + counted(b, t);
  const n = opts.normalizers ?? {};
  const perSeqDivisor = new Float64Array(B);
  if (aggregation === 'token-mean') {
    const total = n.tokens ?? seqTokens.reduce((a, x) => a + x, 0);
    perSeqDivisor.fill(total);
  } else if (aggregation === 'seq-mean-token-mean') {
    const sequences = n.sequences ?? seqTokens.filter((x) => x > 0).length;
    for (let b = 0; b < B; b++) perSeqDivisor[b] = sequences * seqTokens[b]!;
  } else if (aggregation === 'seq-mean-token-sum-norm') {
    const scale = opts.lossScale;
    if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`${op}: 'seq-mean-token-sum-norm' needs a positive 'lossScale'`);
    perSeqDivisor.fill(scale);
  } else {
    const groupTokens = new Map<string | number, number>();
    for (let b = 0; b < B; b++) groupTokens.set(groups![b]!, (groupTokens.get(groups![b]!) ?? 0) + seqTokens[b]!);
    const given = n.groupTokens instanceof Map ? n.groupTokens : n.groupTokens ? new Map(Object.entries(n.groupTokens)) : null;
    const groupCount = n.groups ?? [...groupTokens.values()].filter((x) => x > 0).length;
    for (let b = 0; b < B; b++) {
      const g = groups![b]!;
      const tokensOfGroup = given ? (given.get(g) ?? given.get(String(g))) : groupTokens.get(g);
      if (tokensOfGroup === undefined) throw new RangeError(`${op}: normalizers.groupTokens has no entry for group '${String(g)}'`);
      perSeqDivisor[b] = groupCount * tokensOfGroup;
    }
  }
  const coef = new Float32Array(tokens);
  for (let b = 0; b < B; b++) {
    if (dropped[b] || !(perSeqDivisor[b]! > 0)) continue;
    for (let t = cu[b]!; t < cu[b + 1]!; t++) coef[t] = mask[t]! / perSeqDivisor[b]!;
  }
  return { coef, mask };
}

export function policyLoss(input: PolicyLossInput): PolicyLossOutput {
  const opts = checkOptions(op, input);
  const hidden = checkTensor(opts.hidden, op, 'hidden');
  const weight = checkTensor(opts.weight, op, 'weight');
  if (hidden.ndim !== 2 || weight.ndim !== 2 || weight.shape[1] !== hidden.shape[1]) {
    throw new RangeError(`${op}: 'hidden' must be (T, H) and 'weight' (V, H); got [${hidden.shape.join(', ')}] and [${weight.shape.join(', ')}]`);
  }
  const T = hidden.shape[0]!, H = hidden.shape[1]!, V = weight.shape[0]!;
  const device = hidden.device;
  const advantagesHost = hostNumbers('advantages', opts.advantages, T);
  const { coef, mask } = coefficients(op, T, Array.from(hostNumbers('cuSeqlens', opts.cuSeqlens ?? [0, T], -1)), advantagesHost, opts);
  const temperature = checkFinite(op, 'temperature', opts.temperature ?? 1);
  const clipLow = checkFinite(op, 'clipLow', opts.clipLow ?? 0.2);
  const clipHigh = checkFinite(op, 'clipHigh', opts.clipHigh ?? 0.28);
  const dualClip = opts.dualClip === undefined ? 0 : checkFinite(op, 'dualClip', opts.dualClip);
  const grads = opts.grads ?? true;
  const workspace = checkFinite(op, 'workspaceBytes', opts.workspaceBytes ?? defaultWorkspace(device, T, V, hidden.dtype !== 'f32' && grads));
  const dHiddenOut = grads ? checkOut(op, 'dHiddenOut', opts.dHiddenOut, [T, H], 'f32', device) : undefined;
  const dWeightOut = grads ? checkOut(op, 'dWeightOut', opts.dWeightOut, [V, H], 'f32', device) : undefined;
  const owned: Tensor[] = [];
  const dev = (arg: string, value: unknown, dtype: 'i32' | 'f32') => {
    const { t, owned: own } = toDevice(arg, value, T, dtype, device);
    if (own) owned.push(t);
    return t;
  };
  if (!Tensor.isTensor(opts.targets)) {
    // Host targets are checked here, so every device names the first bad position (a device check can only say
    // that one is out of range).
    const host = hostNumbers('targets', opts.targets, T);
    const bad = host.findIndex((v) => !(v >= 0 && v < V));
    if (bad >= 0) throw new RangeError(`${op}: targets[${bad}] = ${host[bad]} is outside [0, ${V})`);
  }
  try {
    const targets = dev('targets', opts.targets, 'i32');
    const coefT = dev('coef', coef, 'f32');
    const advT = dev('advantages', Tensor.isTensor(opts.advantages) && opts.advantages.device === device ? opts.advantages : Float32Array.from(advantagesHost), 'f32');
    const maskT = dev('mask', mask, 'f32');
    const oldT = opts.oldLogp === undefined ? null : dev('oldLogp', opts.oldLogp, 'f32');
    const [loss, nll, logp, entropy, dh, dw] = native().policyLoss(
      hidden.handle, weight.handle, targets.handle, coefT.handle, advT.handle, oldT?.handle ?? null, maskT.handle,
      temperature, clipLow, clipHigh, dualClip, workspace, grads, dHiddenOut?.handle ?? null, dWeightOut?.handle ?? null,
    );
    return {
      loss: outputTensor(loss, [], 'f32', device),
      nll: outputTensor(nll, [], 'f32', device),
      logp: outputTensor(logp, [T], 'f32', device),
      entropy: outputTensor(entropy, [T], 'f32', device),
      dHidden: grads ? (dHiddenOut ?? outputTensor(dh!, [T, H], 'f32', device)) : null,
      dWeight: grads ? (dWeightOut ?? outputTensor(dw!, [V, H], 'f32', device)) : null,
    };
  } finally {
    for (const t of owned) t.dispose();
  }
}

/** The default workspace: 128 MiB on the CPU; on CUDA room for min(T, 2048) rows, between 128 MiB and 2 GiB. */
export function defaultWorkspace(device: Tensor['device'], T: number, V: number, halfCopy: boolean): number {
  const floor = 128 * 2 ** 20;
  if (device !== 'cuda') return floor;
  const rowBytes = V * (4 + (halfCopy ? 2 : 0));
  return Math.min(2 ** 31, Math.max(floor, Math.min(T, 2048) * rowBytes));
}
