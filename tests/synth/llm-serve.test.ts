// synth's LLM client against this package's own `qwenlong serve`, which refuses `response_format`: the client
// must ask again without it. A recording proxy in front of the real server shows what was sent and answered.
// (The served model has random weights and no braces in its vocabulary, so its replies are never JSON: the
// client's JSON retries give up, after requests the server accepted.)
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLM, initWeights, WordTokenizer, type ModelConfig } from '../../src/index.js';
import { createServer, type QwenlongServer } from '../../src/serve/index.js';
import { LlmClient } from '../../src/synth/llm.js';

const config: ModelConfig = {
  architecture: 'llama', vocabSize: 40, dim: 32, hiddenDim: 64, layers: 1, heads: 2, kvHeads: 1, headDim: 16, maxSeqLen: 256,
  ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-5, tiedEmbeddings: false, qkNorm: false, qkvBias: false, bosId: 1, eosIds: [2],
};
const tokenizer = new WordTokenizer(['User', 'Assistant', 'System', ':', '.', ',', ...Array.from({ length: 30 }, (_, i) => `w${i}`)]);

describe('synth --llm against qwenlong serve', () => {
  let model: CausalLM;
  let served: QwenlongServer;
  let proxy: http.Server;
  let url = '';
  const seen: Array<{ hasFormat: boolean; status: number; reply: string }> = [];

  beforeAll(async () => {
    model = CausalLM.fromHost(initWeights(config, { seed: 3, std: 0.3 }), { device: 'cpu' });
    served = createServer({ model, tokenizer, modelName: 'tiny' });
    const target = (await served.listen(0)).url;
    proxy = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', async () => {
        const r = await fetch(`${target}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const text = await r.text();
        seen.push({ hasFormat: 'response_format' in (JSON.parse(body) as object), status: r.status, reply: text });
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(text);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/v1`;
  });

  afterAll(async () => {
    proxy?.closeAllConnections();
    await new Promise((r) => proxy?.close(r));
    await served?.close();
    model?.dispose();
  });

  it('is refused with response_format, then served without it', async () => {
    const c = new LlmClient({ url, model: 'tiny', retries: 1, backoffMs: 1, timeoutMs: 60_000 });
    const schema = { name: 'answer', schema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] } };
    const error = await c.json([{ role: 'system', content: 'w1 w2' }, { role: 'user', content: 'w3 w4 w5' }], schema).then(
      () => null,
      (e: Error) => e,
    );
    // The server's 400 named the field; the two tries after it were served (200) and only their content failed.
    expect(seen.map((s) => [s.hasFormat, s.status])).toEqual([[true, 400], [false, 200], [false, 200]]);
    expect(seen[0]!.reply).toMatch(/'response_format' is not supported/);
    expect(error?.message).toMatch(/gave up after 2 tries: the message content is not valid JSON/);
    expect(c.structuredOutput).toBe(false);
  });
});
