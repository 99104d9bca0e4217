/** The RL recipe: sampling, the AEPO switch, rewards, the update, the trainer, SFT, the tiny preset. */
export { TaskBalancedSampler, type SampledItem, type TaskBalancedSamplerOptions, type TaskBalancedSamplerState } from './sampler.js';
export { AepoController, type AepoOptions, type AepoSwitch } from './aepo.js';
export { Random } from './random.js';
export * as rewards from './rewards.js';
export { computePolicyLoss, decidePolicy, type ScoredRollout, type PolicyLossBatch, type PolicyLossResult, type PolicyDecision } from './loss.js';
export { rlStep, rollout, policyUpdate, rolloutMetrics, zeroVarianceGroups, type RlPrompt, type RlStepOptions, type RlStepMetrics, type Rollout, type RolloutOptions, type UpdateOptions, type UpdateMetrics } from './step.js';
export { ALGOS, DEFAULT_CONFIG, algoPreset, checkTrainConfig, makeTrainConfig, type Algo, type Stage, type TrainConfig } from './config.js';
export { DataError, checkItem, readItems, scoreResponse, promptIds, type RecipeItem } from './data.js';
export { train, findCheckpoint, type StepRecord, type TrainRunOptions, type TrainRunResult } from './trainer.js';
export { sftStep, runSft, type SftExample, type SftStepMetrics, type SftRunOptions } from './sft.js';
export { passAtK, sftTiny, runTinyRecipe, type TinySftOptions, type TinyRecipeOptions, type TinyRecipeResult } from './recipe.js';
export { TINY_TASK_SHARES, TINY_TRAIN, tinyHeldOut, tinyItems, tinyModelConfig } from './tiny.js';
export { WORLD_TASKS, worldEpisode, worldTokenizer, type WorldEpisode, type WorldTask } from './tiny_world.js';
