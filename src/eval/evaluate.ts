/**
 * Single-pass evaluation: every item's prompt (middle-truncated to the window) answered greedily in batches, scored
 * with the recipe's reward functions; scores per task, per prompt-length bucket, and macro-averaged over tasks.
 */
import type { CausalLM } from '../model/model.js';
import type { TextTokenizer } from '../tokenizer/hf.js';
import { checkItem, promptIds, scoreResponse, type RecipeItem } from '../rl/data.js';

export interface EvalOptions {
  /** New tokens per answer at most (default 32). */
  maxTokens?: number;
  /** The model's window for prompt + answer (default the model's maxSeqLen). */
  window?: number;
  /** Prompts per generate call (default 256). */
  batch?: number;
  /** Upper bounds of the prompt-length buckets, in tokens (default 1K, 4K, 16K, 64K, 128K). */
  buckets?: number[];
  onProgress?: (done: number, total: number) => void;
}

export interface Prediction {
  id: string;
  task: string;
  prediction: string;
  answer: RecipeItem['answer'];
  score: number;
  promptTokens: number;
  truncated: number;
}

export interface EvalReport {
  /** Mean score per task. */
  byTask: Record<string, { n: number; score: number }>;
  /** Mean score per prompt-length bucket ("≤1024" …). */
  byLength: Record<string, { n: number; score: number }>;
  /** The unweighted mean of the per-task scores. */
  macro: number;
  predictions: Prediction[];
}

export function evaluate(model: CausalLM, tokenizer: TextTokenizer, items: readonly RecipeItem[], opts: EvalOptions = {}): EvalReport {
  if (!Array.isArray(items) || items.length === 0) throw new RangeError('evaluate: no items');
  items.forEach((it, i) => {
    const why = checkItem(it);
    if (why) throw new TypeError(`evaluate: items[${i}] ${why}`);
  });
  const maxTokens = opts.maxTokens ?? 32, window = opts.window ?? model.config.maxSeqLen, batch = opts.batch ?? 256;
  const W = model.config.maxSeqLen;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`evaluate: maxTokens must be a positive integer, not ${String(opts.maxTokens)}`);
  if (!Number.isInteger(window) || window <= maxTokens || window > W) {
    throw new RangeError(`evaluate: window must be an integer above maxTokens (${maxTokens}) and at most the model's ${W} tokens, not ${String(opts.window)}`);
  }
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`evaluate: batch must be a positive integer, not ${String(opts.batch)}`);
  if (opts.buckets !== undefined && (!Array.isArray(opts.buckets) || opts.buckets.length === 0 || !opts.buckets.every((b) => Number.isInteger(b) && b > 0))) {
    throw new RangeError('evaluate: buckets must be a non-empty list of positive integers (upper bounds of prompt lengths, in tokens)');
  }
  const stop = tokenizer.eosIds.length ? tokenizer.eosIds : undefined;
  const predictions: Prediction[] = [];
  for (let s = 0; s < items.length; s += batch) {
    const chunk = items.slice(s, s + batch);
    const prompts = chunk.map((it) => promptIds(it, tokenizer, { window, maxTokens }));
    const gens = model.generate(prompts.map((p) => p.ids), { maxTokens, temperature: 0, stopIds: stop });
    gens.forEach((g, i) => {
      const it = chunk[i]!;
      const tokens = g.finishReason === 'stop' ? g.tokens.slice(0, -1) : g.tokens;
      const prediction = tokenizer.decode(tokens);
      predictions.push({ id: it.id, task: it.task, prediction, answer: it.answer, score: scoreResponse(it, prediction), promptTokens: prompts[i]!.ids.length + prompts[i]!.truncated, truncated: prompts[i]!.truncated });
    });
    opts.onProgress?.(Math.min(s + batch, items.length), items.length);
  }
  return summarize(predictions, opts.buckets);
}

/** Scores per task, per prompt-length bucket (upper bounds in tokens), and the macro mean over tasks. */
export function summarize(predictions: Prediction[], bucketBounds: readonly number[] = [1024, 4096, 16384, 65536, 131072]): EvalReport {
  const buckets = bucketBounds.slice().sort((a, b) => a - b);
  const group = (key: (p: Prediction) => string) => {
    const acc = new Map<string, number[]>();
    for (const p of predictions) {
      // pushed, not copied into a new array per prediction (quadratic: 40k predictions took 9 s)
      const scores = acc.get(key(p));
      if (scores) scores.push(p.score);
      else acc.set(key(p), [p.score]);
    }
    return Object.fromEntries([...acc].sort().map(([k, v]) => [k, { n: v.length, score: v.reduce((a, b) => a + b, 0) / v.length }]));
  };
  const bucketOf = (n: number) => {
    const b = buckets.find((x) => n <= x);
    return b === undefined ? `>${buckets[buckets.length - 1]}` : `≤${b}`;
  };
  const byTask = group((p) => p.task);
  const tasks = Object.values(byTask);
  return { byTask, byLength: group((p) => bucketOf(p.promptTokens)), macro: tasks.reduce((a, t) => a + t.score, 0) / tasks.length, predictions };
}
