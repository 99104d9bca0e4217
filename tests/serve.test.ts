// `qwenlong serve` through the official openai client (and raw fetch for what a client would never send): greedy
// replies must equal CausalLM.generate + decode on the same prompt ids (an independent path: no engine, no server),
// streamed text must equal the whole reply, concurrent requests must share forwards, a client that goes away must
// give its cache blocks back, and bad input must get a 4xx with OpenAI's error JSON while the server keeps serving.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLM, initWeights, loadModel, WordTokenizer, type ModelConfig, type TextTokenizer } from '../src/index.js';
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
