import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchContext, BenchRecord, BenchSuite } from '../src/bench/types.js';
import { loadBundledCorpus } from '../src/synth/documents.js';
import { extractDocument } from '../src/synth/extract.js';
import { loadTokenCounter } from '../src/synth/tokenizer.js';
import { synthesize } from '../src/synth/pipeline.js';

/**
 * Synthesis throughput on the bundled State of the Union corpus, one thread (all of it is single-threaded JS):
 * offline extraction in input tokens per second and per minute (target ≥ 1M tokens/min), tokenization for
 * reference, and composition in questions per second at 32K-token contexts (compose, build the context,
 * count its tokens exactly, run every check, write the line).
 */
const suite: BenchSuite = {
  name: 'synth',
  description: 'long-context data synthesis: offline extraction and question composition throughput',
  async run(ctx: BenchContext): Promise<BenchRecord[]> {
    const records: BenchRecord[] = [];
    const counter = loadTokenCounter(undefined, (why) => ctx.log(`warning: ${why}`));
    const docs = loadBundledCorpus(counter, ctx.quick ? 12 : 60);
    const tokens = docs.reduce((a, d) => a + d.passages.reduce((b, p) => b + p.tokens, 0), 0);
    const chars = docs.reduce((a, d) => a + d.text.length, 0);
    const slow = { warmup: 1, minSamples: ctx.quick ? 2 : 5, minTimeMs: 0 };

    const ex = await ctx.time(() => {
      for (const d of docs) extractDocument(d);
    }, slow);
    records.push({
      suite: 'synth',
      case: `extract offline, ${docs.length} SOTU addresses (${tokens} tokens)`,
      medianMs: ex.medianMs,
      samples: ex.samples,
      figures: { 'tokens/s': Math.round(tokens / (ex.medianMs / 1000)), 'tokens/min': Math.round((tokens * 60) / (ex.medianMs / 1000)), 'chars/s': Math.round(chars / (ex.medianMs / 1000)) },
    });
    ctx.log(`extract: ${records[0]!.figures['tokens/min']} tokens/min`);

    const tk = await ctx.time(() => {
      for (const d of docs) counter.count(d.text);
    }, slow);
    records.push({ suite: 'synth', case: `tokenize (${counter.name}), same documents`, medianMs: tk.medianMs, samples: tk.samples, figures: { 'tokens/s': Math.round(tokens / (tk.medianMs / 1000)) } });

    // Composition at 32K: the knowledge graph is built once (first run), then each timed run composes anew,
    // replacing the output of the run before. The runs share one output and one work folder, so they must not
    // overlap: the timed function is declared `async`, which the harness awaits (it calls a plain function
    // once, unawaited, to find out whether it returns a promise, and that call would overlap the next).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwenlong-bench-synth-'));
    try {
      const count = ctx.quick ? 7 : 28;
      const opts = { inputs: [], out: path.join(dir, 'q.jsonl'), overwrite: true, count, targetTokens: 32000, seed: 'bench', maxDocs: ctx.quick ? 40 : 233 };
      await synthesize(opts);
      const compose = async (): Promise<void> => {
        await synthesize(opts);
      };
      const comp = await ctx.time(compose, { warmup: 0, minSamples: ctx.quick ? 1 : 3, minTimeMs: 0 });
      records.push({
        suite: 'synth',
        case: `compose ${count} questions, all tasks, 32K-token contexts`,
        medianMs: comp.medianMs,
        samples: comp.samples,
        figures: { 'questions/s': Math.round((count / (comp.medianMs / 1000)) * 100) / 100, 'context tokens/s': Math.round((count * 32000) / (comp.medianMs / 1000)) },
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return records;
  },
};

export default suite;
