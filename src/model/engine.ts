/**
 * The serving engine: one paged KV cache shared by every request, continuous batching (each step packs the decode
 * tokens of the running requests with chunks of the prompts being admitted, in one forward), and prefix reuse
 * (a prompt that starts like a registered prefix forks its blocks instead of recomputing them). The memory agent's
 * local backend and `qwenlong serve` run on it.
 */
import { PagedKVCache, type PagedKVCacheStats } from '../ops/kv_cache.js';
import { Random } from '../rl/random.js';
import { CausalLM, checkSampling, defaultStopIds, sampleMany, tokenIds, type GenerateOptions } from './model.js';

export interface EngineOptions {
  /** Cache blocks (default: room for `maxRunning` sequences of the model's full length, at most 1 GiB of K and V). */
  numBlocks?: number;
  /** Tokens per cache block (default 16). */
  blockSize?: number;
  /** Prompt tokens per forward at most (beside one decode token per running request): longer prompts are prefilled in chunks across steps (default 2048). */
  maxBatchTokens?: number;
  /** Requests decoding at once at most (default 64). */
  maxRunning?: number;
}

export interface SubmitOptions extends Omit<GenerateOptions, 'blockSize'> {
  /** Called with each new token as it is sampled. */
  onToken?: (token: number, logprob: number) => void;
  /** Aborting ends the request at the next step with finishReason 'abort' (its blocks go back to the pool). */
  signal?: AbortSignal;
}

export interface EngineResult {
  tokens: number[];
  logprobs: number[];
  entropies: number[];
  finishReason: 'stop' | 'length' | 'abort';
  /** Prompt tokens taken from a registered prefix instead of computed. */
  cachedTokens: number;
  promptTokens: number;
}

export interface EngineStats {
  waiting: number;
  running: number;
  /** Forwards run, prompt tokens computed, prompt tokens reused from prefixes, tokens generated. */
  steps: number;
  promptTokens: number;
  cachedTokens: number;
  generatedTokens: number;
  prefixes: number;
  cache: PagedKVCacheStats;
}

interface Request {
  prompt: number[];
  seq: number;
  fed: number;
  limit: number;
  worst: number;
  grown: number;
  next: number | undefined;
  temperature: number;
  topP: number;
  topK: number;
  rng: Random;
  stop: Set<number>;
  result: EngineResult;
  options: SubmitOptions;
  resolve: (r: EngineResult) => void;
  reject: (e: Error) => void;
}

