/**
 * qwenlong: the QwenLong-L1.5 post-training recipe on a native CPU/CUDA runtime.
 *
 *   import { Tensor, ops, info } from 'qwenlong';
 */
export { Tensor, type DType, type TensorData, type TensorOptions, type TypedArrayOf, DTYPES } from './native/tensor.js';
export type { Device } from './native/device.js';
export { info, memoryStats, setThreads, setIsa, synchronize, emptyCache, profile, formatProfile, type Info, type MemoryStats, type OpProfile, type Profile } from './native/runtime.js';
export { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, toHalfBits, fromHalfBits, contiguousStrides } from './native/half.js';
export * as ops from './ops/index.js';
export { PagedKVCache, type PagedKVCacheOptions, type PagedKVCacheStats } from './ops/kv_cache.js';
export * from './rl/index.js';
export { evaluate, summarize, type EvalOptions, type EvalReport, type Prediction } from './eval/evaluate.js';
export { evaluateMemory, type MemoryEvalOptions } from './eval/memory.js';
export { renderReport, writeReport } from './eval/report.js';
export * as synth from './synth/index.js';
export { responseRows, gatherRows, scatterRows, type ResponseRows } from './model/index.js';
export { initWeights } from './model/init.js';
export { Engine, type EngineOptions, type SubmitOptions, type EngineResult, type EngineStats } from './model/index.js';
export { loadModel, CausalLM, AdamW, type AdamWOptions, type AdamWState, type ModelConfig, type GenerateOptions, type Generation, type LoadOptions, type HostWeights, type HostTensor, readHfFolder, writeHfFolder } from './model/index.js';
export { Llama2cTokenizer, HfTokenizer, WordTokenizer, findTokenizer, loadTokenizer, PLAIN_CHAT_TEMPLATE, type TextTokenizer, type ChatMessage } from './tokenizer/index.js';
export * from './agent/index.js';
export { mergeSce, mergeFolders, sceTensor, type SceOptions, type SceTensorStats, type MergeFoldersOptions, type MergeFoldersResult } from './model/merge.js';
export { createServer, TextStream, type QwenlongServer, type ServerOptions } from './serve/index.js';
