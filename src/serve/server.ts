/**
 * `qwenlong serve`: an OpenAI-compatible HTTP server over the continuous-batching engine. Chat and text completions,
 * streamed (server-sent events) or not; every request is one engine request, so concurrent requests share forwards.
 * A client that goes away aborts its engine request, which gives its cache blocks back at the next step.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Engine, type EngineOptions } from '../model/engine.js';
import { defaultStopIds, type CausalLM } from '../model/model.js';
import type { ChatMessage, TextTokenizer } from '../tokenizer/hf.js';

export interface ServerOptions {
  model: CausalLM;
  tokenizer: TextTokenizer;
  /** The one model name /v1/models lists and requests may ask for (default 'qwenlong'). */
  modelName?: string;
  /** An engine to share (the caller disposes it); else the server creates one from `engineOptions` and owns it. */
  engine?: Engine;
  engineOptions?: EngineOptions;
  /**
   * Largest request body accepted, in bytes; larger ones get 413. The default follows the model's context: 256 bytes
   * per token (far more than any prompt that fits needs), at least 4 MiB and at most 32 MiB.
   */
  maxBodyBytes?: number;
  /** Where internal errors (500s) are reported (default: nowhere). */
  log?: (line: string) => void;
}

export interface QwenlongServer {
  readonly server: http.Server;
  readonly engine: Engine;
  readonly modelName: string;
  /** Starts listening (port 0: any free port); the base URL clients take, `http://host:port/v1`. */
  listen(port: number, host?: string): Promise<{ url: string }>;
  /** Aborts the requests in flight, closes every connection, and disposes the engine when the server owns it. */
  close(): Promise<void>;
}

/** An error with its HTTP status, sent as OpenAI's `{ error: { message, type, param, code } }`. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Incremental detokenization that never takes text back. */
export class TextStream {
  readonly #tokenizer: TextTokenizer;
  readonly #stops: readonly string[];
  readonly #ids: number[] = [];
  /**
   * Each token decodes ids[#from..] only (decoding the whole list at every token made a response quadratic: 8000
   * tokens of Qwen3's tokenizer took 19 s): ids[#from, #to) are context, `#context` their text decoded alone, so
   * what follows it in that decode is the text that ids[#to..] add to the whole. The context is the tokens since the
   * last such point when they print whole characters (no U+FFFD at the end) and something at all (so a word-level
   * decode spaces the next word, an SPM decode keeps its space).
   */
  #from = 0;
  #to = 0;
  #context = '';
  /** Length of the whole text up to token #to; it never changes after. */
  #settled = 0;
  /**
   * The whole text is #done + #local. #done is released and settled, and neither a stop sequence nor the start of one
   * that a release holds back can begin in released text (it would have been held back), so only #local (from
   * character #base on) is searched again. #length: how much of #local counts (less after a stop).
   */
  #done = '';
  #base = 0;
  #local = '';
  #length = 0;
  #sent = 0;

  constructor(tokenizer: TextTokenizer, stops: readonly string[]) {
    this.#tokenizer = tokenizer;
    this.#stops = stops;
  }

  /** The text so far (cut before the first stop sequence once one appeared). */
  get text(): string {
    return this.#done + this.#local.slice(0, this.#length);
  }