function lcp(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class Engine {
  readonly model: CausalLM;
  readonly cache: PagedKVCache;
  readonly maxBatchTokens: number;
  readonly maxRunning: number;
  #waiting: Request[] = [];
  #running: Request[] = [];
  #prefixes = new Map<number, number[]>();
  #looping = false;
  #disposed = false;
  #seeds = 0;
  #stats = { steps: 0, promptTokens: 0, cachedTokens: 0, generatedTokens: 0 };
  /** The steps' logits, one buffer reused (grown to the largest batch): a step's are sampled before the next. */
  #logits = new Float32Array(0);

  constructor(model: CausalLM, options: EngineOptions = {}) {
    const c = model.config;
    const int = (name: keyof EngineOptions, v: number | undefined, dflt: number, max: number): number => {
      const x = v ?? dflt;
      if (!Number.isInteger(x) || x < 1 || x > max) throw new RangeError(`Engine: '${name}' must be an integer in [1, ${max}], not ${String(v)}`);
      return x;
    };
    const blockSize = int('blockSize', options.blockSize, 16, 1024);
    this.maxRunning = int('maxRunning', options.maxRunning, 64, 1 << 16);
    this.maxBatchTokens = int('maxBatchTokens', options.maxBatchTokens, 2048, 1 << 20);
    const bytesPerBlock = 2 * c.layers * c.kvHeads * c.headDim * blockSize * (model.dtype === 'f32' ? 4 : 2);
    const dflt = Math.max(16, Math.min(this.maxRunning * Math.ceil(c.maxSeqLen / blockSize), Math.floor(2 ** 30 / bytesPerBlock)));
    const numBlocks = int('numBlocks', options.numBlocks, dflt, 1 << 24);
    this.model = model;
    this.cache = new PagedKVCache({ layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, blockSize, numBlocks, dtype: model.dtype, device: model.device });
  }

  #check(op: string, tokens: readonly number[], what: string): void {
    if (this.#disposed) throw new Error(`Engine.${op}: the engine was disposed`);
    const V = this.model.config.vocabSize;
    if (!Array.isArray(tokens) || tokens.length === 0) throw new TypeError(`Engine.${op}: '${what}' must be a non-empty array of token ids`);
    tokenIds(`Engine.${op}: '${what}'`, tokens, V);
    if (tokens.length > this.model.config.maxSeqLen) throw new RangeError(`Engine.${op}: '${what}' has ${tokens.length} tokens, the model takes ${this.model.config.maxSeqLen}`);
  }

  /**
   * Computes a prefix once and keeps it: later prompts that start with (part of) it reuse its blocks. Returns its id
   * for `release`. Runs synchronously between engine steps.
   */
  prefix(tokens: readonly number[]): number {
    this.#check('prefix', tokens, 'tokens');
    // the blocks promised to running requests stay theirs: a prefix only takes what is left
    const need = Math.ceil(tokens.length / this.cache.blockSize);
    const spare = this.cache.freeBlocks - this.#promised();
    if (need > spare) throw new RangeError(`Engine.prefix: the prefix needs ${need} cache blocks, ${spare} are spare beside the running requests`);
    const seq = this.#newSeq();
    try {
      for (let at = 0; at < tokens.length; at += this.maxBatchTokens) {
        this.model.extend(this.cache, [seq], [Int32Array.from(tokens.slice(at, at + this.maxBatchTokens))], this.#logitsFor(1));
      }
    } catch (e) {
      this.cache.free(seq);
      throw e;
    }
    this.#stats.promptTokens += tokens.length;
    this.#prefixes.set(seq, [...tokens]);
    return seq;
  }

  /** Drops a prefix; requests already forked from it keep their shared blocks. */
  release(prefixId: number): void {
    if (!this.#prefixes.delete(prefixId)) throw new RangeError(`Engine.release: no prefix ${String(prefixId)}`);
    this.cache.free(prefixId);
  }

  #newSeq(): number {
    let id = 0;
    while (this.cache.has(id)) id++;
    this.cache.allocate(id);
    return id;
  }

  /** Continues `prompt` (token ids) as soon as the cache has room; resolves when the request ends. */
  submit(prompt: readonly number[], options: SubmitOptions = {}): Promise<EngineResult> {
    try {
      this.#check('submit', prompt, 'prompt');
      const c = this.model.config;
      const { maxTokens, temperature, topP, topK } = checkSampling('Engine.submit', options, 1);
      if (prompt.length >= c.maxSeqLen) throw new RangeError(`Engine.submit: the prompt has ${prompt.length} tokens, the model takes ${c.maxSeqLen} in all`);
      const limit = Math.min(maxTokens, c.maxSeqLen - prompt.length);
      const worstAlone = Math.ceil((prompt.length + limit) / this.cache.blockSize);
      if (worstAlone > this.cache.numBlocks) throw new RangeError(`Engine.submit: the request needs up to ${worstAlone} cache blocks, the cache has ${this.cache.numBlocks}`);
      return new Promise<EngineResult>((resolve, reject) => {
        const r: Request = {
          prompt: [...prompt], seq: -1, fed: 0, limit, worst: 0, grown: 0, next: undefined, temperature, topP, topK,
          rng: new Random(options.seed ?? 0x9e3779b9 + this.#seeds++), stop: new Set(options.stopIds ?? defaultStopIds(c)),
          result: { tokens: [], logprobs: [], entropies: [], finishReason: 'length', cachedTokens: 0, promptTokens: prompt.length },
          options, resolve, reject,
        };
        this.#waiting.push(r);
        this.#kick();
      });
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  stats(): EngineStats {
    return { waiting: this.#waiting.length, running: this.#running.length, ...this.#stats, prefixes: this.#prefixes.size, cache: this.cache.stats() };
  }

  #kick(): void {
    if (this.#looping) return;
    this.#looping = true;
    setImmediate(() => void this.#loop());
  }

  /** Blocks the running requests may still take, at worst. */
  #promised(): number {
    return this.#running.reduce((n, r) => n + (r.worst - r.grown), 0);
  }

  #admit(): void {
    while (this.#waiting.length > 0 && this.#running.length < this.maxRunning) {
      const r = this.#waiting[0]!;
      if (r.options.signal?.aborted) {
        this.#waiting.shift();
        r.result.finishReason = 'abort';
        r.resolve(r.result);
        continue;
      }
      // the registered prefix sharing the most tokens (at least one prompt token is left to compute)
      let best = -1, share = 0;
      for (const [id, toks] of this.#prefixes) {
        const n = Math.min(lcp(toks, r.prompt), r.prompt.length - 1);
        if (n > share) [best, share] = [id, n];
      }
      const seq = best >= 0 ? this.cache.fork(best) : this.#newSeq();
      if (best >= 0) this.cache.truncate(seq, share);
      const worst = this.cache.blocksNeeded(seq, r.prompt.length - share + r.limit);
      if (worst > this.cache.freeBlocks - this.#promised()) {
        this.cache.free(seq);
        if (this.#running.length === 0) {
          this.#waiting.shift();
          r.reject(new RangeError(`Engine: the request needs ${worst} free cache blocks, ${this.cache.freeBlocks} are free beside the prefixes`));
          continue;
        }
        return; // waits for running requests to finish
      }
      this.#waiting.shift();
      Object.assign(r, { seq, fed: share, worst, grown: 0 });
      r.result.cachedTokens = share;
      this.#stats.cachedTokens += share;
      this.#running.push(r);
    }
  }

  #finish(r: Request, reason?: EngineResult['finishReason']): void {
    if (reason) r.result.finishReason = reason;
    if (this.#disposed) return; // dispose() already rejected it
    this.cache.free(r.seq);
    this.#running.splice(this.#running.indexOf(r), 1);
    r.resolve(r.result);
  }

  async #loop(): Promise<void> {
    try {
      await this.#run();
    } catch (e) {
      // an engine fault (not a request's): every request ends with it, and their blocks go back
      for (const r of [...this.#waiting, ...this.#running]) {
        if (!this.#disposed && r.seq >= 0 && this.cache.has(r.seq)) this.cache.free(r.seq);
        r.reject(e as Error);
      }
      this.#waiting = [];
      this.#running = [];
    } finally {
      this.#looping = false;
    }
  }

  async #run(): Promise<void> {
    while (!this.#disposed && (this.#waiting.length > 0 || this.#running.length > 0)) {
      this.#admit();
      for (const r of [...this.#running]) if (r.options.signal?.aborted) this.#finish(r, 'abort');
      const batch: Request[] = [], tokens: Int32Array[] = [];
      let budget = this.maxBatchTokens;
      for (const r of this.#running) {
        if (r.next !== undefined) {
          batch.push(r);
          tokens.push(Int32Array.of(r.next));
          budget--;
        }
      }
      for (const r of this.#running) {
        if (r.next === undefined && budget > 0) {
          const chunk = r.prompt.slice(r.fed, r.fed + budget);
          batch.push(r);
          tokens.push(Int32Array.from(chunk));
          budget -= chunk.length;
        }
      }
      if (batch.length > 0) this.#step(batch, tokens);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  #step(batch: Request[], tokens: Int32Array[]): void {
    const V = this.model.config.vocabSize;
    const ids = batch.map((r) => r.seq);
    let logits: Float32Array;
    try {
      batch.forEach((r, i) => (r.grown += this.cache.blocksNeeded(r.seq, tokens[i]!.length)));
      logits = this.model.extend(this.cache, ids, tokens, this.#logitsFor(ids.length)).logits;
    } catch (e) {
      for (const r of batch) {
        this.cache.free(r.seq);
        this.#running.splice(this.#running.indexOf(r), 1);
        r.reject(e as Error);
      }
      return;
    }
    this.#stats.steps++;
    const due: [Request, number][] = [];
    batch.forEach((r, row) => {
      if (r.next === undefined) {
        r.fed += tokens[row]!.length;
        this.#stats.promptTokens += tokens[row]!.length;
        if (r.fed < r.prompt.length) return; // more prompt to prefill
      }
      due.push([r, row]);
    });
    const picks = sampleMany(logits, V, due.map(([r, row]) => ({ row, temperature: r.temperature, topK: r.topK, topP: r.topP, rng: r.rng })));
    due.forEach(([r], k) => {
      const pick = picks[k]!;
      const g = r.result;
      g.tokens.push(pick.token);
      g.logprobs.push(pick.logprob);
      g.entropies.push(pick.entropy);
      this.#stats.generatedTokens++;
      try {
        r.options.onToken?.(pick.token, pick.logprob);
      } catch {
        // a failing listener ends its own request only
        this.#finish(r, 'abort');
        return;
      }
      if (this.#disposed) return; // a listener disposed the engine
      if (r.stop.has(pick.token)) this.#finish(r, 'stop');
      else if (g.tokens.length >= r.limit) this.#finish(r, 'length');
      else r.next = pick.token;
    });
  }

  #logitsFor(rows: number): Float32Array {
    const n = rows * this.model.config.vocabSize;
    if (this.#logits.length < n) this.#logits = new Float32Array(Math.max(n, Math.min(2 * this.#logits.length, this.maxRunning * this.model.config.vocabSize)));
    return this.#logits;
  }

  /** Ends every request (rejected) and frees the cache. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const r of [...this.#waiting, ...this.#running]) r.reject(new Error('Engine: disposed while the request ran'));
    this.#waiting = [];
    this.#running = [];
    this.cache.dispose();
  }
}
