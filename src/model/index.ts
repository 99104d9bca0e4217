/** The policy engine: load a model and its tokenizer, run it. */
import { existsSync, statSync } from 'node:fs';
import type { Device } from '../native/device.js';
import { type TextTokenizer, findTokenizer, loadTokenizer } from '../tokenizer/index.js';
import { readLlama2c } from './llama2c.js';
import { readHfFolder } from './hf.js';
import { CausalLM, modelPlacement } from './model.js';

export { CausalLM, sample, defaultStopIds, type GenerateOptions, type Generation } from './model.js';
export { Engine, type EngineOptions, type SubmitOptions, type EngineResult, type EngineStats } from './engine.js';
export { type ModelConfig, checkConfig } from './config.js';
export { readLlama2c, parseLlama2c, type HostWeights } from './llama2c.js';
export { readHfFolder, writeHfFolder } from './hf.js';
export { readSafetensors, parseSafetensors, writeSafetensors, type HostTensor } from './safetensors.js';
export { responseRows, gatherRows, scatterRows, type ResponseRows } from './response.js';
export { AdamW, type AdamWOptions, type AdamWState } from './optim.js';

export interface LoadOptions {
  /**
   * A tokenizer: a llama2.c `.bin` file, a tokenizer.json or words.json (or a folder holding one). Default: the
   * model's own, when there is one (findTokenizer: in the model folder, or tokenizer.bin / tok<vocab>.bin beside a
   * llama2.c file); `false`: none.
   */
  tokenizer?: string | false;
  device?: Device;
  dtype?: 'f32' | 'bf16' | 'f16';
}

/**
 * Loads a model: a llama2.c checkpoint file (`model.bin`) or a Hugging Face Llama folder (config.json +
 * safetensors). Returns the model and its tokenizer: the one given, else the model's own when one is found
 * (undefined otherwise).
 */
export function loadModel(path: string, opts: LoadOptions = {}): { model: CausalLM; tokenizer?: TextTokenizer } {
  modelPlacement('loadModel', opts);
  if (typeof path !== 'string' || !existsSync(path)) throw new Error(`loadModel: no file at ${String(path)}`);
  const host = statSync(path).isDirectory() ? readHfFolder(path) : readLlama2c(path);
  const tokPath = opts.tokenizer === undefined ? findTokenizer(path, host.config.vocabSize) : opts.tokenizer === false ? undefined : opts.tokenizer;
  const tokenizer = tokPath === undefined ? undefined : loadTokenizer(tokPath, host.config.vocabSize);
  return { model: CausalLM.fromHost(host, { device: opts.device, dtype: opts.dtype }), tokenizer };
}
