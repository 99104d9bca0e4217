import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LlmClient, llmExtractDocument, llmVerify } from '../../src/synth/llm.js';
import { SynthError } from '../../src/synth/errors.js';
import type { SourceDocument } from '../../src/synth/documents.js';
import type { SynthQuestion } from '../../src/synth/types.js';

/**
 * A local chat-completions server whose behaviour each test scripts: a queue of replies (status, body,
 * delay), and a record of requests and of the most requests in flight at once.
 */
type Reply = { status?: number; content?: string; raw?: string; delayMs?: number };
let queue: Array<Reply | ((body: { messages: Array<{ content: string }> }) => Reply)> = [];
let fallback: (body: { messages: Array<{ content: string }> }) => Reply = () => ({ content: '{"answer":"x"}' });
let requests: Array<{ messages: Array<{ content: string }>; model: string; response_format: unknown }> = [];
let inFlight = 0;
let maxInFlight = 0;
const server = http.createServer((req, res) => {
  let data = '';
  req.on('data', (c) => (data += c));
  req.on('end', () => {
    const body = JSON.parse(data);
    requests.push(body);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const next = queue.shift() ?? fallback;
    const r = typeof next === 'function' ? next(body) : next;
    setTimeout(() => {
      inFlight--;
      if (res.destroyed) return;
      res.writeHead(r.status ?? 200, { 'content-type': 'application/json' });
      res.end(r.raw ?? JSON.stringify({ choices: [{ message: { role: 'assistant', content: r.content ?? '' } }] }));
    }, r.delayMs ?? 0);
  });
});
let url = '';

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  queue = [];
  requests = [];
  inFlight = 0;
  maxInFlight = 0;
  fallback = () => ({ content: '{"answer":"x"}' });
});

const schema = { name: 'answer', schema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] } };
const ask = (c: LlmClient, text = 'q') => c.json<{ answer: string }>([{ role: 'user', content: text }], schema);
const fast = { backoffMs: 5, timeoutMs: 2000 };

describe('LLM client (chat completions)', () => {
  it('sends the model, the messages and a JSON schema, and parses the reply', async () => {
    queue.push({ content: '{"answer":"Paris"}' });
    const c = new LlmClient({ url, model: 'm1', ...fast });
    expect(await ask(c)).toEqual({ answer: 'Paris' });
    expect(requests[0]!.model).toBe('m1');
    expect(requests[0]!.response_format).toMatchObject({ type: 'json_schema', json_schema: { name: 'answer' } });
  });

  it('retries server errors, 429s, malformed JSON and timeouts, then succeeds', async () => {
    queue.push({ status: 500, raw: 'oops' }, { status: 429, raw: '{}' }, { content: 'not json {' }, { raw: '<html>' }, { content: '{"answer":"late"}', delayMs: 2000 }, { content: '{"answer":"ok"}' });
    const c = new LlmClient({ url, model: 'm', backoffMs: 1, timeoutMs: 500, retries: 6 });
    expect(await ask(c)).toEqual({ answer: 'ok' });
    expect(requests.length).toBe(6);
  });

  it('gives up with a clear error after the retries', async () => {
    fallback = () => ({ status: 503, raw: 'down' });
    const c = new LlmClient({ url, model: 'm', backoffMs: 1, retries: 2 });
    await expect(ask(c)).rejects.toThrow(/gave up after 3 tries: HTTP 503/);
  });

  it('does not retry a client error and names the endpoint', async () => {
    queue.push({ status: 401, raw: '{"error":"bad key"}' });
    const c = new LlmClient({ url, model: 'm', ...fast });
    await expect(ask(c)).rejects.toThrow(SynthError);
    expect(requests.length).toBe(1);
  });

  it('asks again without response_format when the server refuses it, and reads JSON from the plain reply', async () => {
    const refuse = (body: { response_format?: unknown }): Reply =>
      body.response_format !== undefined
        ? { status: 400, raw: JSON.stringify({ error: { message: "'response_format' is not supported by this server", type: 'invalid_request_error', param: 'response_format', code: 'unsupported_parameter' } }) }
        : { content: 'Here it is: {"answer": "Paris"} — hope that helps.' };
    fallback = refuse as typeof fallback;
    const c = new LlmClient({ url, model: 'm', ...fast });
    expect(await ask(c, 'capital?')).toEqual({ answer: 'Paris' });
    expect(requests.map((r) => r.response_format === undefined)).toEqual([false, true]);
    // The schema moves into the instructions (the first, system, message).
    const retried = requests[1] as unknown as { messages: Array<{ role: string; content: string }> };
    expect(retried.messages[0]!.role).toBe('system');
    expect(retried.messages[0]!.content).toContain(JSON.stringify(schema.schema));
    expect(retried.messages.at(-1)).toEqual({ role: 'user', content: 'capital?' });
    // The client remembers: the next request goes without it at once.
    expect(await ask(c, 'again?')).toEqual({ answer: 'Paris' });
    expect(requests.length).toBe(3);
    expect(requests[2]!.response_format).toBeUndefined();
  });

  it('does not retry a 400 about something else', async () => {
    queue.push({ status: 400, raw: JSON.stringify({ error: { message: "'messages' must be a non-empty array", param: 'messages' } }) });
    const c = new LlmClient({ url, model: 'm', ...fast });
    await expect(ask(c)).rejects.toThrow(/HTTP 400: .*'messages' must be/);
    expect(requests.length).toBe(1);
    expect(c.structuredOutput).toBe(true);
  });

  it('rejects bad arguments', () => {
    expect(() => new LlmClient({ url: 'not a url', model: 'm' })).toThrow(/--llm/);
    expect(() => new LlmClient({ url: 'ftp://x', model: 'm' })).toThrow(/http/);
    expect(() => new LlmClient({ url, model: '' })).toThrow(/--model/);
  });

  it('caches by content hash so a rerun sends nothing', async () => {
    const db = new Database(':memory:');
    queue.push({ content: '{"answer":"one"}' });
    const c1 = new LlmClient({ url, model: 'm', ...fast }, db);
    expect(await ask(c1, 'same')).toEqual({ answer: 'one' });
    const c2 = new LlmClient({ url, model: 'm', ...fast }, db);
    expect(await ask(c2, 'same')).toEqual({ answer: 'one' });
    expect(requests.length).toBe(1);
    expect(c2.requests).toBe(0);
    await ask(c2, 'different');
    expect(requests.length).toBe(2);
    db.close();
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    fallback = () => ({ content: '{"answer":"x"}', delayMs: 30 });
    const c = new LlmClient({ url, model: 'm', concurrency: 3, ...fast });
    await Promise.all(Array.from({ length: 10 }, (_, i) => ask(c, `q${i}`)));
    expect(requests.length).toBe(10);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(maxInFlight).toBeGreaterThan(1);
  });
});

