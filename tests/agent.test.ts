// The memory agent: streamed chunking, the update/answer protocol (checked with a scripted backend), the local
// backend against generating each prompt alone, the OpenAI backend against a stub endpoint, the tiny memory worlds'
// oracle traces, trajectory-level RL rows, and the CLI on a long input in bounded memory.
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CausalLM, LocalBackend, MemoryAgent, OpenAIBackend, PLAIN_MEMORY_PROMPTS, WordTokenizer, chunkText, initWeights, memoryModelConfig,
  memoryTokenizer, memoryWorld, memoryWorldText, oracleTrace, writeMemoryWorld, type AgentBackend, type BackendCall, type ModelConfig,
} from '../src/index.js';
import { memoryRows } from '../src/agent/train_memory.js';
import { Random } from '../src/rl/random.js';

const words = (t: string) => t.split(/\s+/).filter(Boolean).length;

async function collect<T>(g: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of g) out.push(x);
  return out;
}

describe('chunkText', () => {
  it('cuts streamed text into chunks of at most chunkTokens, at sentence ends, losing nothing', async () => {
    const text = Array.from({ length: 300 }, (_, i) => `sentence ${i} has ${'word '.repeat(i % 9)}end.`).join(' ');
    // the same text split at awkward places (mid-word, mid-sentence)
    const pieces = [text.slice(0, 7), text.slice(7, 1001), text.slice(1001, 1002), text.slice(1002)];
    const chunks = await collect(chunkText(pieces, words, 50));
    expect(chunks.map((c) => c.text).join('').replace(/\s+/g, ' ').trim()).toBe(text);
    for (const c of chunks) {
      expect(words(c.text)).toBe(c.tokens);
      expect(c.tokens).toBeLessThanOrEqual(50);
      expect(c.text.trim().endsWith('end.'), c.text.slice(-30)).toBe(true);
    }
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    expect(chunks.at(-1)!.chars).toBeGreaterThanOrEqual(text.length - 1);
  });

  it('keeps line breaks and file boundaries exactly, whatever the read boundaries; long whitespace runs cut in linear time', async () => {
    const cases = [['Alpha beta.', '\n\n', 'Gamma delta.'], ['A.\n\nB', '. C'], ['\n\nHello world.'], ['One.\nTwo three', '.\n', '\nFour']];
    for (const pieces of cases) {
      const chunks = await collect(chunkText(pieces, words, 3));
      expect(chunks.map((c) => c.text).join(''), JSON.stringify(pieces)).toBe(pieces.join(''));
      expect(chunks.at(-1)!.chars).toBe(pieces.join('').length);
    }
    const run = `${'\n'.repeat(60_000)}x.`;
    const t0 = performance.now();
    const chunks = await collect(chunkText([run, ' y.'], words, 5));
    expect(chunks.map((c) => c.text).join('')).toBe(`${run} y.`);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('cuts runs longer than a chunk (a sentence of many words, a string with no whitespace)', async () => {
    const long = `${'w '.repeat(120)}.`;
    const c1 = await collect(chunkText(long, words, 16));
    expect(c1.every((c) => c.tokens <= 16)).toBe(true);
    expect(c1.reduce((n, c) => n + c.tokens, 0)).toBe(121);
    const blob = 'x'.repeat(200_000);
    const c2 = await collect(chunkText(blob, (t) => Math.ceil(t.length / 4), 1000));
    expect(c2.map((c) => c.text).join('')).toBe(blob);
    expect(c2.every((c) => c.tokens <= 1000)).toBe(true);
    await expect(collect(chunkText('a b', words, 0))).rejects.toThrow(/'chunkTokens' must be a positive integer/);
    await expect(collect(chunkText([1 as unknown as string], words, 4))).rejects.toThrow(/yielded number, not text/);
  });
});

/** A backend that answers from a script and records every call. */
class ScriptedBackend implements AgentBackend {
  calls: BackendCall[] = [];
  constructor(private readonly reply: (call: BackendCall, n: number) => string) {}
  countTokens(text: string): number {
    return words(text);
  }
  async complete(call: BackendCall) {
    this.calls.push(call);
    return { text: this.reply(call, this.calls.length) };
  }
}

describe('MemoryAgent', () => {
  it('asks the core question at every chunk, threads memory and plan, and gives the format only to the answer call', async () => {
    const backend = new ScriptedBackend((call, n) => (call.text.includes('Answer the question') ? 'the answer is 42' : `<memory>note ${n}</memory><plan>plan ${n}</plan>`));
    const agent = new MemoryAgent({ backend, chunkTokens: 10, memoryTokens: 7, answerTokens: 5 });
    const doc = Array.from({ length: 12 }, (_, i) => `Fact number ${i} is here.`).join(' ');
    const seen: string[] = [];
    const run = await agent.run({ question: 'What is the number?', format: 'Reply with digits only.', document: doc }, { onChunk: (p) => seen.push(p.memory) });
    expect(run.chunks).toBe(6); // 12 sentences of 5 words, two per 10-token chunk
    expect(run.tokensRead).toBe(60);
    expect(run.answer).toBe('the answer is 42');
    expect(run.memory).toBe('note 6');
    expect(run.plan).toBe('plan 6');
    expect(seen).toEqual(['note 1', 'note 2', 'note 3', 'note 4', 'note 5', 'note 6']);
    const updates = backend.calls.slice(0, 6), last = backend.calls[6]!;
    for (const [i, c] of updates.entries()) {
      expect(c.prefix).toContain('Question: What is the number?');
      expect(c.prefix).toBe(updates[0]!.prefix); // shared: computed once on the local engine
      expect(c.maxTokens).toBe(7);
      expect(c.text).toContain(`Fact number ${2 * i} is here.`);
      expect(c.text).toContain(i === 0 ? '(none yet)' : `note ${i}`);
      expect(c.prefix + c.text).not.toContain('digits only');
    }
    expect(last.prefix + last.text).toContain('Reply with digits only.');
    expect(last.text).toContain('note 6');
    expect(last.maxTokens).toBe(5);
  });

  it('keeps the old memory when a reply has no tags but a plan, takes untagged text as the memory, and parses a cut reply', () => {
    const p = (r: string) => (new MemoryAgent({ backend: new ScriptedBackend(() => '') }).prompts.parse(r, { memory: 'old', plan: 'p0' }));
    expect(p('<plan>next</plan>')).toEqual({ memory: 'old', plan: 'next' });
    expect(p('just notes')).toEqual({ memory: 'just notes', plan: 'p0' });
    expect(p('<memory>cut short by the cap')).toEqual({ memory: 'cut short by the cap', plan: 'p0' });
  });

  it('rejects bad options and queries by name', async () => {
    const backend = new ScriptedBackend(() => '');
    expect(() => new MemoryAgent({} as never)).toThrow(/options.backend/);
    expect(() => new MemoryAgent({ backend, chunkTokens: 0 })).toThrow(/'chunkTokens'/);
    expect(() => new MemoryAgent({ backend, prompts: 'fancy' as never })).toThrow(/'prompts'/);
    const agent = new MemoryAgent({ backend });
    await expect(agent.run({ question: ' ', document: 'x' })).rejects.toThrow(/'question'/);
    await expect(agent.run({ question: 'q', document: null as never })).rejects.toThrow(/'document'/);
    const ctl = new AbortController();
    ctl.abort();
    await expect(agent.run({ question: 'q', document: 'a. b. c.' }, { signal: ctl.signal })).rejects.toThrow();
  });
});

const tinyConfig = (vocabSize: number): ModelConfig => ({
  architecture: 'llama', vocabSize, dim: 48, hiddenDim: 96, layers: 2, heads: 4, kvHeads: 2, headDim: 12, maxSeqLen: 256,
  ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-5, tiedEmbeddings: false, qkNorm: false, qkvBias: false, bosId: 1, eosIds: [2],
});

describe('LocalBackend', () => {
  it('each call gives what generating its prompt alone gives; the question prefix is computed once and reused', async () => {
    const tok = memoryTokenizer();
    const model = CausalLM.fromHost(initWeights(tinyConfig(tok.vocabSize), { seed: 3, std: 0.3 }), { device: 'cpu' });
    const backend = new LocalBackend(model, tok);
    try {
      const agent = new MemoryAgent({ backend, chunkTokens: 40, memoryTokens: 6, answerTokens: 4, prompts: 'plain' });
      const w = memoryWorld(new Random(5), 'owned-place', 200);
      const run = await agent.run({ question: w.world.question, document: memoryWorldText(w) }, { trace: true });
      expect(run.chunks).toBeGreaterThanOrEqual(5);
      expect(run.calls!.length).toBe(run.chunks + 1);
      const prefix = tok.encode(PLAIN_MEMORY_PROMPTS.updatePrefix(w.world.question), { bos: true });
      for (const c of run.calls!) {
        const alone = model.generate([c.reply.promptIds!], { maxTokens: c.chunk < 0 ? 4 : 6, temperature: 0, stopIds: [2] })[0]!;
        expect(c.reply.responseIds).toEqual(alone.tokens);
        if (c.chunk >= 0) expect(c.reply.promptIds!.slice(0, prefix.length)).toEqual(prefix);
      }
      const s = backend.engine.stats();
      // every update after the first reused the prefix's tokens (one prompt token is always computed)
      expect(s.cachedTokens).toBeGreaterThanOrEqual((run.chunks - 1) * (prefix.length - 1));
      expect(s.prefixes).toBe(0); // released when the question ended
      expect(s.cache.used).toBe(0);
    } finally {
      backend.close();
      model.dispose();
    }
  });

  it('several questions at once batch on one engine and answer as they do alone', async () => {
    const tok = memoryTokenizer();
    const model = CausalLM.fromHost(initWeights(tinyConfig(tok.vocabSize), { seed: 4, std: 0.3 }), { device: 'cpu' });
    const backend = new LocalBackend(model, tok);
    try {
      const agent = new MemoryAgent({ backend, chunkTokens: 48, memoryTokens: 5, answerTokens: 3, prompts: 'plain' });
      const rng = new Random(9);
      const worlds = ['locate', 'items', 'owner-job', 'locate'].map((t) => memoryWorld(rng, t as 'locate', 150));
      const together = await Promise.all(worlds.map((w) => agent.run({ question: w.world.question, document: memoryWorldText(w) })));
      const steps = backend.engine.stats().steps;
      const alone = [];
      for (const w of worlds) alone.push(await agent.run({ question: w.world.question, document: memoryWorldText(w) }));
      expect(together.map((r) => [r.answer, r.memory])).toEqual(alone.map((r) => [r.answer, r.memory]));
      expect(steps).toBeLessThan(backend.engine.stats().steps - steps); // the batched pass took fewer forwards
    } finally {
      backend.close();
      model.dispose();
    }
  });

  it('a prompt over the window is a clear error', async () => {
    const tok = new WordTokenizer(['a', 'b']);
    const model = CausalLM.fromHost(initWeights({ ...tinyConfig(tok.vocabSize), maxSeqLen: 32 }, { seed: 1 }), { device: 'cpu' });
    const backend = new LocalBackend(model, tok);
    try {
      const agent = new MemoryAgent({ backend, chunkTokens: 40, prompts: 'plain' });
      await expect(agent.run({ question: 'a', document: 'a b '.repeat(30) })).rejects.toThrow(/the model takes 32: use smaller chunks or memories/);
    } finally {
      backend.close();
      model.dispose();
    }
  });
});

describe('OpenAIBackend', () => {
  it('sends each call as one user message to /chat/completions and reads the reply', async () => {
    const bodies: { model: string; messages: { role: string; content: string }[]; max_tokens: number; temperature: number }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const b = JSON.parse(body);
        bodies.push(b);
        expect(req.url).toBe('/v1/chat/completions');
        const last = b.messages[0].content.includes('Answer the question');
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: last ? 'Paris' : `<memory>seen ${bodies.length}</memory>` } }], usage: { prompt_tokens: 1, completion_tokens: 1 } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const backend = new OpenAIBackend({ url: `http://127.0.0.1:${port}/v1`, model: 'served' });
      const agent = new MemoryAgent({ backend, chunkTokens: 8, memoryTokens: 9 });
      const run = await agent.run({ question: 'Where?', format: 'One word.', document: 'It is in Paris. It was in Rome. Now it is far.' });
      expect(run.answer).toBe('Paris');
      expect(run.memory).toBe(`seen ${bodies.length - 1}`);
      expect(bodies.length).toBe(run.chunks + 1);
      expect(bodies[0]!.model).toBe('served');
      expect(bodies[0]!.max_tokens).toBe(9);
      expect(bodies[0]!.messages).toHaveLength(1);
      expect(bodies.at(-1)!.messages[0]!.content).toContain('One word.');
    } finally {
      server.close();
    }
  });
});

