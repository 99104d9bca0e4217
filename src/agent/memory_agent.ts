/**
 * The memory agent (paper §4): a policy reads an input far longer than its window one chunk at a time. At each chunk
 * it rewrites a bounded memory and a plan from the core question, its previous memory and the chunk; it answers
 * from the final memory, and only that last prompt carries the answer-format instructions. The input is streamed:
 * a document of millions of tokens never sits in memory, as text, tokens or KV.
 */
import type { AgentBackend, BackendReply } from './backend.js';
import { chunkText, type DocumentSource } from './chunks.js';

export interface MemoryPrompts {
  /** The head every update call of a question shares (instructions, question): computed once on the local engine. */
  updatePrefix(question: string): string;
  /** The rest of an update call. */
  updateText(memory: string, plan: string, chunk: string): string;
  /** The answer call. */
  final(question: string, memory: string, format: string | undefined): { prefix: string; text: string };
  /** The new memory and plan from an update's response (a response cut short by the token cap still counts). */
  parse(response: string, previous: { memory: string; plan: string }): { memory: string; plan: string };
}

function tagged(text: string, tag: string): string | undefined {
  const open = text.indexOf(`<${tag}>`);
  if (open < 0) return undefined;
  const start = open + tag.length + 2;
  const close = text.indexOf(`</${tag}>`, start);
  return text.slice(start, close < 0 ? undefined : close).trim();
}

/** Prompts for instruction-following chat models: notes in <memory>, next steps in <plan>. */
export const CHAT_MEMORY_PROMPTS: MemoryPrompts = {
  updatePrefix: (question) =>
    'You are reading a long document one part at a time, keeping notes to answer a question. Earlier parts will not ' +
    'be shown again: whatever the question needs has to be in your notes.\n\n' +
    `Question: ${question}\n\n`,
  updateText: (memory, plan, chunk) =>
    `Your notes so far:\n<memory>\n${memory || '(none yet)'}\n</memory>\n` +
    `Your plan so far:\n<plan>\n${plan || '(none yet)'}\n</plan>\n\n` +
    `The next part of the document:\n<chunk>\n${chunk}\n</chunk>\n\n` +
    'Rewrite your notes: keep each fact from the old notes and from this part that helps answer the question (with ' +
    'the names, numbers and dates it needs), drop everything else, and stay brief. Then give a one-line plan of what ' +
    'to look for in the parts still to come. Reply exactly as <memory>...</memory><plan>...</plan>.',
  final: (question, memory, format) => ({
    prefix: 'You kept notes while reading a long document in parts, to answer a question.\n\n' + `Question: ${question}\n\n`,
    text: `Your notes:\n<memory>\n${memory || '(none)'}\n</memory>\n\n${format ? `${format}\n` : ''}Answer the question from your notes.`,
  }),
  parse: (response, previous) => {
    const memory = tagged(response, 'memory');
    const plan = tagged(response, 'plan');
    if (memory === undefined && plan === undefined) return { memory: response.trim(), plan: previous.plan };
    return { memory: memory ?? previous.memory, plan: plan ?? previous.plan };
  },
};

/**
 * Short prompts for small base models and the tiny worlds' word vocabulary (words: question, memory, text, answer):
 * the response is the new memory itself.
 */
export const PLAIN_MEMORY_PROMPTS: MemoryPrompts = {
  updatePrefix: (question) => `question: ${question}\n`,
  updateText: (memory, _plan, chunk) => `memory: ${memory}\ntext: ${chunk}\nmemory:`,
  final: (question, memory, format) => ({ prefix: `question: ${question}\n`, text: `memory: ${memory}\n${format ? `${format}\n` : ''}answer:` }),
  parse: (response, previous) => ({ memory: response.trim(), plan: previous.plan }),
};

export interface MemoryAgentOptions {
  backend: AgentBackend;
  /** Input tokens per chunk (default 1024). */
  chunkTokens?: number;
  /** Tokens generated per memory update at most (default 256). */
  memoryTokens?: number;
  /** Tokens of the final answer at most (default 256). */
  answerTokens?: number;
  /** 'chat' (default: CHAT_MEMORY_PROMPTS), 'plain' (PLAIN_MEMORY_PROMPTS) or your own. */
  prompts?: MemoryPrompts | 'chat' | 'plain';
  /** Sampling temperature of every call (default 0: greedy). */
  temperature?: number;
  seed?: number;
}

export interface AgentQuery {
  /** The core question (asked at every chunk). */
  question: string;
  /** Answer-format instructions, given only to the final call. */
  format?: string;
  document: DocumentSource;
}

export interface AgentCall {
  /** -1 for the answer call. */
  chunk: number;
  reply: BackendReply;
}

