/**
 * Supervised warm-start: the policy-loss op with every advantage 1 is the negative log-likelihood of the targets, so
 * SFT is one fused pass over the LM head like the RL update. Only the response tokens are targets (answer-only
 * loss); the loss is their mean NLL over the batch.
 */
import type { CausalLM } from '../model/model.js';
import type { AdamW } from '../model/optim.js';
import * as ops from '../ops/index.js';
import { gradientStep } from './step.js';

export interface SftExample {
  /** Prompt ids (BOS and template applied): context only, never a target. */
  prompt: readonly number[];
  /** Response ids (the end-of-sequence token included): the targets. */
  response: readonly number[];
}

export interface SftStepMetrics {
  nll: number;
  gradNorm: number;
  tokens: number;
}

export async function sftStep(model: CausalLM, optimizer: AdamW, examples: readonly SftExample[], opts: { clipNorm?: number; lr?: number } = {}): Promise<SftStepMetrics> {
  if (!Array.isArray(examples) || examples.length === 0) throw new RangeError('sftStep: no examples');
  examples.forEach((e, i) => {
    if (!e || !Array.isArray(e.prompt) || e.prompt.length === 0) throw new TypeError(`sftStep: examples[${i}].prompt must be a non-empty array of token ids`);
    if (!Array.isArray(e.response) || e.response.length === 0) throw new TypeError(`sftStep: examples[${i}].response must be a non-empty array of token ids`);
  });
  const targets = examples.reduce((n, e) => n + e.response.length, 0);
  const r = await gradientStep(model, optimizer, examples, (hidden) => {
    // the rows are in sequence order, so the targets are the responses back to back
    const cu = [0];
    for (const e of examples) cu.push(cu[cu.length - 1]! + e.response.length);
    return ops.policyLoss({ hidden, weight: model.lmHead, targets: examples.flatMap((e) => e.response), advantages: new Float32Array(targets).fill(1), cuSeqlens: cu, aggregation: 'token-mean' });
  }, opts);
  return { nll: r.nll, gradNorm: r.gradNorm, tokens: targets };
}

export interface SftRunOptions {
  model: CausalLM;
  optimizer: AdamW;
  /** The next batch of examples for a step (1-based). */
  batch(step: number): SftExample[];
  steps: number;
  /** Peak learning rate, reached after `warmup` steps and decayed by a cosine to 10% at the end. */
  lr: number;
  warmup?: number;
  clipNorm?: number;
  /** Called every `every` steps; return true to stop early. */
  check?: { every: number; run(step: number): Promise<boolean> | boolean };
  onStep?: (step: number, m: SftStepMetrics) => void;
}

/** A supervised run: warmup + cosine schedule, NaN steps skipped, optional periodic checks that may stop it. */
export async function runSft(opts: SftRunOptions): Promise<{ steps: number; last: SftStepMetrics | null }> {
  const warmup = opts.warmup ?? Math.min(50, Math.floor(opts.steps / 10));
  let last: SftStepMetrics | null = null;
  for (let step = 1; step <= opts.steps; step++) {
    const lr = step <= warmup ? (opts.lr * step) / warmup : opts.lr * (0.1 + 0.45 * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, opts.steps - warmup))));
    last = await sftStep(opts.model, opts.optimizer, opts.batch(step), { lr, clipNorm: opts.clipNorm });
    opts.onStep?.(step, last);
    if (opts.check && step % opts.check.every === 0 && (await opts.check.run(step))) return { steps: step, last };
  }
  return { steps: opts.steps, last };
}
