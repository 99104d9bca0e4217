/**
 * The policy engine: stories260K (llama2.c) generation tokens/s on the CPU, greedy batch 1 (as run.c) and sampled
 * batch 16, through the paged KV cache. Skipped, with a line saying so, where the shared models folder is absent.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { info } from '../src/native/runtime.js';
import { loadModel } from '../src/model/index.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';

const dir = join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'stories260K');

const suite: BenchSuite = {
  name: 'model',
  description: 'stories260K generation tokens/s (CPU)',
  async run(ctx) {
    const records: BenchRecord[] = [];
    const modelDir = [dir, join(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K')].find((d) => existsSync(join(d, 'model.bin')));
    if (!modelDir) {
      ctx.log('stories260K is absent (shared/models/stories260K): nothing to time');
      return records;
    }
    const { model, tokenizer } = loadModel(join(modelDir, 'model.bin'), { tokenizer: join(modelDir, 'tok512.bin'), device: 'cpu' });
    const threads = info().cpu.threads;
    const prompt = tokenizer!.encode('Once upon a time');
    for (const [batch, temperature, tokens] of [[1, 0, ctx.quick ? 64 : 256], [16, 1, ctx.quick ? 32 : 128]] as const) {
      const prompts = Array.from({ length: batch }, () => prompt);
      const r = await ctx.time(() => model.generate(prompts, { temperature, maxTokens: tokens, stopIds: [], seed: 1 }), { warmup: 1, minSamples: 3, minTimeMs: 0 });
      const generated = batch * tokens;
      records.push({
        suite: 'model',
        case: `stories260K generate batch ${batch} x ${tokens} tokens, temperature ${temperature} (${threads} threads)`,
        medianMs: r.medianMs,
        samples: r.samples,
        figures: { 'tokens/s': generated / (r.medianMs / 1000), 'ms/step': r.medianMs / tokens },
      });
    }
    model.dispose();
    return records;
  },
};

export default suite;