describe('tiny memory worlds', () => {
  it('the oracle memory after each chunk is the evidence read so far, first hop first; the answer ends the trace', async () => {
    const tok = memoryTokenizer();
    for (const task of ['locate', 'owned-place', 'owner-job', 'items'] as const) {
      const w = memoryWorld(new Random(11), task, 1500);
      const text = [...memoryWorldText(w)].join('');
      // the evidence sits in the document in chain order, once each
      const at = w.world.evidence.map((e) => text.indexOf(e));
      expect(at.every((i) => i >= 0)).toBe(true);
      expect([...at].sort((a, b) => a - b)).toEqual(at);
      for (const e of w.world.evidence) expect(text.indexOf(e, text.indexOf(e) + 1)).toBe(-1);
      const steps = await oracleTrace(w, (t) => tok.encode(t).length, 128);
      const last = steps.at(-1)!;
      expect(last.target).toBe(w.world.answer.join(' , '));
      expect(last.prompt).toContain(`memory: ${w.world.evidence.join(' ')}`);
      // memory grows monotonically to the full evidence; a fact enters at the chunk holding it
      let consumed = '';
      for (const s of steps.slice(0, -1)) {
        const chunk = s.prompt.slice(s.prompt.indexOf('text: ') + 6, s.prompt.lastIndexOf('\nmemory:'));
        consumed += chunk;
        expect(s.target).toBe(w.world.evidence.filter((e) => consumed.includes(e)).join(' '));
        expect(tok.encode(s.prompt, { bos: true }).length + tok.encode(s.target).length + 1).toBeLessThanOrEqual(memoryModelConfig().maxSeqLen);
      }
      expect(steps.at(-2)!.target).toBe(w.world.evidence.join(' '));
      // filler never mentions the world's people or things
      const named = [...w.world.owned.keys(), ...w.world.place.keys()];
      const filler = text.split(' . ').map((s) => `${s.trim()} .`).filter((s) => !w.world.facts.includes(s));
      for (const s of filler) for (const n of named) expect(s.split(' ')).not.toContain(n);
    }
  });

  it('RL rows: every call of a trajectory carries its trajectory advantage, once; zero-advantage trajectories drop out', () => {
    const call = (chunk: number, p: number[], r: number[]) => ({ chunk, reply: { text: '', promptIds: p, responseIds: r } });
    const runs = [
      { calls: [call(0, [1, 5], [6, 2]), call(-1, [1, 7], [8, 2])] },
      { calls: [call(0, [1, 5], [9, 9, 2]), call(1, [1, 4], []), call(-1, [1, 7], [2])] },
      { calls: [call(-1, [1, 3], [4])] },
    ];
    const rows = memoryRows(runs, Float64Array.of(0.5, -0.5, 0), [0, 0, 1]);
    expect(rows.map((r) => [r.response, r.adv, r.group])).toEqual([
      [[6, 2], 0.5, 0], [[8, 2], 0.5, 0], [[9, 9, 2], -0.5, 0], [[2], -0.5, 0],
    ]);
  });
});

