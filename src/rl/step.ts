/**
 * One on-policy RL update of the recipe: generate G responses per prompt with the policy, score them, compute
 * task-specific group advantages (and AEPO's switch from the rollouts' own entropies), the fused policy loss over the
 * response tokens, backpropagate through the model, clip the gradient norm, and step AdamW.
 */
import type { CausalLM } from '../model/model.js';
import type { AdamW } from '../model/optim.js';
import { gatherRows, responseRows, scatterRows } from '../model/response.js';
import type { GroupAdvantageOptions } from '../ops/advantages.js';
import * as ops from '../ops/index.js';
import type { Aggregation } from '../ops/policy_loss.js';
import type { AepoController } from './aepo.js';
import { computePolicyLoss, type ScoredRollout } from './loss.js';

export interface RlPrompt {
  /** Prompt token ids (chat template and BOS already applied). */
  ids: readonly number[];
  /** The task type: advantages are normalized by task, and the sampler balances tasks. */
  taskId: string | number;
  /** Scores a response (token ids, the stop token included when one ended it); any finite number. */
  score(response: readonly number[]): number;
}

export interface RlStepOptions {
  /** Responses per prompt (default 8). */
  group?: number;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stopIds?: readonly number[];
  seed?: number;
  advantage?: GroupAdvantageOptions;
  aggregation?: Aggregation;
  aepo?: AepoController;
  /** Gradient-norm clip (default 1; 0 turns it off). */
  clipNorm?: number;
  lr?: number;
}

export interface RlStepMetrics {
  rewardMean: number;
  rewardByTask: Record<string, number>;
  /** Groups whose rewards were all equal (no learning signal under group normalization). */
  zeroVarianceGroups: number;
  responseTokensMean: number;
  batchEntropy: number | null;
  dropNegative: boolean;
  nll: number;
  gradNorm: number;
  rollouts: number;
}

export async function rlStep(model: CausalLM, optimizer: AdamW, prompts: readonly RlPrompt[], options: RlStepOptions = {}): Promise<RlStepMetrics> {
  const G = options.group ?? 8;
  if (!Number.isInteger(G) || G < 1) throw new RangeError('rlStep: group must be a positive integer');
  if (!Array.isArray(prompts) || prompts.length === 0) throw new RangeError('rlStep: no prompts');
  // 1. Rollouts: every prompt G times, in one batched generation.
  const batch = prompts.flatMap((p) => Array.from({ length: G }, () => p.ids));
  const gens = model.generate(batch, { maxTokens: options.maxTokens ?? 256, temperature: options.temperature ?? 0.7, topP: options.topP ?? 0.95, stopIds: options.stopIds, seed: options.seed });
  const rollouts: ScoredRollout[] = gens.map((g, i) => {
    const p = prompts[Math.floor(i / G)]!;
    const reward = p.score(g.tokens);
    if (!Number.isFinite(reward)) throw new RangeError(`rlStep: the score of rollout ${i} is ${reward}, not a finite number`);
    return { groupId: Math.floor(i / G), taskId: p.taskId, reward, tokens: g.tokens, tokenEntropy: g.entropies };
  });
  // 2. The training forward over prompt + response sequences, and the rows that predict the responses.
  const ids: number[] = [], cu = [0], promptLens: number[] = [];
  batch.forEach((p, i) => {
    ids.push(...p, ...gens[i]!.tokens);
    cu.push(ids.length);
    promptLens.push(p.length);
  });
  const kept = gens.every((g) => g.tokens.length > 0);
  if (!kept) throw new RangeError('rlStep: a rollout has no tokens (maxTokens must be at least 1 and prompts shorter than the model window)');
  model.zeroGrad();
  const hidden = model.forward(ids, { cuSeqlens: cu, train: true, returnHidden: true });
  const rows = responseRows(ids, cu, promptLens);
  const responseHidden = gatherRows(hidden, rows.rows);
  hidden.dispose();
  let loss;
  try {
    loss = await computePolicyLoss({
      rollouts, hidden: responseHidden, weight: model.lmHead, advantage: options.advantage, aepo: options.aepo,
      aggregation: options.aggregation ?? 'group-token-mean',
    });
  } finally {
    responseHidden.dispose();
  }
  // 3. Back through the model, clip, step.
  const dHidden = scatterRows(loss.dHidden!, rows.rows, ids.length);
  model.backward(dHidden, loss.dWeight!);
  const nll = await loss.nll.item();
  for (const t of [dHidden, loss.loss, loss.nll, loss.logp, loss.entropy, loss.dHidden!, loss.dWeight!]) t.dispose();
  const grads = model.gradients();
  const clip = options.clipNorm ?? 1;
  const norm = clip > 0 ? ops.clipGrad([...grads.values()], clip) : ops.gradNorm([...grads.values()]);
  const gradNorm = await norm.item();
  norm.dispose();
  optimizer.update(grads, options.lr === undefined ? {} : { lr: options.lr });

  const byTask = new Map<string, number[]>();
  for (const r of rollouts) byTask.set(String(r.taskId), [...(byTask.get(String(r.taskId)) ?? []), r.reward]);
  let zeroVar = 0;
  for (let g = 0; g < prompts.length; g++) {
    const rs = rollouts.slice(g * G, (g + 1) * G).map((r) => r.reward);
    if (rs.every((x) => x === rs[0])) zeroVar++;
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    rewardMean: mean(rollouts.map((r) => r.reward)),
    rewardByTask: Object.fromEntries([...byTask].map(([k, v]) => [k, mean(v)])),
    zeroVarianceGroups: zeroVar,
    responseTokensMean: mean(gens.map((g) => g.tokens.length)),
    batchEntropy: loss.batchEntropy,
    dropNegative: loss.dropNegative !== false,
    nll,
    gradNorm,
    rollouts: rollouts.length,
  };
}
