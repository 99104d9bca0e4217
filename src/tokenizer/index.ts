/** Tokenizers: llama2.c's format, Hugging Face tokenizer.json (with chat templates), and word-level vocabularies. */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HfTokenizer, type TextTokenizer } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import { WordTokenizer } from './word.js';

export { Llama2cTokenizer, BOS, EOS } from './llama2c.js';
export { HfTokenizer, PLAIN_CHAT_TEMPLATE, renderChat, type ChatMessage, type TextTokenizer } from './hf.js';
export { WordTokenizer };

/**
 * A tokenizer from a path: a llama2.c `.bin` file, a tokenizer.json, a word vocabulary (`words.json`), or a folder
 * holding tokenizer.json or words.json.
 */
export function loadTokenizer(path: string, vocabSize?: number): TextTokenizer {
  if (typeof path !== 'string' || !existsSync(path)) throw new Error(`loadTokenizer: nothing at ${String(path)}`);
  if (path.endsWith('words.json')) return WordTokenizer.fromFile(path);
  if (statSync(path).isDirectory() && !existsSync(join(path, 'tokenizer.json')) && existsSync(join(path, 'words.json'))) return WordTokenizer.fromFile(join(path, 'words.json'));
  if (statSync(path).isDirectory() || path.endsWith('.json')) {
    if (statSync(path).isDirectory() && !existsSync(join(path, 'tokenizer.json'))) throw new Error(`loadTokenizer: no tokenizer.json or words.json in ${path}`);
    return new HfTokenizer(path);
  }
  return Llama2cTokenizer.fromFile(path, vocabSize);
}

/**
 * The tokenizer that belongs to a model, if one is there: a model folder's own tokenizer.json or words.json, or
 * tokenizer.bin / tok<vocabSize>.bin beside a llama2.c model file. Returns its path (for loadTokenizer).
 */
export function findTokenizer(modelPath: string, vocabSize?: number): string | undefined {
  if (!existsSync(modelPath)) return undefined;
  if (statSync(modelPath).isDirectory()) {
    return ['tokenizer.json', 'words.json'].some((f) => existsSync(join(modelPath, f))) ? modelPath : undefined;
  }
  const names = ['tokenizer.bin', ...(vocabSize === undefined ? [] : [`tok${vocabSize}.bin`])];
  return names.map((n) => join(dirname(modelPath), n)).find((p) => existsSync(p));
}
