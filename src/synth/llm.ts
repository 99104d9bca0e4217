import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { SynthError } from './errors.js';
import type { SourceDocument } from './documents.js';
import { extractDocument, parseQuantity } from './extract.js';
import type { Extraction, SynthQuestion } from './types.js';
import { findWord, splitSentences } from './text.js';
import { isCorrect } from './scoring.js';
import type { BuiltContext } from './context.js';

/**
 * OpenAI-compatible chat completions: JSON-schema'd output, bounded concurrency, retries with exponential
 * backoff on network errors, timeouts, 429/5xx and malformed JSON, and a cache keyed by the SHA-256 of the
 * request so a rerun pays nothing.
 */

export interface LlmOptions {
  /** Base URL (`http://host:port/v1`) or the full `/chat/completions` URL. */
  url: string;
  model: string;
  apiKey?: string;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** Per request, milliseconds. Default 60000. */
  timeoutMs?: number;
  /** Retries after the first try. Default 3. */
  retries?: number;
  /** First backoff, milliseconds (doubles each retry). Default 500. */
  backoffMs?: number;
  /** Samples for the contextual-robustness check (pass@k). Default 2. */
  samples?: number;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface JsonSchema {
  name: string;
  schema: Record<string, unknown>;
}

class RetryableError extends Error {}

/** An HTTP error that retrying cannot fix; `body` is the start of the server's reply. */
class HttpStatusError extends SynthError {
  constructor(
    message: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(message);
  }
}

/** A reply's text as JSON: the whole text, the text inside a code fence, or the outermost {…} or […] in it. */
function parseJsonReply(content: string): unknown {
  const text = content.trim().replace(/^```(?:json)?\s*|\s*```$/g, '');
  try {
    return JSON.parse(text);
  } catch {
    for (const [open, close] of [['{', '}'], ['[', ']']] as const) {
      const a = text.indexOf(open);
      const b = text.lastIndexOf(close);
      if (a < 0 || b <= a) continue;
      try {
        return JSON.parse(text.slice(a, b + 1));
      } catch {
        // try the next shape
      }
    }
    throw new RetryableError('the message content is not valid JSON');
  }
}

export class LlmClient {
  readonly endpoint: string;
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** Requests actually sent (cache hits excluded), for the summary and tests. */
  requests = 0;
  /**
   * Whether to ask for JSON with `response_format`. Servers that refuse it (HTTP 400 naming the field, as
   * `qwenlong serve` does) are asked again without it, with the schema in the instructions instead, and the
   * JSON is read from the plain reply; the client then stops sending it.
   */
  structuredOutput = true;