  /**
   * Adds a token. Only the part of the text that cannot change is released: not a trailing U+FFFD (an incomplete
   * multi-byte character) nor a tail that could be the start of a stop sequence.
   */
  push(token: number): { delta: string; stopped: boolean } {
    this.#ids.push(token);
    let window = this.#tokenizer.decode(this.#ids.slice(this.#from));
    if (!window.startsWith(this.#context)) {
      // the context reads otherwise with what followed (a decoder that looks across tokens): decode the whole list
      [this.#from, this.#to, this.#context, this.#settled] = [0, 0, '', 0];
      window = this.#tokenizer.decode(this.#ids);
    }
    const fresh = window.slice(this.#context.length);
    const kept = this.#settled - this.#base;
    const text = kept >= 0 ? this.#local.slice(0, kept) + fresh : fresh.slice(-kept);
    this.#local = text;
    let cut = -1;
    for (const s of this.#stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#length = cut;
      return { delta: this.end(), stopped: true };
    }
    this.#length = text.length;
    // an incomplete multi-byte character decodes as U+FFFD until its last byte arrives
    let safe = text.length;
    while (safe > this.#sent - this.#base && text[safe - 1] === '\uFFFD') safe--;
    const settled = text.slice(0, safe);
    for (const s of this.#stops) {
      for (let k = Math.min(s.length - 1, settled.length); k > 0; k--) {
        if (settled.endsWith(s.slice(0, k))) {
          safe = Math.min(safe, settled.length - k);
          break;
        }
      }
    }
    const delta = this.#take(safe);
    const next = this.#to === this.#from ? fresh : this.#tokenizer.decode(this.#ids.slice(this.#to));
    if (next !== '' && !next.endsWith('\uFFFD')) [this.#from, this.#to, this.#context, this.#settled] = [this.#to, this.#ids.length, next, this.#base + text.length];
    const base = Math.min(this.#sent, this.#settled);
    if (base > this.#base) {
      this.#done += text.slice(0, base - this.#base);
      this.#local = text.slice(base - this.#base);
      this.#length = this.#local.length;
      this.#base = base;
    }
    return { delta, stopped: false };
  }

  /** The text not released yet (at the end of the request). */
  end(): string {
    return this.#take(this.#length);
  }

  /** Releases #local up to `end`. */
  #take(end: number): string {
    const sent = this.#sent - this.#base;
    if (end <= sent) return '';
    const delta = this.#local.slice(sent, end);
    this.#sent = this.#base + end;
    return delta;
  }
}

/** What a completion request asks for, checked. */
interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | undefined;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

interface Generation {
  text: string;
  finishReason: 'stop' | 'length';
  promptTokens: number;
  completionTokens: number;
}

/**
 * A request value as error messages show it: JSON, cut short when long. JSON has no Infinity, but JSON.parse reads
 * numbers past the double range (1e400) as ±Infinity, which JSON.stringify would print as null.
 */
function shown(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return `${String(v)} (the number is out of range)`;
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

function field(body: Json, name: string, ok: (v: unknown) => boolean, what: string): unknown {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (!ok(v)) throw new HttpError(400, `'${name}' must be ${what}, not ${shown(v)}`, name, 'invalid_type');
  return v;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Fields that would change the reply in ways this server does not implement: refused rather than ignored. */
const UNSUPPORTED: [string, (v: unknown) => boolean][] = [
  ['best_of', (v) => v === 1],
  ['echo', (v) => v === false],
  ['suffix', (v) => v === ''],
  ['logprobs', (v) => v === false],
  ['top_logprobs', (v) => v === 0],
  ['logit_bias', (v) => isObject(v) && Object.keys(v).length === 0],
  ['presence_penalty', (v) => v === 0],
  ['frequency_penalty', (v) => v === 0],
  ['tools', (v) => Array.isArray(v) && v.length === 0],
  ['functions', (v) => Array.isArray(v) && v.length === 0],
];

function sampling(body: Json): Sampling {
  for (const [name, harmless] of UNSUPPORTED) {
    const v = body[name];
    if (v !== undefined && v !== null && !harmless(v)) throw new HttpError(400, `'${name}' is not supported by this server`, name, 'unsupported_parameter');
  }
  // plain text is what the server writes anyway; JSON modes would need constrained decoding, which it does not do
  const format = body.response_format;
  if (format !== undefined && format !== null && !(isObject(format) && format.type === 'text')) {
    const type = isObject(format) && typeof format.type === 'string' ? ` for type ${shown(format.type)}` : '';
    throw new HttpError(400, `'response_format' is not supported by this server${type}: it does not constrain its output to JSON; only { "type": "text" } is accepted`, 'response_format', 'unsupported_parameter');
  }
  const n = field(body, 'n', isInt, 'an integer');
  if (n !== undefined && n !== 1) throw new HttpError(400, `only 'n' = 1 is supported, not ${shown(n)}`, 'n', 'unsupported_value');
  field(body, 'model', (v) => typeof v === 'string', 'a string');
  const positive = (v: unknown) => isInt(v) && v >= 1;
  const legacyMaxTokens = field(body, 'max_tokens', positive, 'an integer ≥ 1');
  const maxTokens = (field(body, 'max_completion_tokens', positive, 'an integer ≥ 1') ?? legacyMaxTokens ?? 256) as number;
  const temperature = (field(body, 'temperature', (v) => isNumber(v) && v >= 0, 'a number ≥ 0') ?? 1) as number;
  const topP = (field(body, 'top_p', (v) => isNumber(v) && v > 0 && v <= 1, 'a number in (0, 1]') ?? 1) as number;
  // vLLM's extension; -1 and 0 both mean no limit
  const topK = (field(body, 'top_k', (v) => isInt(v) && v >= -1, 'an integer ≥ -1') ?? 0) as number;
  const seed = field(body, 'seed', isInt, 'an integer') as number | undefined;
  const stopField = field(body, 'stop', (v) => typeof v === 'string' || (Array.isArray(v) && v.every((s) => typeof s === 'string')), 'a string or an array of strings') as string | string[] | undefined;
  const stop = stopField === undefined ? [] : typeof stopField === 'string' ? [stopField] : stopField;
  if (stop.some((s) => s.length === 0)) throw new HttpError(400, "'stop' sequences must not be empty", 'stop', 'invalid_value');
  const stream = (field(body, 'stream', (v) => typeof v === 'boolean', 'a boolean') ?? false) as boolean;
  const options = field(body, 'stream_options', isObject, 'an object') as Json | undefined;
  const includeUsage = options === undefined ? false : ((field(options, 'include_usage', (v) => typeof v === 'boolean', 'a boolean') ?? false) as boolean);
  return { maxTokens, temperature, topP, topK: Math.max(0, topK), seed, stop, stream, includeUsage };
}

/** OpenAI message content: a string, or text parts. */
function messageText(content: unknown, at: number): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part: unknown, j) => {
        if (isObject(part) && part.type === 'text' && typeof part.text === 'string') return part.text;
        throw new HttpError(400, `messages[${at}].content[${j}]: only text parts ({ type: 'text', text }) are supported`, 'messages', 'invalid_type');
      })
      .join('');
  }
  throw new HttpError(400, `messages[${at}].content must be a string or an array of text parts`, 'messages', 'invalid_type');
}

function chatMessages(body: Json, maxSeqLen: number): ChatMessage[] {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, "'messages' must be a non-empty array of { role, content }", 'messages', 'invalid_type');
  // every chat template writes at least one token per message (its role header or separator)
  if (messages.length >= maxSeqLen) {
    throw new HttpError(400, `'messages' has ${messages.length} messages, so the prompt has at least ${messages.length} tokens; the model's context is ${maxSeqLen} tokens (prompt and completion together), so a prompt may have at most ${maxSeqLen - 1}`, 'messages', 'context_length_exceeded');
  }
  return messages.map((m: unknown, i) => {
    if (!isObject(m) || typeof m.role !== 'string') throw new HttpError(400, `messages[${i}] must be an object with a string 'role'`, 'messages', 'invalid_type');
    // chat templates know 'system'; OpenAI's newer name for it is 'developer'
    return { role: m.role === 'developer' ? 'system' : m.role, content: messageText(m.content, i) };
  });
}

function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, `the request body is larger than ${max} bytes`, null, 'request_too_large');
  if (Number(req.headers['content-length']) > max) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) return void chunks.push(chunk);
      // keep the connection (the 413 goes out on it) but stop keeping what arrives
      req.off('data', onData);
      req.resume();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('close', () => reject(new Error('the client closed the connection before the body ended')));
  });
}