export interface AgentProgress {
  chunk: number;
  chunkTokens: number;
  /** Characters of the input consumed so far. */
  chars: number;
  memory: string;
  plan: string;
}

export interface AgentRun {
  answer: string;
  memory: string;
  plan: string;
  chunks: number;
  tokensRead: number;
  seconds: number;
  /** Every call's reply (prompt and response ids and log-probs on the local engine), when run with `trace`. */
  calls?: AgentCall[];
}

export class MemoryAgent {
  readonly backend: AgentBackend;
  readonly chunkTokens: number;
  readonly memoryTokens: number;
  readonly answerTokens: number;
  readonly prompts: MemoryPrompts;
  readonly temperature: number;
  readonly seed: number;

  constructor(options: MemoryAgentOptions) {
    if (!options || typeof options.backend?.complete !== 'function') throw new TypeError('MemoryAgent: options.backend must be an AgentBackend (LocalBackend or OpenAIBackend)');
    const int = (name: string, v: number | undefined, dflt: number): number => {
      const x = v ?? dflt;
      if (!Number.isInteger(x) || x < 1) throw new RangeError(`MemoryAgent: '${name}' must be a positive integer, not ${String(v)}`);
      return x;
    };
    this.backend = options.backend;
    this.chunkTokens = int('chunkTokens', options.chunkTokens, 1024);
    this.memoryTokens = int('memoryTokens', options.memoryTokens, 256);
    this.answerTokens = int('answerTokens', options.answerTokens, 256);
    const p = options.prompts ?? 'chat';
    if (p !== 'chat' && p !== 'plain' && (typeof p !== 'object' || typeof p.updatePrefix !== 'function')) throw new TypeError("MemoryAgent: 'prompts' must be 'chat', 'plain' or a MemoryPrompts object");
    this.prompts = p === 'chat' ? CHAT_MEMORY_PROMPTS : p === 'plain' ? PLAIN_MEMORY_PROMPTS : p;
    this.temperature = options.temperature ?? 0;
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) throw new RangeError(`MemoryAgent: 'temperature' must be a finite number >= 0, not ${String(options.temperature)}`);
    this.seed = options.seed ?? 0;
  }

  /** Reads the document chunk by chunk and answers. Runs of several queries at once batch on the local engine. */
  async run(query: AgentQuery, o: { onChunk?: (p: AgentProgress) => void; signal?: AbortSignal; trace?: boolean; seed?: number } = {}): Promise<AgentRun> {
    if (typeof query?.question !== 'string' || query.question.trim() === '') throw new TypeError("MemoryAgent.run: 'question' must be a non-empty string");
    if (query.format !== undefined && typeof query.format !== 'string') throw new TypeError("MemoryAgent.run: 'format' must be a string");
    if (query.document === undefined || query.document === null) throw new TypeError("MemoryAgent.run: 'document' must be text, or an iterable of text pieces");
    const start = performance.now();
    const seed = o.seed ?? this.seed;
    const calls: AgentCall[] | undefined = o.trace ? [] : undefined;
    const prefix = this.prompts.updatePrefix(query.question);
    let state = { memory: '', plan: '' };
    let chunks = 0, tokensRead = 0;
    try {
      for await (const chunk of chunkText(query.document, (t) => this.backend.countTokens(t), this.chunkTokens)) {
        o.signal?.throwIfAborted();
        const reply = await this.backend.complete({
          prefix, text: this.prompts.updateText(state.memory, state.plan, chunk.text), maxTokens: this.memoryTokens,
          temperature: this.temperature, seed: seed * 1000003 + chunk.index, signal: o.signal,
        });
        state = this.prompts.parse(reply.text, state);
        calls?.push({ chunk: chunk.index, reply });
        chunks++;
        tokensRead += chunk.tokens;
        o.onChunk?.({ chunk: chunk.index, chunkTokens: chunk.tokens, chars: chunk.chars, ...state });
      }
    } finally {
      this.backend.done?.(prefix);
    }
    o.signal?.throwIfAborted();
    const f = this.prompts.final(query.question, state.memory, query.format);
    let reply: BackendReply;
    try {
      reply = await this.backend.complete({ ...f, maxTokens: this.answerTokens, temperature: this.temperature, seed: seed * 1000003 + 999983, signal: o.signal });
    } finally {
      this.backend.done?.(f.prefix);
    }
    o.signal?.throwIfAborted();
    calls?.push({ chunk: -1, reply });
    return { answer: reply.text.trim(), ...state, chunks, tokensRead, seconds: (performance.now() - start) / 1000, ...(calls ? { calls } : {}) };
  }
}