  constructor(
    readonly opts: LlmOptions,
    private readonly cacheDb?: Database.Database,
  ) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new SynthError(`--llm: not a valid URL: ${JSON.stringify(opts.url)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SynthError(`--llm: the URL must be http or https (got ${u.protocol})`);
    if (!opts.model) throw new SynthError('--model: a model name is required with --llm');
    this.endpoint = u.pathname.endsWith('/chat/completions') ? u.href : `${u.href.replace(/\/+$/, '')}/chat/completions`;
    cacheDb?.exec('CREATE TABLE IF NOT EXISTS llm_cache(key TEXT PRIMARY KEY, response TEXT)');
  }

  private async slot<T>(fn: () => Promise<T>): Promise<T> {
    const limit = Math.max(1, this.opts.concurrency ?? 4);
    if (this.active >= limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  /** One plain chat completion (no cache): the message text and the token usage the server reports. */
  async chat(messages: ChatMessage[], o: { maxTokens?: number; temperature?: number; seed?: number; signal?: AbortSignal } = {}): Promise<{ content: string; completionTokens?: number; promptTokens?: number }> {
    const body = { model: this.opts.model, messages, max_tokens: o.maxTokens, temperature: o.temperature ?? 0, seed: o.seed };
    return this.retrying(async () => {
      const res = (await this.send(body, o.signal)) as { choices?: Array<{ message?: { content?: unknown } }>; usage?: { completion_tokens?: number; prompt_tokens?: number } };
      const content = res.choices?.[0]?.message?.content;
      if (typeof content !== 'string') throw new RetryableError('the response has no choices[0].message.content');
      return { content, completionTokens: res.usage?.completion_tokens, promptTokens: res.usage?.prompt_tokens };
    });
  }

  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    const retries = this.opts.retries ?? 3;
    let lastError = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, (this.opts.backoffMs ?? 500) * 2 ** (attempt - 1)));
      try {
        return await this.slot(fn);
      } catch (e) {
        if (!(e instanceof RetryableError)) throw e;
        lastError = e.message;
      }
    }
    throw new SynthError(`--llm ${this.endpoint}: gave up after ${retries + 1} tries: ${lastError}`);
  }

  /** One JSON answer matching `schema`; `sample` > 0 asks for a sampled (temperature 0.7) answer, cached apart. */
  async json<T>(messages: ChatMessage[], schema: JsonSchema, sample = 0): Promise<T> {
    const body = {
      model: this.opts.model,
      messages,
      temperature: sample > 0 ? 0.7 : 0,
      seed: sample,
      response_format: { type: 'json_schema', json_schema: { name: schema.name, schema: schema.schema, strict: true } },
    };
    // The key is the request as asked for, whichever way the server had to be asked.
    const key = createHash('sha256').update(JSON.stringify(body)).digest('hex');
    const cached = this.cacheDb?.prepare('SELECT response FROM llm_cache WHERE key = ?').get(key) as { response: string } | undefined;
    if (cached) return JSON.parse(cached.response) as T;
    const value = await this.retrying(async () => {
      const res = (await this.sendStructured(body, schema)) as { choices?: Array<{ message?: { content?: unknown } }> };
      const content = res.choices?.[0]?.message?.content;
      if (typeof content !== 'string') throw new RetryableError('the response has no choices[0].message.content');
      return parseJsonReply(content);
    });
    this.cacheDb?.prepare('INSERT OR REPLACE INTO llm_cache(key, response) VALUES (?, ?)').run(key, JSON.stringify(value));
    return value as T;
  }

  /** Sends `body` with its `response_format`, or without it (the schema put in the instructions) where refused. */
  private async sendStructured(body: { messages: ChatMessage[]; response_format: unknown }, schema: JsonSchema): Promise<unknown> {
    const { response_format: _format, ...plain } = body;
    const instruction = `Reply with one JSON value and nothing else, matching this JSON schema: ${JSON.stringify(schema.schema)}`;
    const [first, ...rest] = body.messages;
    const messages: ChatMessage[] = first?.role === 'system' ? [{ role: 'system', content: `${first.content}\n${instruction}` }, ...rest] : [{ role: 'system', content: instruction }, ...body.messages];
    const withoutFormat = { ...plain, messages };
    if (!this.structuredOutput) return this.send(withoutFormat);
    try {
      return await this.send(body);
    } catch (e) {
      if (!(e instanceof HttpStatusError && e.status === 400 && /response_format|json_schema/.test(e.body))) throw e;
      this.structuredOutput = false;
      return this.send(withoutFormat);
    }
  }

  /** POSTs a body; the parsed JSON response. */
  private async send(body: unknown, signal?: AbortSignal): Promise<unknown> {
    this.requests++;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    let res: Response;
    try {
      res = await fetch(this.endpoint, { method: 'POST', headers, body: JSON.stringify(body), signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(this.opts.timeoutMs ?? 60_000)]) : AbortSignal.timeout(this.opts.timeoutMs ?? 60_000) });
    } catch (e) {
      const err = e as Error;
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : err; // the caller's abort: no retry
      throw new RetryableError(err.name === 'TimeoutError' ? `timed out after ${this.opts.timeoutMs ?? 60_000} ms` : `request failed (${err.message})`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw new RetryableError(`reading the response failed (${(e as Error).message})`);
    }
    if (res.status === 429 || res.status >= 500) throw new RetryableError(`HTTP ${res.status}`);
    if (!res.ok) throw new HttpStatusError(`--llm ${this.endpoint}: HTTP ${res.status}: ${text.slice(0, 200)}`, res.status, text.slice(0, 2000));
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new RetryableError('the response is not JSON');
    }
  }
}

const EXTRACT_SCHEMA: JsonSchema = {
  name: 'facts',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['entities', 'facts', 'numbers'],
    properties: {
      entities: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['name', 'type'], properties: { name: { type: 'string' }, type: { type: 'string', enum: ['person', 'place', 'organization', 'date', 'other'] } } } },
      facts: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['subject', 'relation', 'object'], properties: { subject: { type: 'string' }, relation: { type: 'string' }, object: { type: 'string' } } } },
      numbers: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['subject', 'attribute', 'written', 'unit'], properties: { subject: { type: 'string' }, attribute: { type: 'string' }, written: { type: 'string' }, unit: { type: 'string' } } } },
    },
  },
};

interface LlmFacts {
  entities: Array<{ name: string; type: string }>;
  facts: Array<{ subject: string; relation: string; object: string }>;
  numbers: Array<{ subject: string; attribute: string; written: string; unit: string }>;
}

const CHUNK_CHARS = 6000;

/**
 * Extract with the LLM, a chunk of passages per request. Header facts come from the offline extractor. Only
 * what can be found in the chunk is kept: every name must occur in it, a fact's subject and object in one
 * sentence (its evidence), a number as written.
 */
export async function llmExtractDocument(client: LlmClient, d: SourceDocument): Promise<Extraction> {
  const base = extractDocument({ ...d, text: d.text.slice(0, d.headerEnd), passages: [], tables: d.tables });
  const chunks: Array<[number, number]> = [];
  for (const p of d.passages) {
    if (p.end <= d.headerEnd) continue;
    const last = chunks[chunks.length - 1];
    if (last && p.end - last[0] <= CHUNK_CHARS) last[1] = p.end;
    else chunks.push([p.start, p.end]);
  }
  const results = await Promise.all(
    chunks.map(([a, b]) =>
      client.json<LlmFacts>(
        [
          { role: 'system', content: 'Extract named entities, subject-relation-object facts between named entities, and numbers with what they measure, exactly as written in the text. Return JSON only.' },
          { role: 'user', content: d.text.slice(a, b) },
        ],
        EXTRACT_SCHEMA,
      ),
    ),
  );
  results.forEach((r, i) => {
    const [a, b] = chunks[i]!;
    const chunk = d.text.slice(a, b);
    const sentences = splitSentences(chunk);
    const sentenceAt = (off: number) => sentences.find(([s, e]) => s <= off && off < e);
    const types = new Map<string, string>();
    for (const e of Array.isArray(r.entities) ? r.entities : []) {
      if (typeof e?.name !== 'string' || typeof e.type !== 'string') continue;
      const at = findWord(chunk, e.name);
      if (at < 0 || e.type === 'date') continue;
      const type = e.type === 'other' ? 'name' : e.type;
      types.set(e.name, type);
      base.mentions.push({ name: chunk.slice(at, at + e.name.length), type, span: { doc: d.id, start: a + at, end: a + at + e.name.length } });
    }
    for (const f of Array.isArray(r.facts) ? r.facts : []) {
      if (typeof f?.subject !== 'string' || typeof f.object !== 'string' || typeof f.relation !== 'string') continue;
      const sa = findWord(chunk, f.subject);
      if (sa < 0) continue;
      const sent = sentenceAt(sa);
      if (!sent || findWord(chunk.slice(sent[0], sent[1]), f.object) < 0) continue;
      const rel = f.relation.toLowerCase().trim();
      if (rel.length === 0) continue;
      base.relations.push({
        subject: { name: f.subject, type: types.get(f.subject) ?? 'name' },
        object: { name: f.object, type: types.get(f.object) ?? 'name' },
        relation: rel,
        surface: rel,
        span: { doc: d.id, start: a + sent[0], end: a + sent[1] },
      });
    }
    for (const n of Array.isArray(r.numbers) ? r.numbers : []) {
      if (typeof n?.written !== 'string' || typeof n.attribute !== 'string') continue;
      const at = chunk.indexOf(n.written);
      const value = parseQuantity(n.written);
      const sent = at >= 0 ? sentenceAt(at) : undefined;
      if (at < 0 || value === null || !sent) continue;
      const s = chunk.slice(sent[0], sent[1]);
      const rel = at - sent[0];
      base.numbers.push({
        label: `${s.slice(0, rel)}___${s.slice(rel + n.written.length)}`.replace(/\s+/g, ' '),
        attribute: n.attribute.toLowerCase(),
        value,
        unit: typeof n.unit === 'string' ? n.unit : '',
        span: { doc: d.id, start: a + sent[0], end: a + sent[1] },
        valueSpan: { doc: d.id, start: a + at, end: a + at + n.written.length },
      });
    }
  });
  return base;
}

const ANSWER_SCHEMA: JsonSchema = {
  name: 'answer',
  schema: { type: 'object', additionalProperties: false, required: ['answer'], properties: { answer: { type: 'string' } } },
};

function parseAnswer(q: SynthQuestion, raw: string): unknown {
  if (Array.isArray(q.answer)) {
    try {
      const v: unknown = JSON.parse(raw);
      if (Array.isArray(v)) return v;
    } catch {
      // not JSON: fall back to a comma-separated list
    }
  }
  return raw;
}

async function ask(client: LlmClient, q: SynthQuestion, context: string | null, sample: number): Promise<boolean> {
  const content = context === null ? q.question : `${context}\n\n${q.question}`;
  const r = await client.json<{ answer: unknown }>(
    [
      { role: 'system', content: 'Answer the question. Reply with JSON {"answer": "..."} and nothing else.' },
      { role: 'user', content },
    ],
    ANSWER_SCHEMA,
    sample,
  );
  return isCorrect(parseAnswer(q, String(r?.answer ?? '')), q.answer, q.aliases);
}

/**
 * The paper's two checks. Knowledge grounding: a question the model answers without its context is dropped.
 * Contextual robustness: with more distractors added, a question no sample answers is dropped. Returns the
 * rejection reason or null.
 */
export async function llmVerify(client: LlmClient, q: SynthQuestion, longer: (() => BuiltContext | { reject: string }) | null): Promise<string | null> {
  if (q.task !== 'dialogue-memory' && (await ask(client, q, null, 0))) return 'answerable-without-context';
  const ctx = longer ? longer() : null;
  const context = ctx && !('reject' in ctx) ? ctx.context : q.context;
  const k = Math.max(1, client.opts.samples ?? 2);
  const results = await Promise.all(Array.from({ length: k }, (_, i) => ask(client, q, context, i + 1)));
  return results.some(Boolean) ? null : 'not-robust';
}
