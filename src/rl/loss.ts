/**
 * From a batch of scored rollouts to the policy loss and its gradients: advantages per response (task-specific by
 * default), broadcast to the response tokens; AEPO's decision from the rollouts' own token entropies (recorded at
 * generation, so no extra forward pass); then the fused loss over the LM head.
 */
import type { Tensor } from '../native/tensor.js';
import { batchEntropy, broadcastAdvantages, groupAdvantages, type GroupAdvantageOptions } from '../ops/advantages.js';
import { policyLoss, type PolicyLossInput, type PolicyLossOutput } from '../ops/policy_loss.js';
import type { AepoController } from './aepo.js';

export interface ScoredRollout {
  /** The prompt this response answers (its GRPO group). */
  groupId: string | number;
  /** The task type (task-specific std, task-balanced sampling). */
  taskId: string | number;
  reward: number;
  /** The response's token ids (the targets). */
  tokens: ArrayLike<number>;
  /** Each response token's full-vocabulary entropy at sampling time (for AEPO). */
  tokenEntropy?: ArrayLike<number>;
  /** Log-probabilities of the tokens under the policy that sampled them (off-policy updates only). */
  oldLogp?: ArrayLike<number>;
  /** 0 for tokens that do not count (e.g. tool output inside a response). */
  mask?: ArrayLike<number>;
}

export interface PolicyLossBatch extends Omit<PolicyLossInput, 'targets' | 'advantages' | 'cuSeqlens' | 'groupIds' | 'tokenMask' | 'oldLogp' | 'dropNegative'> {
  rollouts: readonly ScoredRollout[];
  /** (T, H): the final hidden states at the positions that predict the rollouts' tokens, in rollout order. */
  hidden: Tensor;
  weight: Tensor;
  advantage?: GroupAdvantageOptions;
  /** AEPO: when given, its decision from this batch's entropy sets `dropNegative`. */
  aepo?: AepoController;
  /** How AEPO drops negative sequences (default 'zero', the paper's Eq. 8–9). */
  aepoMode?: 'zero' | 'remove';
  /** Advantages and AEPO's decision made already (over a whole batch this one is a part of): used as given. */
  decision?: PolicyDecision;
}

/** What a batch's rewards and entropies decide before the loss: one advantage per rollout, AEPO's switch. */
export interface PolicyDecision {
  advantages: Float64Array;
  batchEntropy: number | null;
  dropNegative: false | 'zero' | 'remove';
}

function flatten(rollouts: readonly ScoredRollout[], cu: Int32Array, pick: (r: ScoredRollout) => ArrayLike<number> | undefined, what: string, fill: number): Float32Array | null {
  if (rollouts.every((r) => pick(r) === undefined)) return null;
  const out = new Float32Array(cu[rollouts.length]!).fill(fill);
  rollouts.forEach((r, i) => {
    const values = pick(r);
    if (values === undefined) return;
    if (values.length !== r.tokens.length) throw new RangeError(`computePolicyLoss: rollouts[${i}].${what} has ${values.length} entries for ${r.tokens.length} tokens`);
    out.set(Array.from(values), cu[i]!);
  });
  return out;
}

function prefixSums(rollouts: readonly ScoredRollout[]): Int32Array {
  const cu = new Int32Array(rollouts.length + 1);
  rollouts.forEach((r, i) => (cu[i + 1] = cu[i]! + r.tokens.length));
  return cu;
}

/** Task-specific group advantages and AEPO's decision (fed this batch's entropy) for a batch of rollouts. */
export async function decidePolicy(rollouts: readonly ScoredRollout[], opts: { advantage?: GroupAdvantageOptions; aepo?: AepoController; aepoMode?: 'zero' | 'remove' } = {}): Promise<PolicyDecision> {
  if (!Array.isArray(rollouts) || rollouts.length === 0) throw new RangeError('decidePolicy: the batch has no rollouts');
  const cu = prefixSums(rollouts);
  const advantages = groupAdvantages(rollouts.map((r) => r.reward), rollouts.map((r) => r.groupId), rollouts.map((r) => r.taskId), opts.advantage);
  const entropies = flatten(rollouts, cu, (r) => r.tokenEntropy, 'tokenEntropy', 0);
  const mask = flatten(rollouts, cu, (r) => r.mask, 'mask', 1);
  const entropy = entropies ? await batchEntropy(entropies, cu, mask ?? undefined) : null;
  let dropNegative: false | 'zero' | 'remove' = false;
  if (opts.aepo) {
    if (entropy === null) throw new TypeError('computePolicyLoss: AEPO needs each rollout\'s tokenEntropy');
    dropNegative = opts.aepo.update(entropy) ? (opts.aepoMode ?? 'zero') : false;
  }
  return { advantages, batchEntropy: entropy, dropNegative };
}

export interface PolicyLossResult extends PolicyLossOutput {
  /** One advantage per rollout. */
  advantages: Float64Array;
  cuSeqlens: Int32Array;
  /** Eq. 11 over the rollouts' recorded entropies (null when they have none). */
  batchEntropy: number | null;
  dropNegative: false | 'zero' | 'remove';
}

export async function computePolicyLoss(batch: PolicyLossBatch): Promise<PolicyLossResult> {
  const { rollouts, advantage, aepo, aepoMode, decision, ...rest } = batch;
  if (!Array.isArray(rollouts) || rollouts.length === 0) throw new RangeError('computePolicyLoss: the batch has no rollouts');
  const cu = prefixSums(rollouts);
  const T = cu[rollouts.length]!;
  if (batch.hidden.shape[0] !== T) throw new RangeError(`computePolicyLoss: 'hidden' has ${batch.hidden.shape[0]} rows but the rollouts have ${T} tokens`);
  if (decision && decision.advantages.length !== rollouts.length) throw new RangeError(`computePolicyLoss: the decision has ${decision.advantages.length} advantages for ${rollouts.length} rollouts`);
  const d = decision ?? (await decidePolicy(rollouts, { advantage, aepo, aepoMode }));
  const targets = new Int32Array(T);
  rollouts.forEach((r, i) => targets.set(Array.from(r.tokens), cu[i]!));
  const mask = flatten(rollouts, cu, (r) => r.mask, 'mask', 1);
  const oldLogp = flatten(rollouts, cu, (r) => r.oldLogp, 'oldLogp', 0);
  const out = policyLoss({
    ...rest,
    targets,
    advantages: broadcastAdvantages(d.advantages, cu),
    cuSeqlens: cu,
    groupIds: rollouts.map((r) => r.groupId),
    ...(mask ? { tokenMask: mask } : {}),
    ...(oldLogp ? { oldLogp } : {}),
    dropNegative: d.dropNegative,
  });
  return { ...out, advantages: d.advantages, cuSeqlens: cu, batchEntropy: d.batchEntropy, dropNegative: d.dropNegative };
}