describe('LLM extractor and checks', () => {
  const text = 'Notes\n\nAda Lovelace worked with Charles Babbage in London. The engine cost 17,000 pounds.';
  const doc: SourceDocument = { id: 'd1', title: 'Notes', source: 'mem', text, meta: {}, headerEnd: 7, passages: [{ start: 0, end: 5, tokens: 1 }, { start: 7, end: text.length, tokens: 20 }], tables: [] };

  it('keeps only what is found in the text, with exact spans', async () => {
    queue.push({
      content: JSON.stringify({
        entities: [{ name: 'Ada Lovelace', type: 'person' }, { name: 'Charles Babbage', type: 'person' }, { name: 'London', type: 'place' }, { name: 'Invented Person', type: 'person' }],
        facts: [{ subject: 'Ada Lovelace', relation: 'worked with', object: 'Charles Babbage' }, { subject: 'Ada Lovelace', relation: 'met', object: 'Invented Person' }],
        numbers: [{ subject: 'engine', attribute: 'cost', written: '17,000', unit: 'pounds' }, { subject: 'x', attribute: 'y', written: '99', unit: '' }],
      }),
    });
    const c = new LlmClient({ url, model: 'm', ...fast });
    const ex = await llmExtractDocument(c, doc);
    expect(ex.mentions.map((m) => m.name).sort()).toEqual(['Ada Lovelace', 'Charles Babbage', 'London']);
    for (const m of ex.mentions) expect(text.slice(m.span.start, m.span.end)).toBe(m.name);
    expect(ex.relations).toHaveLength(1);
    expect(text.slice(ex.relations[0]!.span.start, ex.relations[0]!.span.end)).toBe('Ada Lovelace worked with Charles Babbage in London.');
    expect(ex.numbers).toHaveLength(1);
    expect(ex.numbers[0]!.value).toBe(17000);
    expect(text.slice(ex.numbers[0]!.valueSpan.start, ex.numbers[0]!.valueSpan.end)).toBe('17,000');
  });

  it('survives a reply of the wrong shape', async () => {
    queue.push({ content: JSON.stringify({ entities: 'none', facts: [null, 3], numbers: [{}] }) });
    const c = new LlmClient({ url, model: 'm', ...fast });
    const ex = await llmExtractDocument(c, doc);
    expect(ex.relations).toHaveLength(0);
  });

  const q: SynthQuestion = { id: 'q', task: 'multihop', question: 'Who worked with Ada Lovelace?', answer: 'Charles Babbage', context: text, evidence: [{ doc: 'd1', start: 7, end: 58 }], hops: 1, tokens: 20, seed: 's', meta: {} };

  it('drops a question answered without its context (knowledge grounding)', async () => {
    fallback = () => ({ content: '{"answer":"Charles Babbage"}' });
    const c = new LlmClient({ url, model: 'm', ...fast });
    expect(await llmVerify(c, q, null)).toBe('answerable-without-context');
  });

  it('drops a question no sample answers with distractors added (contextual robustness)', async () => {
    fallback = () => ({ content: '{"answer":"nobody"}' });
    const c = new LlmClient({ url, model: 'm', samples: 3, ...fast });
    expect(await llmVerify(c, q, null)).toBe('not-robust');
    expect(requests.length).toBe(4);
  });

  it('keeps a question answered only with its context', async () => {
    fallback = (body) => ({ content: body.messages[1]!.content.includes('Ada Lovelace worked') ? '{"answer":"charles babbage"}' : '{"answer":"unknown"}' });
    const c = new LlmClient({ url, model: 'm', ...fast });
    expect(await llmVerify(c, q, null)).toBeNull();
  });
});

