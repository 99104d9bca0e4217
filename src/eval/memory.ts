/**
 * Memory-mode evaluation: every item's document read by the memory agent chunk by chunk (`context` is the document,
 * `question` the core question), answered from the final memory and scored with the recipe's reward functions; the
 * same report as the single-pass evaluation (length buckets count the document's tokens).
 */
import type { MemoryAgent } from '../agent/memory_agent.js';
import { scoreResponse, type RecipeItem } from '../rl/data.js';
import { summarize, type EvalReport, type Prediction } from './evaluate.js';

export interface MemoryEvalOptions {
  /** Items read at once (their calls batch on the local engine; default 32). */
  concurrency?: number;
  /** Answer-format instructions for the final call. */
  format?: string;
  /** Upper bounds of the document-length buckets, in tokens. */
  buckets?: number[];
  onProgress?: (done: number, total: number) => void;
}

export async function evaluateMemory(agent: MemoryAgent, items: readonly RecipeItem[], opts: MemoryEvalOptions = {}): Promise<EvalReport & { chunks: number; tokensRead: number; seconds: number }> {
  if (!Array.isArray(items) || items.length === 0) throw new RangeError('evaluateMemory: no items');
  items.forEach((it, i) => {
    if (typeof it.context !== 'string' || typeof it.question !== 'string') throw new TypeError(`evaluateMemory: items[${i}] (${it.id}) needs a 'context' (the document) and a 'question'`);
  });
  const concurrency = opts.concurrency ?? 32;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`evaluateMemory: 'concurrency' must be a positive integer, not ${String(opts.concurrency)}`);
  const predictions: Prediction[] = new Array(items.length);
  let next = 0, done = 0, chunks = 0, tokensRead = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      const it = items[i]!;
      const run = await agent.run({ question: it.question!, format: opts.format, document: it.context! });
      chunks += run.chunks;
      tokensRead += run.tokensRead;
      predictions[i] = { id: it.id, task: it.task, prediction: run.answer, answer: it.answer, score: scoreResponse(it, run.answer), promptTokens: run.tokensRead, truncated: 0 };
      opts.onProgress?.(++done, items.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return { ...summarize(predictions, opts.buckets), chunks, tokensRead, seconds: (performance.now() - start) / 1000 };
}
