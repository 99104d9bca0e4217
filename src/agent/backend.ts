/**
 * Where the memory agent's calls go: the local engine (the prompt's shared head, instructions and question, is
 * computed once per question and forked for every chunk through the paged cache) or any OpenAI-compatible chat
 * endpoint.
 */
import type { CausalLM } from '../model/model.js';
import { Engine, type EngineOptions } from '../model/engine.js';
import { LlmClient } from '../synth/llm.js';
import { HfTokenizer, type TextTokenizer } from '../tokenizer/hf.js';
import { WordTokenizer } from '../tokenizer/word.js';

export interface BackendCall {
  /** The part of the prompt every call of one question shares (instructions, question). */
  prefix: string;
  /** The rest of the prompt (memory, chunk). */
  text: string;
  maxTokens: number;
  temperature?: number;
  seed?: number;
  signal?: AbortSignal;
}

export interface BackendReply {
  text: string;
  /** The prompt and response token ids, with the sampling log-probs (local backend only: what training needs). */
  promptIds?: number[];
  responseIds?: number[];
  logprobs?: number[];
  finishReason?: string;
}

export interface AgentBackend {
  /** Tokens in text, for chunking (the OpenAI backend counts words and marks unless given a tokenizer). */
  countTokens(text: string): number;
  complete(call: BackendCall): Promise<BackendReply>;
  /** Ends work for one question: drops the shared prefix it kept. */
  done?(prefix: string): void;
  close?(): void;
}

/** Whether a tokenizer ships its own chat template (then chat prompts suit its model; else the plain ones). */
export function hasOwnChatTemplate(tokenizer: TextTokenizer): boolean {
  return tokenizer instanceof HfTokenizer && tokenizer.hasChatTemplate;
}

export interface LocalBackendOptions extends EngineOptions {
  /** Render prompts through the tokenizer's chat template (default false: the raw text after BOS). */
  chat?: boolean;
  /** Share an engine (e.g. with a server) instead of owning one. */
  engine?: Engine;
}

/** The local engine backend: prompts as token ids, shared prefixes kept in the paged cache while a question runs. */
export class LocalBackend implements AgentBackend {
  readonly engine: Engine;
  readonly tokenizer: TextTokenizer;
  readonly #chat: boolean;
  readonly #owned: boolean;
  readonly #prefixes = new Map<string, number>();

  constructor(model: CausalLM, tokenizer: TextTokenizer, options: LocalBackendOptions = {}) {
    const { chat, engine, ...engineOptions } = options;
    this.engine = engine ?? new Engine(model, engineOptions);
    this.#owned = engine === undefined;
    this.tokenizer = tokenizer;
    this.#chat = chat ?? false;
  }

  countTokens(text: string): number {
    return this.tokenizer.encode(text).length;
  }

  /** Ids of text, with BOS first (once: a chat template may write it itself). */
  #ids(text: string): number[] {
    const ids = this.tokenizer.encode(text);
    const bos = this.tokenizer.bosId;
    return bos !== undefined && ids[0] !== bos ? [bos, ...ids] : ids;
  }

  #render(content: string): number[] {
    return this.#ids(this.#chat ? this.tokenizer.applyChatTemplate([{ role: 'user', content }]) : content);
  }

  /** The shared prefix's ids (rendered the way full prompts are, up to the end of the prefix). */
  #prefixIds(prefix: string): number[] {
    if (!this.#chat) return this.#render(prefix);
    const marker = '\u0000';
    const full = this.tokenizer.applyChatTemplate([{ role: 'user', content: prefix + marker }]);
    return this.#ids(full.slice(0, full.indexOf(marker)));
  }

  async complete(call: BackendCall): Promise<BackendReply> {
    const promptIds = this.#render(call.prefix + call.text);
    const room = this.engine.model.config.maxSeqLen - promptIds.length;
    if (room < 1) throw new RangeError(`LocalBackend: the prompt has ${promptIds.length} tokens, the model takes ${this.engine.model.config.maxSeqLen}: use smaller chunks or memories`);
    if (!this.#prefixes.has(call.prefix) && call.prefix.length > 0) {
      const ids = this.#prefixIds(call.prefix);
      if (ids.length > 1 && ids.length < this.engine.model.config.maxSeqLen) {
        try {
          this.#prefixes.set(call.prefix, this.engine.prefix(ids));
        } catch (e) {
          // no spare blocks for it now: the prefix is only a saving, the call runs without it
          if (!(e instanceof RangeError)) throw e;
        }
      }
    }
    const r = await this.engine.submit(promptIds, { maxTokens: Math.min(call.maxTokens, room), temperature: call.temperature ?? 0, seed: call.seed, signal: call.signal });
    const stopped = r.finishReason === 'stop' ? r.tokens.slice(0, -1) : r.tokens;
    return { text: this.tokenizer.decode(stopped), promptIds, responseIds: r.tokens, logprobs: r.logprobs, finishReason: r.finishReason };
  }

  done(prefix: string): void {
    const id = this.#prefixes.get(prefix);
    if (id === undefined) return;
    this.#prefixes.delete(prefix);
    this.engine.release(id);
  }

  close(): void {
    for (const prefix of [...this.#prefixes.keys()]) this.done(prefix);
    if (this.#owned) this.engine.dispose();
  }
}

export interface OpenAIBackendOptions {
  /** Base URL (`http://host:port/v1`). */
  url: string;
  model: string;
  apiKey?: string;
  /** Counts chunk tokens with this tokenizer (default: words and punctuation marks, about the model's tokens). */
  tokenizer?: TextTokenizer;
  concurrency?: number;
  timeoutMs?: number;
}

/** Any OpenAI-compatible chat endpoint (a `qwenlong serve`, vLLM, SGLang, a hosted API). */
export class OpenAIBackend implements AgentBackend {
  readonly #client: LlmClient;
  readonly #tokenizer: TextTokenizer | undefined;

  constructor(options: OpenAIBackendOptions) {
    this.#client = new LlmClient({ url: options.url, model: options.model, apiKey: options.apiKey, concurrency: options.concurrency ?? 8, timeoutMs: options.timeoutMs ?? 300_000 });
    this.#tokenizer = options.tokenizer;
  }

  countTokens(text: string): number {
    if (this.#tokenizer) return this.#tokenizer.encode(text).length;
    return WordTokenizer.split(text).length;
  }

  async complete(call: BackendCall): Promise<BackendReply> {
    const r = await this.#client.chat([{ role: 'user', content: call.prefix + call.text }], { maxTokens: call.maxTokens, temperature: call.temperature ?? 0, seed: call.seed, signal: call.signal });
    return { text: r.content };
  }
}
