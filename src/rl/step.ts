/**
 * One on-policy RL update of the recipe, in two halves a trainer can also call apart:
 * - `rollout`: G responses per prompt from the policy, in one batched generation, scored;
 * - `policyUpdate`: task-specific group advantages (and AEPO's switch from the rollouts' own entropies), the fused
 *   policy loss over the response tokens, backward through the model, gradient clipping, AdamW. With
 *   `minibatches > 1` the rollouts are split by group into that many updates whose ratio is taken against the
 *   sampling log-probabilities (so PPO/DAPO clipping acts from the second one on).
 * A non-finite reward, loss or gradient skips the update with a reason and leaves the weights and the optimizer
 * untouched.
 */
import { type CausalLM, tokenIds } from '../model/model.js';
import { describe } from '../native/device.js';
import type { AdamW } from '../model/optim.js';
import { gatherRows, responseRows, scatterRows } from '../model/response.js';
import type { GroupAdvantageOptions } from '../ops/advantages.js';
import * as ops from '../ops/index.js';
import type { Aggregation, PolicyLossOutput } from '../ops/policy_loss.js';
import type { Tensor } from '../native/tensor.js';
import type { AepoController } from './aepo.js';
import { computePolicyLoss, decidePolicy, type PolicyDecision, type ScoredRollout } from './loss.js';

export interface RlPrompt {
  /** Prompt token ids (chat template and BOS already applied). */
  ids: readonly number[];
  /** The task type: advantages are normalized by task, and the sampler balances tasks. */
  taskId: string | number;
  /** Scores a response (token ids, the stop token included when one ended it); any finite number. */
  score(response: readonly number[]): number;
}

export interface RolloutOptions {
  /** Responses per prompt (default 8). */
  group?: number;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stopIds?: readonly number[];
  seed?: number;
}

export interface UpdateOptions {
  advantage?: GroupAdvantageOptions;
  aggregation?: Aggregation;
  aepo?: AepoController;
  /** Gradient-norm clip (default 1; 0 turns it off). */
  clipNorm?: number;
  lr?: number;
  /** Updates per batch, split by group (default 1: strictly on-policy). */
  minibatches?: number;
  /** PPO clip bounds for the ratio (used from the second minibatch on). */
  clipLow?: number;
  clipHigh?: number;
  /** The sampling temperature (the recorded log-probabilities are of the tempered distribution). */
  temperature?: number;
}

export type RlStepOptions = RolloutOptions & UpdateOptions;

export interface Rollout extends ScoredRollout {
  /** The prompt's token ids. */
  prompt: readonly number[];
  /** log p of each token at sampling time. */
  sampleLogp: number[];
  finishReason: 'stop' | 'length';
}

export interface UpdateMetrics {
  batchEntropy: number | null;
  dropNegative: boolean;
  nll: number;
  gradNorm: number;
  /** Why the update was skipped (weights untouched), or null. */
  skipped: string | null;
  /** Tokens through the training forward and backward (prompts and responses). */
  trainTokens: number;
}

export interface RlStepMetrics extends UpdateMetrics {
  rewardMean: number;
  rewardByTask: Record<string, number>;
  /** Groups whose rewards were all equal (no learning signal under group normalization). */
  zeroVarianceGroups: number;
  responseTokensMean: number;
  rollouts: number;
}

