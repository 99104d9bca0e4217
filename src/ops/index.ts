/** The typed op API: `import { ops } from 'qwenlong'`. Shapes and dtypes are checked here, once. */
export { add, scale, type AddOptions, type ScaleOptions } from './add.js';
export { cast, type CastOptions } from './cast.js';
export { rmsNorm, rmsNormBackward, type RmsNormOptions, type RmsNormBackwardOptions } from './rmsnorm.js';
export { swiglu, swigluBackward } from './swiglu.js';
export { rope, ropeBackward, type RopeOptions } from './rope.js';
export { embedding, embeddingBackward, type EmbeddingBackwardOptions } from './embedding.js';
export { adamw, gradNorm, clipGrad, type AdamwOptions } from './optim.js';
export { groupAdvantages, broadcastAdvantages, batchEntropy, type GroupAdvantageOptions } from './advantages.js';
export { policyLoss, policyLossCoefficients, type PolicyLossInput, type PolicyLossOutput, type Aggregation, type PolicyLossNormalizers } from './policy_loss.js';
export { matmul, type MatmulOptions } from './matmul.js';
export { attention, attentionBackward, type AttentionOptions, type AttentionForwardOptions, type AttentionBackwardOptions } from './attention.js';
export { pagedAttention, type PagedAttentionOptions } from './kv_cache.js';
