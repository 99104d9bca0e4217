// The serving engine: continuous batching, chunked prefill and prefix reuse must give exactly the tokens of a
// request run alone (greedy: CausalLM.generate, itself checked against a float64 PyTorch forward; on stories260K the
// PyTorch greedy continuations directly), cancelled and failed requests must give their blocks back, and a pool
// too small for everything at once must queue, not fail.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CausalLM, Engine, initWeights, loadModel, type ModelConfig } from '../src/index.js';

const config: ModelConfig = {
  architecture: 'llama', vocabSize: 97, dim: 48, hiddenDim: 96, layers: 2, heads: 4, kvHeads: 2, headDim: 12, maxSeqLen: 160,
  ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-5, tiedEmbeddings: false, qkNorm: false, qkvBias: false, bosId: 1, eosIds: [2],
};

function model(): CausalLM {
  return CausalLM.fromHost(initWeights(config, { seed: 5, std: 0.3 }), { device: 'cpu' });
}

function prompt(seed: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((seed * 31 + i * 17 + ((i * i) % 7)) % 90));
}

describe('Engine', () => {
  it('concurrent requests of different lengths give the tokens each gives alone', async () => {
    const m = model();
    const engine = new Engine(m, { blockSize: 8 });
    try {
      const prompts = [prompt(1, 5), prompt(2, 40), prompt(3, 1), prompt(4, 77), prompt(5, 12)];
      const alone = prompts.map((p) => m.generate([p], { maxTokens: 20, temperature: 0, stopIds: [] })[0]!);
      const together = await Promise.all(prompts.map((p) => engine.submit(p, { maxTokens: 20, temperature: 0, stopIds: [] })));
      together.forEach((r, i) => {
        expect(r.tokens, `prompt ${i}`).toEqual(alone[i]!.tokens);
        expect(r.finishReason).toBe('length');
        for (let t = 0; t < r.logprobs.length; t++) expect(r.logprobs[t]).toBeCloseTo(alone[i]!.logprobs[t]!, 4);
      });
      const s = engine.stats();
      expect(s.generatedTokens).toBe(100);
      // decode steps were shared: far fewer forwards than one per token per request
      expect(s.steps).toBeLessThan(40);
      expect(s.cache.used).toBe(0);
    } finally {
      engine.dispose();
      m.dispose();
    }
  });

  it('a request arriving mid-run joins the batch and matches its solo run', async () => {
    const m = model();
    const engine = new Engine(m, { blockSize: 8 });
    try {
      const first = engine.submit(prompt(7, 30), { maxTokens: 40, temperature: 0, stopIds: [] });
      let late: Promise<unknown> | undefined;
      const started = engine.submit(prompt(8, 9), {
        maxTokens: 10, temperature: 0, stopIds: [],
        onToken: () => void (late ??= engine.submit(prompt(9, 50), { maxTokens: 15, temperature: 0, stopIds: [] })),
      });
      const [a, b] = await Promise.all([first, started]);
      const c = (await late) as { tokens: number[] };
      expect(a.tokens).toEqual(m.generate([prompt(7, 30)], { maxTokens: 40, temperature: 0, stopIds: [] })[0]!.tokens);
      expect(b.tokens).toEqual(m.generate([prompt(8, 9)], { maxTokens: 10, temperature: 0, stopIds: [] })[0]!.tokens);
      expect(c.tokens).toEqual(m.generate([prompt(9, 50)], { maxTokens: 15, temperature: 0, stopIds: [] })[0]!.tokens);
    } finally {
      engine.dispose();
      m.dispose();
    }
  });

  it('chunked prefill (prompts longer than a step) and prefix reuse change nothing but the work done', async () => {
    const m = model();
    const engine = new Engine(m, { blockSize: 8, maxBatchTokens: 7 });
    try {
      const shared = prompt(11, 45);
      const tails = [prompt(12, 6), prompt(13, 19), []];
      const full = tails.map((t) => [...shared, ...t]);
      const alone = full.map((p) => m.generate([p], { maxTokens: 12, temperature: 0, stopIds: [] })[0]!.tokens);
      const id = engine.prefix(shared);
      const results = await Promise.all(full.map((p) => engine.submit(p, { maxTokens: 12, temperature: 0, stopIds: [] })));
      results.forEach((r, i) => expect(r.tokens, `tail ${i}`).toEqual(alone[i]));
      // 45 shared tokens reused by the first two, 44 by the third (one prompt token is always computed)
      expect(results.map((r) => r.cachedTokens)).toEqual([45, 45, 44]);
      // a prompt that starts like the prefix only partly reuses that part
      const partial = [...shared.slice(0, 20), ...prompt(14, 10)];
      const r = await engine.submit(partial, { maxTokens: 8, temperature: 0, stopIds: [] });
      expect(r.cachedTokens).toBe(20);
      expect(r.tokens).toEqual(m.generate([partial], { maxTokens: 8, temperature: 0, stopIds: [] })[0]!.tokens);
      expect(engine.stats().cache.used).toBe(Math.ceil(45 / 8)); // only the prefix holds blocks
      engine.release(id);
      expect(engine.stats().cache.used).toBe(0);
    } finally {
      engine.dispose();
      m.dispose();
    }
  });

  it('a pool too small for all requests at once queues them; each still matches its solo run', async () => {
    const m = model();
    // each request needs up to ceil((30 + 20) / 8) = 7 blocks: 10 blocks run one at a time
    const engine = new Engine(m, { blockSize: 8, numBlocks: 10 });
    try {
      const prompts = [1, 2, 3, 4].map((s) => prompt(20 + s, 30));
      const results = await Promise.all(prompts.map((p) => engine.submit(p, { maxTokens: 20, temperature: 0, stopIds: [] })));
      results.forEach((r, i) => expect(r.tokens).toEqual(m.generate([prompts[i]!], { maxTokens: 20, temperature: 0, stopIds: [] })[0]!.tokens));
      await expect(engine.submit(prompt(30, 100), { maxTokens: 50 })).rejects.toThrow(/needs up to 19 cache blocks, the cache has 10/);
      expect(engine.stats().cache.used).toBe(0);
    } finally {
      engine.dispose();
      m.dispose();
    }
  });

  it('a prefix computed while requests run takes only blocks not promised to them', async () => {
    const m = model();
    const engine = new Engine(m, { blockSize: 8, numBlocks: 10 });
    try {
      let refused: unknown;
      // worst case ceil((8 + 70) / 8) = 10 blocks: the whole pool is promised to this request
      const r = await engine.submit(prompt(50, 8), {
        maxTokens: 70, temperature: 0, stopIds: [],
        onToken: () => {
          if (refused === undefined) {
            try {
              engine.prefix(prompt(51, 64));
              refused = null;
            } catch (e) {
              refused = e;
            }
          }
        },
      });
      expect(String(refused)).toMatch(/needs 8 cache blocks, 0 are spare beside the running requests/);
      expect(r.tokens.length).toBe(70);
      expect(r.tokens).toEqual(m.generate([prompt(50, 8)], { maxTokens: 70, temperature: 0, stopIds: [] })[0]!.tokens);
    } finally {
      engine.dispose();
      m.dispose();
    }
  });

  it('sampling is seeded per request; aborts and bad inputs end one request, never the engine', async () => {
    const m = model();
    const engine = new Engine(m, { blockSize: 8 });
    try {
      const a = await engine.submit(prompt(40, 10), { maxTokens: 30, temperature: 1, seed: 3, stopIds: [] });
      const b = await engine.submit(prompt(40, 10), { maxTokens: 30, temperature: 1, seed: 3, stopIds: [] });
      const c = await engine.submit(prompt(40, 10), { maxTokens: 30, temperature: 1, seed: 4, stopIds: [] });
      expect(a.tokens).toEqual(b.tokens);
      expect(a.tokens).not.toEqual(c.tokens);

      const ctl = new AbortController();
      const cut = engine.submit(prompt(41, 10), { maxTokens: 100, temperature: 0, stopIds: [], signal: ctl.signal, onToken: () => { if (!ctl.signal.aborted) ctl.abort(); } });
      const other = engine.submit(prompt(42, 10), { maxTokens: 10, temperature: 0, stopIds: [] });
      const throwing = engine.submit(prompt(43, 10), { maxTokens: 10, onToken: () => { throw new Error('listener'); } });
      expect((await cut).finishReason).toBe('abort');
      expect((await cut).tokens.length).toBeLessThan(3);
      expect((await other).tokens.length).toBe(10);
      expect((await throwing).finishReason).toBe('abort');
      const gone = new AbortController();
      gone.abort();
      expect((await engine.submit(prompt(44, 5), { signal: gone.signal })).finishReason).toBe('abort');

      await expect(engine.submit([1, 2, 500])).rejects.toThrow(/'prompt'\[2\] = number 500 is not a token id \(an integer in \[0, 97\)\)/);
      await expect(engine.submit([])).rejects.toThrow(/'prompt' must be a non-empty array/);
      await expect(engine.submit(prompt(45, 160))).rejects.toThrow(/160 tokens, the model takes 160/);
      await expect(engine.submit([1, 2], { temperature: -1 })).rejects.toThrow(/'temperature'/);
      await expect(engine.submit([1, 2], { maxTokens: 0 })).rejects.toThrow(/'maxTokens'/);
      expect(() => engine.prefix([1, -3])).toThrow(/'tokens'\[1\] = number -3 is not a token id/);
      expect(() => engine.release(99)).toThrow(/no prefix 99/);
      expect(() => new Engine(m, { blockSize: 0 })).toThrow(/'blockSize'/);
      // still serving
      expect((await engine.submit(prompt(46, 4), { maxTokens: 3, temperature: 0, stopIds: [] })).tokens.length).toBe(3);
      expect(engine.stats().cache.used).toBe(0);
    } finally {
      engine.dispose();
      m.dispose();
    }
  });
});

const dir = join(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K');
const present = existsSync(join(dir, 'model.bin'));
if (!present) console.log(`skipping the stories260K engine test: ${dir} is absent`);

describe.skipIf(!present)('Engine on stories260K', () => {
  it('batched greedy continuations equal the float64 PyTorch ones', async () => {
    const golden = JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', 'stories260k.json'), 'utf8')) as { greedy: { prompt: number[]; ids: number[] }[] };
    const { model: m } = loadModel(join(dir, 'model.bin'), { device: 'cpu' });
    const engine = new Engine(m);
    try {
      const results = await Promise.all(golden.greedy.map((g) => engine.submit(g.prompt, { maxTokens: g.ids.length - g.prompt.length, temperature: 0, stopIds: [] })));
      results.forEach((r, i) => expect([...golden.greedy[i]!.prompt, ...r.tokens]).toEqual(golden.greedy[i]!.ids));
    } finally {
      engine.dispose();
      m.dispose();
    }
  });
});