/** G responses per prompt, scored; groupId is the prompt's index. */
export function rollout(model: CausalLM, prompts: readonly RlPrompt[], options: RolloutOptions = {}): Rollout[] {
  const G = options.group ?? 8;
  if (!Number.isInteger(G) || G < 1) throw new RangeError('rollout: group must be a positive integer');
  if (!Array.isArray(prompts) || prompts.length === 0) throw new RangeError('rollout: no prompts');
  // checked before any generation: a bad prompt found after minutes of sampling would waste them
  prompts.forEach((p: RlPrompt, i) => {
    if (p === null || typeof p !== 'object') throw new TypeError(`rollout: prompts[${i}] must be an object { ids, taskId, score }, not ${describe(p)}`);
    tokenIds(`rollout: prompts[${i}].ids`, p.ids, model.config.vocabSize);
    if (typeof p.taskId !== 'string' && typeof p.taskId !== 'number') throw new TypeError(`rollout: prompts[${i}].taskId must be a string or a number, not ${describe(p.taskId)}`);
    if (typeof p.score !== 'function') throw new TypeError(`rollout: prompts[${i}].score must be a function (response token ids) => number, not ${describe(p.score)}`);
  });
  const batch = prompts.flatMap((p) => Array.from({ length: G }, () => p.ids));
  const gens = model.generate(batch, { maxTokens: options.maxTokens ?? 256, temperature: options.temperature ?? 0.7, topP: options.topP ?? 0.95, stopIds: options.stopIds, seed: options.seed });
  return gens.map((g, i) => {
    const p = prompts[Math.floor(i / G)]!;
    if (g.tokens.length === 0) throw new RangeError('rollout: a rollout has no tokens (maxTokens must be at least 1 and prompts shorter than the model window)');
    const reward: unknown = p.score(g.tokens);
    if (typeof reward !== 'number') throw new TypeError(`rollout: prompts[${Math.floor(i / G)}].score returned ${describe(reward)}, not a number`);
    return { groupId: Math.floor(i / G), taskId: p.taskId, reward, tokens: g.tokens, tokenEntropy: g.entropies, prompt: p.ids, sampleLogp: g.logprobs, finishReason: g.finishReason };
  });
}

/** Groups whose rewards are all equal. */
export function zeroVarianceGroups(rollouts: readonly Pick<ScoredRollout, 'groupId' | 'reward'>[]): Set<string | number> {
  const byGroup = new Map<string | number, number[]>();
  for (const r of rollouts) byGroup.set(r.groupId, [...(byGroup.get(r.groupId) ?? []), r.reward]);
  return new Set([...byGroup].filter(([, rs]) => rs.every((x) => x === rs[0])).map(([g]) => g));
}

/** The policy-gradient update(s) from scored rollouts. */
export async function policyUpdate(model: CausalLM, optimizer: AdamW, rollouts: readonly Rollout[], options: UpdateOptions = {}): Promise<UpdateMetrics> {
  if (rollouts.length === 0) throw new RangeError('policyUpdate: no rollouts');
  const bad = rollouts.findIndex((r) => !Number.isFinite(r.reward));
  if (bad >= 0) return { batchEntropy: null, dropNegative: false, nll: NaN, gradNorm: NaN, skipped: `the reward of rollout ${bad} is ${rollouts[bad]!.reward}`, trainTokens: 0 };
  const M = options.minibatches ?? 1;
  if (!Number.isInteger(M) || M < 1) throw new RangeError('policyUpdate: minibatches must be a positive integer');
  const groups = [...new Set(rollouts.map((r) => r.groupId))];
  if (M > groups.length) throw new RangeError(`policyUpdate: ${M} minibatches for ${groups.length} groups`);
  // Advantages and AEPO's decision over the whole batch, once; each minibatch then uses its share.
  const decision = await decidePolicy(rollouts, { advantage: options.advantage, aepo: options.aepo });
  const index = new Map(rollouts.map((r, i) => [r, i]));
  let nllSum = 0, normMax = 0, tokens = 0, targets = 0;
  for (let m = 0; m < M; m++) {
    const mine = new Set(groups.filter((_, i) => i % M === m));
    const part = rollouts.filter((r) => mine.has(r.groupId));
    const share: PolicyDecision = { ...decision, advantages: Float64Array.from(part, (r) => decision.advantages[index.get(r)!]!) };
    const res = await updateOnce(model, optimizer, part, options, m > 0, share);
    if (res.skipped) return { ...res, trainTokens: tokens };
    const responseTokens = part.reduce((a, r) => a + r.tokens.length, 0);
    nllSum += res.nll * responseTokens;
    targets += responseTokens;
    normMax = Math.max(normMax, res.gradNorm);
    tokens += res.trainTokens;
  }
  return { batchEntropy: decision.batchEntropy, dropNegative: decision.dropNegative !== false, nll: nllSum / targets, gradNorm: normMax, skipped: null, trainTokens: tokens };
}

async function updateOnce(model: CausalLM, optimizer: AdamW, part: readonly Rollout[], options: UpdateOptions, offPolicy: boolean, decision: PolicyDecision): Promise<UpdateMetrics> {
  const step = await gradientStep(model, optimizer, part.map((r) => ({ prompt: r.prompt, response: Array.from(r.tokens) })), (hidden) =>
    computePolicyLoss({
      rollouts: offPolicy ? part.map((r) => ({ ...r, oldLogp: r.sampleLogp })) : part, hidden, weight: model.lmHead, decision,
      aggregation: options.aggregation ?? 'group-token-mean', temperature: options.temperature, clipLow: options.clipLow, clipHigh: options.clipHigh,
    }), options);
  return { batchEntropy: decision.batchEntropy, dropNegative: decision.dropNegative !== false, ...step };
}

