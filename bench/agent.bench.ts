/**
 * The memory agent on a CPU: (1) reading throughput on the local engine with stories260K (256-token chunks, 64-token
 * memories) at 1, 8 and 32 questions at once; (2) a 4,000,000-token input through the CLI in bounded memory (peak
 * RSS of a quarter vs all of it); (3) tiny-world questions in 4K / 16K / 64K-token documents (8 per task, 32 per
 * length): single pass with middle truncation vs the memory agent untrained, after memory SFT and after memory RL.
 * With --save, writes agent.md into the results folder. Parts whose inputs are missing (the shared stories260K checkpoint, the packaged
 * memory models) are skipped with a message.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBackend } from '../src/agent/backend.js';
import { readFiles } from '../src/agent/chunks.js';
import { MemoryAgent } from '../src/agent/memory_agent.js';
import { lengthBuckets, memoryModelConfig, memoryTokenizer, memoryWorld, memoryWorldItems, TINY_MEMORY, writeMemoryWorld } from '../src/agent/tiny_memory.js';
import { growVocabulary } from '../src/agent/train_memory.js';
import { mergeSce } from '../src/model/merge.js';
import { runTinyRecipe } from '../src/rl/recipe.js';
import { tinyHeldOut } from '../src/rl/tiny.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';
import { machine, machineLine } from '../src/bench/runner.js';
import { tinyCheckpoint } from '../src/cli/train.js';
import { evaluate } from '../src/eval/evaluate.js';
import { evaluateMemory } from '../src/eval/memory.js';
import { readHfFolder } from '../src/model/hf.js';
import { loadModel } from '../src/model/index.js';
import { initWeights } from '../src/model/init.js';
import { CausalLM } from '../src/model/model.js';
import { packageRoot } from '../src/native/addon.js';
import { Random } from '../src/rl/random.js';
import { worldTokenizer } from '../src/rl/tiny_world.js';

const shared = join(packageRoot(), '..', 'shared');

const suite: BenchSuite = {
  name: 'agent',
  description: 'memory agent: chunks/s with stories260K, 4M-token bounded memory, tiny-world accuracy at 4K/16K/64K',
  async run(ctx) {
    const records: BenchRecord[] = [];
    const md: string[] = ['# Memory agent', '', `Written by \`npm run bench -- agent\` on ${new Date().toISOString().slice(0, 10)} (${machineLine(machine())}).`, ''];

    // (1) throughput
    const stories = join(shared, 'models', 'stories260K');
    const corpus = join(shared, 'corpora', 'austen', 'prideprejudice.txt');
    if (existsSync(join(stories, 'model.bin')) && existsSync(corpus)) {
      md.push('## Reading throughput (local engine, CPU)', '', 'stories260K, plain prompts, 256-token chunks, 64-token memories (the model rarely stops early, so nearly every update generates all 64), Pride and Prejudice as the document; N questions read at once batch on one engine.', '', '| questions at once | chunks | seconds | chunks/s | input tokens/s | generated tokens/s |', '|---|---|---|---|---|---|');
      for (const n of ctx.quick ? [1, 8] : [1, 8, 32]) {
        const { model, tokenizer } = loadModel(join(stories, 'model.bin'), { tokenizer: join(stories, 'tok512.bin'), device: 'cpu' });
        const backend = new LocalBackend(model, tokenizer!);
        const agent = new MemoryAgent({ backend, chunkTokens: 256, memoryTokens: 64, answerTokens: 16, prompts: 'plain' });
        const chars = (ctx.quick ? 20 : 60) * 1000;
        async function* head(): AsyncGenerator<string> {
          let seen = 0;
          for await (const p of readFiles([corpus])) {
            yield p;
            if ((seen += p.length) >= chars) return;
          }
        }
        const t0 = performance.now();
        const runs = await Promise.all(Array.from({ length: n }, (_, i) => agent.run({ question: 'Who is Elizabeth?', document: head() }, { seed: i })));
        const s = (performance.now() - t0) / 1000;
        const chunks = runs.reduce((a, r) => a + r.chunks, 0), tokens = runs.reduce((a, r) => a + r.tokensRead, 0);
        const generated = backend.engine.stats().generatedTokens;
        backend.close();
        model.dispose();
        ctx.log(`throughput, ${n} at once: ${(chunks / s).toFixed(1)} chunks/s`);
        records.push({ suite: 'agent', case: `stories260K 256/64 x${n}`, medianMs: (s * 1000) / chunks, samples: chunks, figures: { 'chunks/s': chunks / s, 'input tok/s': tokens / s, 'generated tok/s': generated / s } });
        md.push(`| ${n} | ${chunks} | ${s.toFixed(1)} | ${(chunks / s).toFixed(1)} | ${(tokens / s).toFixed(0)} | ${(generated / s).toFixed(0)} |`);
      }
      md.push('');
    } else ctx.log(`throughput part skipped: ${stories} or the Austen corpus is absent`);

    // (2) bounded memory on a 4M-token input
    {
      const total = ctx.quick ? 400_000 : 4_000_000;
      const dir = mkdtempSync(join(tmpdir(), 'qwenlong-agent-bench-'));
      try {
        const tok = memoryTokenizer();
        const config = { ...memoryModelConfig(), dim: 32, hiddenDim: 64, layers: 1, heads: 2, kvHeads: 1, headDim: 16, maxSeqLen: 1200, tiedEmbeddings: true };
        const m = CausalLM.fromHost(initWeights(config, { seed: 1, std: 0.5 }), { device: 'cpu' });
        await m.save(join(dir, 'model'));
        m.dispose();
        tok.save(join(dir, 'model', 'words.json'));
        const write = (file: string, tokens: number) => writeMemoryWorld(file, memoryWorld(new Random(1), 'locate', tokens));
        const rows: string[] = [];
        for (const [label, tokens] of [['a quarter', total / 4], ['all', total]] as const) {
          const file = join(dir, `${tokens}.txt`);
          await write(file, tokens);
          const r = spawnSync(process.execPath, [join(packageRoot(), 'dist', 'src', 'cli', 'main.js'), 'agent', '--doc', file, '--question', 'where is the map ?', '--model', join(dir, 'model'), '--chunk-tokens', '1024', '--memory-tokens', '8', '--answer-tokens', '4', '--json'], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`agent CLI failed: ${r.stderr}`);
          const j = JSON.parse(r.stdout) as { chunks: number; tokensRead: number; seconds: number; peakRssMB: number };
          ctx.log(`bounded memory, ${label}: ${j.tokensRead} tokens, peak RSS ${j.peakRssMB.toFixed(1)} MB`);
          records.push({ suite: 'agent', case: `stream ${label} of ${total}`, medianMs: (j.seconds * 1000) / j.chunks, samples: j.chunks, figures: { tokens: j.tokensRead, 'peak RSS MB': j.peakRssMB, 'chunks/s': j.chunks / j.seconds } });
          rows.push(`| ${label} | ${j.tokensRead} | ${j.chunks} | ${j.seconds.toFixed(1)} | ${j.peakRssMB.toFixed(1)} |`);
        }
        md.push(`## A ${total.toLocaleString('en-US')}-token input in bounded memory`, '', '`qwenlong agent --doc FILE` on a tiny-world document written to disk (a 1-layer d=32 word-level model, random weights: the figure is memory, not accuracy), 1024-token chunks, 8-token memories. The file is streamed; only the current chunk is ever held.', '', '| input | tokens read | chunks | seconds | peak RSS (MB) |', '|---|---|---|---|---|', ...rows, '');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }

    // (3) accuracy by document length
    const sft = join(packageRoot(), 'models', 'tiny-memory-sft'), rl = join(packageRoot(), 'models', 'tiny-memory-rl');
    if (existsSync(join(tinyCheckpoint(), 'config.json'))) {
      const lengths = ctx.quick ? [4000] : [4000, 16000, 64000];
      const items = memoryWorldItems(4242, lengths, ctx.quick ? 2 : 8);
      const buckets = lengthBuckets(lengths);
      const table: { arm: string; byLength: Record<string, { n: number; score: number }>; macro: number; chunksPerS?: number }[] = [];
      const single = loadModel(tinyCheckpoint(), { device: 'cpu' }).model;
      const sp = evaluate(single, worldTokenizer(), items, { maxTokens: TINY_MEMORY.answerTokens, buckets });
      single.dispose();
      table.push({ arm: 'single pass, middle-truncated to 256', byLength: sp.byLength, macro: sp.macro });
      const arms: [string, () => CausalLM][] = [['memory agent, untrained (the SFT checkpoint, vocabulary grown)', () => CausalLM.fromHost(growVocabulary(readHfFolder(tinyCheckpoint()), memoryModelConfig().vocabSize), { device: 'cpu' })]];
      if (existsSync(join(sft, 'config.json'))) arms.push(['memory agent after memory SFT', () => loadModel(sft, { device: 'cpu' }).model]);
      else ctx.log(`no ${sft}: the SFT arm is skipped`);
      if (existsSync(join(rl, 'config.json'))) arms.push(['memory agent after memory RL', () => loadModel(rl, { device: 'cpu' }).model]);
      else ctx.log(`no ${rl}: the RL arm is skipped`);
      for (const [arm, make] of arms) {
        const model = make();
        const backend = new LocalBackend(model, memoryTokenizer());
        const agent = new MemoryAgent({ backend, ...TINY_MEMORY, prompts: 'plain' });
        const r = await evaluateMemory(agent, items, { concurrency: 64, buckets });
        backend.close();
        model.dispose();
        ctx.log(`${arm}: macro ${r.macro.toFixed(3)}, ${(r.chunks / r.seconds).toFixed(1)} chunks/s`);
        table.push({ arm, byLength: r.byLength, macro: r.macro, chunksPerS: r.chunks / r.seconds });
      }
      // fusion as the paper does it: SCE of the memory-RL expert and a single-pass RL model over their common base
      if (!ctx.quick && existsSync(join(rl, 'config.json'))) {
        const V = memoryModelConfig().vocabSize;
        let spFinal = join(process.env.QWENLONG_RECIPE_RUNS ?? join(ctx.resultsDir, 'recipe-runs'), 'aepo-preset-preset-seed0', 'final');
        let tmp: string | undefined;
        if (!existsSync(join(spFinal, 'config.json'))) {
          tmp = mkdtempSync(join(tmpdir(), 'qwenlong-sp-'));
          ctx.log('fusion: running the tiny single-pass recipe (aepo, seed 0) for the single-pass RL model');
          await runTinyRecipe({ runDir: tmp, checkpoint: tinyCheckpoint(), overrides: { algo: 'aepo', seed: 0 }, heldOut: 50 });
          spFinal = join(tmp, 'final');
        }
        const base = growVocabulary(readHfFolder(tinyCheckpoint()), V);
        const spHost = growVocabulary(readHfFolder(spFinal), V);
        const fusedHost = mergeSce(base, [readHfFolder(rl), spHost]);
        if (tmp) rmSync(tmp, { recursive: true, force: true });
        const held = tinyHeldOut(100);
        for (const [arm, host] of [['single-pass RL model (tiny preset, aepo)', spHost], ['fused: SCE(memory RL, single-pass RL)', fusedHost]] as const) {
          const model = CausalLM.fromHost(host, { device: 'cpu' });
          const single = evaluate(model, memoryTokenizer(), held, { maxTokens: TINY_MEMORY.answerTokens }).macro;
          const backend = new LocalBackend(model, memoryTokenizer());
          const agent = new MemoryAgent({ backend, ...TINY_MEMORY, prompts: 'plain' });
          const r = await evaluateMemory(agent, items, { concurrency: 64, buckets });
          backend.close();
          model.dispose();
          ctx.log(`${arm}: memory macro ${r.macro.toFixed(3)}, single-pass held-out ${single.toFixed(3)}`);
          table.push({ arm: `${arm} (single-pass held-out, 100/task: ${single.toFixed(3)})`, byLength: r.byLength, macro: r.macro, chunksPerS: r.chunks / r.seconds });
        }
      }
      const cols = buckets.map((b) => `≤${b}`);
      md.push('## Tiny-world questions in long documents', '', `Documents of ${lengths.map((l) => `${l / 1000}K`).join(' / ')} tokens (${items.length / lengths.length} questions each: the four tasks equally), the evidence scattered through consistent filler facts. Greedy; scores by the recipe's rewards (exact match, list F1). Memory agent: ${TINY_MEMORY.chunkTokens}-token chunks, ${TINY_MEMORY.memoryTokens}-token memories.`, '', `| arm | ${lengths.map((l) => `${l / 1000}K`).join(' | ')} | all | chunks/s |`, `|---|${lengths.map(() => '---|').join('')}---|---|`);
      for (const t of table) {
        md.push(`| ${t.arm} | ${cols.map((c) => t.byLength[c]?.score.toFixed(3) ?? '–').join(' | ')} | ${t.macro.toFixed(3)} | ${t.chunksPerS?.toFixed(0) ?? '–'} |`);
        for (const [i, c] of cols.entries()) records.push({ suite: 'agent', case: `${t.arm} @${lengths[i]}`, medianMs: 0, samples: t.byLength[c]?.n ?? 0, figures: { score: t.byLength[c]?.score ?? NaN } });
      }
      md.push('');
    }
    if (!ctx.quick) ctx.writeReport('agent.md', `${md.join('\n')}\n`);
    return records;
  },
};

export default suite;
