/** The RL recipe's host-side pieces: sampling, the AEPO switch, rewards. */
export { TaskBalancedSampler, type SampledItem, type TaskBalancedSamplerOptions, type TaskBalancedSamplerState } from './sampler.js';
export { AepoController, type AepoOptions, type AepoSwitch } from './aepo.js';
export { Random } from './random.js';
export * as rewards from './rewards.js';
export { computePolicyLoss, type ScoredRollout, type PolicyLossBatch, type PolicyLossResult } from './loss.js';
export { rlStep, type RlPrompt, type RlStepOptions, type RlStepMetrics } from './step.js';