describe('qwenlong agent on a local model', () => {
  it("sizes its default chunks to a small model's window, and names the flags when a prompt outgrows it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-agent-'));
    try {
      const file = join(dir, 'doc.txt');
      await writeMemoryWorld(file, memoryWorld(new Random(2), 'locate', 3000));
      const args = ['dist/src/cli/main.js', 'agent', '--doc', file, '--question', 'where is the map ?', '--model', 'models/tiny-memory-rl', '--json'];
      // the packaged model's window is 256 tokens: the 1024-token default chunk would not fit
      const ok = spawnSync(process.execPath, args, { encoding: 'utf8' });
      expect(ok.status, ok.stderr).toBe(0);
      const run = JSON.parse(ok.stdout) as { chunks: number; tokensRead: number };
      expect(run.tokensRead / run.chunks).toBeGreaterThan(100);
      expect(run.tokensRead / run.chunks).toBeLessThanOrEqual(128);
      const big = spawnSync(process.execPath, [...args, '--chunk-tokens', '400'], { encoding: 'utf8' });
      expect(big.status).toBe(1);
      expect(big.stderr).toMatch(/the model takes 256.*\(this run: --chunk-tokens 400, --memory-tokens 32, --answer-tokens 32;/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('qwenlong agent on a long input', () => {
  it('streams a 4M-token file with memory bounded: peak RSS for a quarter and for all of it within 50 MB', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-agent-'));
    try {
      const tok = memoryTokenizer();
      const config = { ...memoryModelConfig(), dim: 32, hiddenDim: 64, layers: 1, heads: 2, kvHeads: 1, headDim: 16, maxSeqLen: 1200, tiedEmbeddings: true };
      const model = CausalLM.fromHost(initWeights(config, { seed: 1, std: 0.5 }), { device: 'cpu' });
      await model.save(join(dir, 'model'));
      model.dispose();
      tok.save(join(dir, 'model', 'words.json'));
      const total = 4_000_000;
      const write = (file: string, tokens: number) => writeMemoryWorld(file, memoryWorld(new Random(1), 'locate', tokens));
      await write(join(dir, 'all.txt'), total);
      await write(join(dir, 'quarter.txt'), total / 4);
      const run = (file: string) => {
        const r = spawnSync(process.execPath, ['dist/src/cli/main.js', 'agent', '--doc', file, '--question', 'where is the map ?', '--model', join(dir, 'model'), '--chunk-tokens', '1024', '--memory-tokens', '8', '--answer-tokens', '4', '--json'], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as { chunks: number; tokensRead: number; peakRssMB: number };
      };
      const quarter = run(join(dir, 'quarter.txt'));
      const all = run(join(dir, 'all.txt'));
      expect(all.tokensRead).toBeGreaterThan(total * 0.95);
      expect(quarter.tokensRead).toBeLessThan(all.tokensRead / 3);
      expect(all.chunks).toBeGreaterThan(3 * quarter.chunks);
      console.log(`agent over ${all.tokensRead} tokens: peak RSS ${all.peakRssMB.toFixed(1)} MB; over ${quarter.tokensRead}: ${quarter.peakRssMB.toFixed(1)} MB`);
      expect(Math.abs(all.peakRssMB - quarter.peakRssMB)).toBeLessThan(50);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);
});

describe('memory training and evaluation from the command line', () => {
  it('train --agent memory runs trajectory-level RL steps and saves a model that eval --mode memory reads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-memrl-'));
    try {
      const tok = memoryTokenizer();
      const model = CausalLM.fromHost(initWeights({ ...memoryModelConfig(), dim: 32, hiddenDim: 64, layers: 1, heads: 2, kvHeads: 2, headDim: 16 }, { seed: 2, std: 0.2 }), { device: 'cpu' });
      await model.save(join(dir, 'start'));
      model.dispose();
      tok.save(join(dir, 'start', 'words.json'));
      const cli = (...args: string[]) => spawnSync(process.execPath, ['dist/src/cli/main.js', ...args], { encoding: 'utf8' });
      const t = cli('train', '--agent', 'memory', '--model', join(dir, 'start'), '--out', join(dir, 'run'), '--steps', '2', '--batch', '2', '--group', '3', '--seed', '4');
      expect(t.status, t.stderr).toBe(0);
      const records = readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(records.map((r) => r.step)).toEqual([1, 2]);
      // the same command again would replace the run: refused, and the run is as it was
      const again = cli('train', '--agent', 'memory', '--model', join(dir, 'start'), '--out', join(dir, 'run'), '--steps', '2');
      expect(again.status).toBe(1);
      expect(again.stderr).toMatch(/already holds a run \(metrics\.jsonl, final\)/);
      expect(readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
      for (const r of records) {
        expect(r.rewardMean).toBeGreaterThanOrEqual(0);
        expect(r.rewardMean).toBeLessThanOrEqual(1);
        expect(r.callsPerTrajectory).toBeGreaterThan(2); // several chunks, then the answer
      }
      const e = cli('eval', '--mode', 'memory', '--preset', 'tiny-memory', '--model', join(dir, 'run', 'final'), '--lengths', '300,600', '--per-task', '1', '--json');
      expect(e.status, e.stderr).toBe(0);
      const report = JSON.parse(e.stdout);
      expect(Object.keys(report.byTask).sort()).toEqual(['items', 'locate', 'owned-place', 'owner-job']);
      expect(Object.values(report.byLength as Record<string, { n: number }>).map((b) => b.n)).toEqual([4, 4]);
      expect(report.chunks).toBeGreaterThan(8);
      const bad = cli('eval', '--mode', 'memory', '--model', join(dir, 'run', 'final'));
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toMatch(/--data FILE .* or --preset tiny-memory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