describe('synthesis with --llm checks', () => {
  const world = { seed: 11, people: 16, cities: 5, countries: 2, organizations: 4 };
  /** A solver for dialogue-memory questions: finds the i-th reply to the request in the conversation. */
  const solver = (body: { messages: Array<{ content: string }> }): Reply => {
    const text = body.messages[1]!.content;
    const m = /the user asked "(.*)" \d+ times\. Reproduce, word for word, the assistant's reply to the (\w+) of these requests/.exec(text);
    if (!m) return { content: '{"answer":"unknown"}' };
    const index = ['first', 'second', 'third', 'fourth'].indexOf(m[2]!);
    const replies = text.split('\n\n').map((t) => /^User: (.*)\nAssistant: (.*)$/.exec(t)).filter((t) => t && t[1] === m[1]);
    return { content: JSON.stringify({ answer: replies[index]?.[2] ?? 'unknown' }) };
  };

  it('keeps questions the model answers only with the context, and a rerun is served from the cache', async () => {
    const { synthesize } = await import('../../src/synth/pipeline.js');
    const { tmpDir, readLines } = await import('./helpers.js');
    const fs = await import('node:fs');
    const path = await import('node:path');
    const dir = tmpDir('llm-run');
    try {
      fallback = solver;
      const base = { inputs: [], count: 3, tasks: ['dialogue-memory' as const], targetTokens: 1000, seed: 'l', world, workDir: path.join(dir, 'work'), llm: { url, model: 'm', backoffMs: 1 } };
      const a = await synthesize({ ...base, out: path.join(dir, 'a.jsonl') });
      expect(a.written).toBe(3);
      const sent = requests.length;
      expect(sent).toBe(6); // two robustness samples per question; dialogue questions skip the no-context ask
      const b = await synthesize({ ...base, out: path.join(dir, 'b.jsonl') });
      expect(b.written).toBe(3);
      expect(requests.length).toBe(sent);
      expect(fs.readFileSync(path.join(dir, 'a.jsonl'))).toEqual(fs.readFileSync(path.join(dir, 'b.jsonl')));
      expect(readLines(path.join(dir, 'a.jsonl')).every((q) => q.task === 'dialogue-memory')).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts rejections by the LLM checks and ends cleanly when nothing passes', async () => {
    const { synthesize } = await import('../../src/synth/pipeline.js');
    const { tmpDir } = await import('./helpers.js');
    const fs = await import('node:fs');
    const path = await import('node:path');
    const dir = tmpDir('llm-none');
    try {
      fallback = () => ({ content: '{"answer":"unknown"}' });
      const s = await synthesize({ inputs: [], out: path.join(dir, 'q.jsonl'), count: 1, tasks: ['comparison'], targetTokens: 800, seed: 'n', world, llm: { url, model: 'm', backoffMs: 1 }, maxTaskFailures: 20 });
      expect(s.written).toBe(0);
      expect(s.finished).toBe(true);
      expect(s.rejections['not-robust']).toBe(20);
      expect(s.attempts).toBe(20);
      expect(fs.readFileSync(path.join(dir, 'q.jsonl'), 'utf8')).toBe('');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
