/** The policy engine: load a model and its tokenizer, run it. */
import { existsSync, statSync } from 'node:fs';
import type { Device } from '../native/device.js';
import { type TextTokenizer, loadTokenizer } from '../tokenizer/index.js';
import { readLlama2c } from './llama2c.js';
import { readHfFolder } from './hf.js';
import { CausalLM } from './model.js';

export { CausalLM, sample, defaultStopIds, type GenerateOptions, type Generation } from './model.js';
export { Engine, type EngineOptions, type SubmitOptions, type EngineResult, type EngineStats } from './engine.js';
export { type ModelConfig, checkConfig } from './config.js';
export { readLlama2c, parseLlama2c, type HostWeights } from './llama2c.js';
export { readHfFolder, writeHfFolder } from './hf.js';
export { readSafetensors, parseSafetensors, writeSafetensors, type HostTensor } from './safetensors.js';
export { responseRows, gatherRows, scatterRows, type ResponseRows } from './response.js';
export { AdamW, type AdamWOptions, type AdamWState } from './optim.js';

export interface LoadOptions {
  /** A tokenizer: a llama2.c `.bin` file, or a tokenizer.json (or a folder holding one). */
  tokenizer?: string;
  device?: Device;
  dtype?: 'f32' | 'bf16' | 'f16';
}

/**
 * Loads a model: a llama2.c checkpoint file (`model.bin`) or a Hugging Face Llama folder (config.json +
 * safetensors). Returns the model and, when `tokenizer` is given, its tokenizer.
 */
export function loadModel(path: string, opts: LoadOptions = {}): { model: CausalLM; tokenizer?: TextTokenizer } {
  if (typeof path !== 'string' || !existsSync(path)) throw new Error(`loadModel: no file at ${String(path)}`);
  const host = statSync(path).isDirectory() ? readHfFolder(path) : readLlama2c(path);
  const tokenizer = opts.tokenizer === undefined ? undefined : loadTokenizer(opts.tokenizer, host.config.vocabSize);
  return { model: CausalLM.fromHost(host, { device: opts.device, dtype: opts.dtype }), tokenizer };
}