function parseBody(raw: Buffer): Json {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `the request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json');
  }
  if (!isObject(body)) throw new HttpError(400, 'the request body must be a JSON object', null, 'invalid_json');
  return body;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function errorBody(e: HttpError): Json {
  return { error: { message: e.message, type: e.status >= 500 ? 'server_error' : 'invalid_request_error', param: e.param, code: e.code } };
}

const ROUTES: Record<string, string> = { '/v1/models': 'GET', '/v1/chat/completions': 'POST', '/v1/completions': 'POST' };

/**
 * Prompts are checked against the context before they are tokenized whole: in pieces of about this many characters,
 * stopping as soon as the pieces prove the prompt too long, so a huge body costs about a context's worth of
 * tokenizing, not its own size.
 */
const PIECE_CHARS = 1024;
/**
 * How many more tokens a piece encoded on its own may have than it takes inside the whole text, per edge. Cut before
 * a run of whitespace, a seam changes at most one token with the word, byte-level BPE and llama2.c tokenizers;
 * elsewhere (no whitespace near, or where a message meets its chat template's text) a few more, up to the length of
 * a special token split in two. Both are generous, so that no prompt that fits is refused.
 */
const EDGE_AT_SPACE = 2;
const EDGE = 16;
/** The longest the piecewise count runs before it lets other requests in. */
const SLICE_MS = 5;

const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);

/** Where the piece of `text` from `from` ends: before a run of whitespace where there is one, never inside a surrogate pair. */
function pieceEnd(text: string, from: number): { end: number; atSpace: boolean } {
  const end = from + PIECE_CHARS;
  if (end >= text.length) return { end: text.length, atSpace: false };
  for (let i = end; i > from + PIECE_CHARS / 2; i--) {
    if (isSpace(text[i]) && !isSpace(text[i - 1])) return { end: i, atSpace: true };
  }
  const c = text.charCodeAt(end - 1);
  return { end: c >= 0xd800 && c < 0xdc00 ? end - 1 : end, atSpace: false };
}

export function createServer(opts: ServerOptions): QwenlongServer {
  const { model, tokenizer } = opts;
  const modelName = opts.modelName ?? 'qwenlong';
  const { maxSeqLen, vocabSize } = model.config;
  const maxBodyBytes = opts.maxBodyBytes ?? Math.min(32 * 2 ** 20, Math.max(4 * 2 ** 20, 256 * maxSeqLen));
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new RangeError(`createServer: 'maxBodyBytes' must be a positive integer, not ${String(opts.maxBodyBytes)}`);
  if (tokenizer.vocabSize > vocabSize) {
    throw new RangeError(`createServer: the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocabulary of ${vocabSize}: its ids ${vocabSize} and up would reach the model (is it the model's own tokenizer?)`);
  }
  const owned = opts.engine === undefined;
  const engine = opts.engine ?? new Engine(model, opts.engineOptions);
  const log = opts.log ?? (() => {});
  const stopIds = [...new Set([...defaultStopIds(model.config), ...tokenizer.eosIds])].filter((id) => id >= 0 && id < vocabSize);
  const stopSet = new Set(stopIds);
  const started = Math.floor(Date.now() / 1000);
  const inFlight = new Set<AbortController>();

  const tooLong = (tokens: string, param: string) =>
    new HttpError(400, `the prompt has ${tokens} tokens; the model's context is ${maxSeqLen} tokens (prompt and completion together), so a prompt may have at most ${maxSeqLen - 1}`, param, 'context_length_exceeded');

  /**
   * Refuses (as too long) a text that holds `texts` in order, once they, encoded piece by piece, prove it has at least
   * maxSeqLen tokens, unless what is left to read is no more than what was read: then the caller counts exactly (the
   * error then gives the exact count, for about twice a context's work at most). `edge`: what each text's own ends may
   * lose where they meet the text around them. Between pieces the server serves others; a request whose client went
   * away stops there.
   */
  async function refuseLong(texts: readonly string[], edge: number, param: string, signal: AbortSignal): Promise<void> {
    const total = texts.reduce((n, t) => n + t.length, 0);
    let atLeast = 0, read = 0;
    let since = performance.now();
    for (const text of texts) {
      let before = edge;
      for (let from = 0; from < text.length; ) {
        const { end, atSpace } = pieceEnd(text, from);
        const after = end === text.length ? edge : atSpace ? EDGE_AT_SPACE : EDGE;
        atLeast += Math.max(0, tokenizer.encode(text.slice(from, end), { bos: false }).length - before - after);
        read += end - from;
        if (atLeast >= maxSeqLen) {
          if (total - read > read) throw tooLong(`at least ${atLeast}`, param);
          return;
        }
        [from, before] = [end, after];
        if (performance.now() - since > SLICE_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          if (signal.aborted) throw new Error('the client went away');
          since = performance.now();
        }
      }
    }
  }

  /** The prompt's token ids, after refusing a text too long for the context with work bounded by the context. */
  async function encode(text: string, param: string, signal: AbortSignal): Promise<number[]> {
    if (text.length > PIECE_CHARS) await refuseLong([text], 0, param, signal);
    const ids = tokenizer.encode(text);
    // chat templates that write the BOS token themselves already start with it
    if (tokenizer.bosId !== undefined && ids[0] !== tokenizer.bosId) ids.unshift(tokenizer.bosId);
    const at = ids.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < vocabSize));
    if (at >= 0) {
      throw new HttpError(400, `the prompt's text encodes to token ${shown(ids[at])} (at ${at}), outside the model's vocabulary [0, ${vocabSize}): the tokenizer does not match the model`, param, 'invalid_value');
    }
    return ids;
  }

  function checkPrompt(ids: number[], param: string, s: Sampling): void {
    if (ids.length === 0) throw new HttpError(400, 'the prompt is empty', param, 'invalid_value');
    if (ids.length >= maxSeqLen) throw tooLong(String(ids.length), param);
    const blocks = Math.ceil((ids.length + Math.min(s.maxTokens, maxSeqLen - ids.length)) / engine.cache.blockSize);
    if (blocks > engine.cache.numBlocks) {
      throw new HttpError(400, `the prompt (${ids.length} tokens) and max_tokens (${s.maxTokens}) need up to ${blocks} cache blocks, the server's cache has ${engine.cache.numBlocks}: ask for fewer tokens`, 'max_tokens', 'context_length_exceeded');
    }
  }

  /** Runs one request; `onDelta` receives the text as it becomes final. Undefined when the client went away. */
  async function generate(ids: number[], s: Sampling, signal: AbortSignal, onDelta?: (text: string) => void): Promise<Generation | undefined> {
    const text = new TextStream(tokenizer, s.stop);
    const stopSequence = new AbortController();
    let stopped = false, completionTokens = 0;
    let failure: unknown;
    const r = await engine.submit(ids, {
      maxTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, topK: s.topK, seed: s.seed, stopIds,
      signal: AbortSignal.any([signal, stopSequence.signal]),
      onToken: (token) => {
        if (stopped) return;
        completionTokens++;
        if (stopSet.has(token)) return;
        try {
          const step = text.push(token);
          if (step.delta) onDelta?.(step.delta);
          if (step.stopped) {
            stopped = true;
            stopSequence.abort();
          }
        } catch (e) {
          // decoding failed (e.g. a token the tokenizer does not know): end the request with the error
          failure = e;
          throw e;
        }
      },
    });
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error(String(failure));
    if (r.finishReason === 'abort' && !stopped && signal.aborted) return undefined;
    if (!stopped) {
      const tail = text.end();
      if (tail) onDelta?.(tail);
    }
    return { text: text.text, finishReason: stopped || r.finishReason === 'stop' ? 'stop' : 'length', promptTokens: ids.length, completionTokens };
  }

  const usage = (g: Generation) => ({ prompt_tokens: g.promptTokens, completion_tokens: g.completionTokens, total_tokens: g.promptTokens + g.completionTokens });

  async function complete(res: http.ServerResponse, body: Json, chat: boolean, signal: AbortSignal): Promise<void> {
    const s = sampling(body);
    if (typeof body.model === 'string' && body.model !== modelName) {
      throw new HttpError(404, `the model ${shown(body.model)} is not served here; this server serves '${modelName}'`, 'model', 'model_not_found');
    }
    let ids: number[];
    if (chat) {
      const messages = chatMessages(body, maxSeqLen);
      // before rendering: the messages' own text. Not the assistant's, which some templates shorten (Qwen3's drops
      // the reasoning of earlier turns), so that a conversation that fits is never refused.
      await refuseLong(messages.filter((m) => m.role !== 'assistant').map((m) => m.content), EDGE, 'messages', signal);
      let rendered: string;
      try {
        rendered = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
      } catch (e) {
        throw new HttpError(400, `the chat template refused the messages (${(e as Error).message})`, 'messages', 'invalid_value');
      }
      ids = await encode(rendered, 'messages', signal);
    } else {
      let prompt = body.prompt;
      if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) prompt = prompt[0];
      if (typeof prompt === 'string') ids = await encode(prompt, 'prompt', signal);
      else if (Array.isArray(prompt) && prompt.every((t) => isInt(t) && t >= 0 && t < vocabSize)) ids = prompt as number[];
      else throw new HttpError(400, `'prompt' must be a string, an array of one string, or token ids in [0, ${vocabSize})`, 'prompt', 'invalid_type');
    }
    checkPrompt(ids, chat ? 'messages' : 'prompt', s);

    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: chat ? 'chat.completion' : 'text_completion', created, model: modelName };
    if (!s.stream) {
      const g = await generate(ids, s, signal);
      if (!g) return;
      const choice = chat
        ? { index: 0, message: { role: 'assistant', content: g.text }, logprobs: null, finish_reason: g.finishReason }
        : { index: 0, text: g.text, logprobs: null, finish_reason: g.finishReason };
      sendJson(res, 200, { ...head, choices: [choice], usage: usage(g) });
      return;
    }

    const chunkHead = { ...head, object: chat ? 'chat.completion.chunk' : 'text_completion' };
    const send = (data: unknown) => void res.write(`data: ${JSON.stringify(data)}\n\n`);
    const chunk = (delta: Json | string, finishReason: string | null) => ({
      ...chunkHead,
      choices: [chat ? { index: 0, delta, logprobs: null, finish_reason: finishReason } : { index: 0, text: delta, logprobs: null, finish_reason: finishReason }],
      ...(s.includeUsage ? { usage: null } : {}),
    });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    if (chat) send(chunk({ role: 'assistant', content: '' }, null));
    else res.flushHeaders();
    let g: Generation | undefined;
    try {
      g = await generate(ids, s, signal, (text) => send(chunk(chat ? { content: text } : text, null)));
    } catch (e) {
      if (signal.aborted) return;
      // the status line is gone: the error travels as an event, as OpenAI's streams carry them
      log(`serve: ${(e as Error).stack ?? String(e)}`);
      send(errorBody(new HttpError(500, `the engine failed: ${(e as Error).message}`)));
      res.end('data: [DONE]\n\n');
      return;
    }
    if (!g) return;
    send(chunk(chat ? {} : '', g.finishReason));
    if (s.includeUsage) send({ ...chunkHead, choices: [], usage: usage(g) });
    res.end('data: [DONE]\n\n');
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, signal: AbortSignal): Promise<void> {
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname).replace(/\/+$/, '');
    } catch {
      throw new HttpError(400, `malformed request path ${JSON.stringify(req.url)}`, null, 'invalid_path');
    }
    const method = ROUTES[path] ?? (path.startsWith('/v1/models/') ? 'GET' : undefined);
    if (method === undefined) throw new HttpError(404, `no route ${req.method ?? ''} ${path || '/'}; this server has GET /v1/models, POST /v1/chat/completions, POST /v1/completions`, null, 'not_found');
    // HEAD is GET without the body (node's response leaves the body out by itself)
    const allowed = method === 'GET' ? ['GET', 'HEAD'] : [method];
    if (!allowed.includes(req.method ?? '')) throw new HttpError(405, `${path} takes ${method}, not ${req.method ?? ''}`, null, 'method_not_allowed', { allow: allowed.join(', ') });
    const card = { id: modelName, object: 'model', created: started, owned_by: 'qwenlong', max_model_len: maxSeqLen };
    if (path === '/v1/models') return sendJson(res, 200, { object: 'list', data: [card] });
    if (path.startsWith('/v1/models/')) {
      const name = path.slice('/v1/models/'.length);
      if (name !== modelName) throw new HttpError(404, `the model '${name}' is not served here; this server serves '${modelName}'`, 'model', 'model_not_found');
      return sendJson(res, 200, card);
    }
    await complete(res, parseBody(await readBody(req, maxBodyBytes)), path === '/v1/chat/completions', signal);
  }

  const server = http.createServer((req, res) => {
    const ctl = new AbortController();
    inFlight.add(ctl);
    // 'close' before the response finished: the client went away (or the server is closing)
    res.on('close', () => {
      inFlight.delete(ctl);
      if (!res.writableFinished) ctl.abort();
    });
    handle(req, res, ctl.signal).catch((e: unknown) => {
      if (res.destroyed || ctl.signal.aborted) return;
      const err = e instanceof HttpError ? e : new HttpError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, null, 'internal_error');
      if (!(e instanceof HttpError)) log(`serve: ${(e as Error)?.stack ?? String(e)}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // an unread body (413) would otherwise be read to its end before the connection is reused
      sendJson(res, err.status, errorBody(err), { ...err.headers, ...(err.status === 413 ? { connection: 'close' } : {}) });
    });
  });

  let closing: Promise<void> | undefined;
  return {
    server,
    engine,
    modelName,
    listen(port: number, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const { port: bound } = server.address() as AddressInfo;
          resolve({ url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/v1` });
        });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const ctl of inFlight) ctl.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      }).finally(() => {
        if (owned) engine.dispose();
      });
      return closing;
    },
  };
}