export interface GradientStepResult {
  nll: number;
  gradNorm: number;
  /** Why the optimizer step was skipped (weights untouched), or null. */
  skipped: string | null;
  /** Tokens through the forward and backward (prompts and responses). */
  trainTokens: number;
}

/**
 * The training half shared by SFT and RL: pack prompt + response sequences, forward, the loss over the rows that
 * predict the responses (`loss` gets those hidden states), backward through the model, the gradient norm, then
 * clipping and one AdamW step unless the loss or the norm is not finite.
 */
export async function gradientStep(
  model: CausalLM, optimizer: AdamW, seqs: readonly { prompt: readonly number[]; response: readonly number[] }[],
  loss: (hidden: Tensor) => Promise<PolicyLossOutput> | PolicyLossOutput, opts: { clipNorm?: number; lr?: number } = {},
): Promise<GradientStepResult> {
  const ids: number[] = [], cu = [0], promptLens: number[] = [];
  for (const q of seqs) {
    ids.push(...q.prompt, ...q.response);
    cu.push(ids.length);
    promptLens.push(q.prompt.length);
  }
  model.zeroGrad();
  const hidden = model.forward(ids, { cuSeqlens: cu, train: true, returnHidden: true });
  const rows = responseRows(ids, cu, promptLens);
  const responseHidden = gatherRows(hidden, rows.rows);
  hidden.dispose();
  let out: PolicyLossOutput;
  try {
    out = await loss(responseHidden);
  } finally {
    responseHidden.dispose();
  }
  const dHidden = scatterRows(out.dHidden!, rows.rows, ids.length);
  model.backward(dHidden, out.dWeight!);
  const nll = await out.nll.item();
  const lossValue = await out.loss.item();
  for (const t of [dHidden, out.loss, out.nll, out.logp, out.entropy, out.dHidden!, out.dWeight!]) t.dispose();
  const grads = model.gradients();
  // the norm first (clipping a non-finite gradient would spread the NaN into the scale)
  const normT = ops.gradNorm([...grads.values()]);
  const gradNorm = await normT.item();
  normT.dispose();
  const base = { nll, gradNorm, trainTokens: ids.length };
  if (!Number.isFinite(lossValue) || !Number.isFinite(nll)) return { ...base, skipped: `the loss is ${lossValue} (nll ${nll})` };
  if (!Number.isFinite(gradNorm)) return { ...base, skipped: `the gradient norm is ${gradNorm}` };
  const clip = opts.clipNorm ?? 1;
  if (clip > 0) ops.clipGrad([...grads.values()], clip).dispose();
  optimizer.update(grads, opts.lr === undefined ? {} : { lr: opts.lr });
  return { ...base, skipped: null };
}

/** Rollouts, then one update (or `minibatches` of them): the recipe's step. */
export async function rlStep(model: CausalLM, optimizer: AdamW, prompts: readonly RlPrompt[], options: RlStepOptions = {}): Promise<RlStepMetrics> {
  const rollouts = rollout(model, prompts, options);
  const update = await policyUpdate(model, optimizer, rollouts, { ...options, temperature: options.temperature ?? 0.7 });
  return { ...update, ...rolloutMetrics(rollouts) };
}

/** Reward per task, zero-variance groups and response length of a batch. */
export function rolloutMetrics(rollouts: readonly Rollout[]): Pick<RlStepMetrics, 'rewardMean' | 'rewardByTask' | 'zeroVarianceGroups' | 'responseTokensMean' | 'rollouts'> {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const byTask = new Map<string, number[]>();
  for (const r of rollouts) byTask.set(String(r.taskId), [...(byTask.get(String(r.taskId)) ?? []), r.reward]);
  return {
    rewardMean: mean(rollouts.map((r) => r.reward)),
    rewardByTask: Object.fromEntries([...byTask].map(([k, v]) => [k, mean(v)])),
    zeroVarianceGroups: zeroVarianceGroups(rollouts).size,
    responseTokensMean: mean(rollouts.map((r) => r.tokens.length)),
    rollouts: rollouts.length,
  };
}
