/** The memory agent's training and evaluation from the command line (`train --agent memory`, `eval --mode memory`). */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasOwnChatTemplate, LocalBackend } from '../agent/backend.js';
import { MemoryAgent } from '../agent/memory_agent.js';
import { lengthBuckets, memoryTokenizer, memoryWorldItems, TINY_MEMORY } from '../agent/tiny_memory.js';
import { trainMemoryRl } from '../agent/train_memory.js';
import { evaluateMemory } from '../eval/memory.js';
import { loadModel } from '../model/index.js';
import { usableDevice } from '../native/device.js';
import { readItems } from '../rl/data.js';
import { outputFile, refuseTokenizer, scoreLine, tokenizerFor, type EvalCli, type TrainCli } from './train.js';
import { prepareRunFolder } from '../rl/trainer.js';
import { findTokenizer } from '../tokenizer/index.js';

export async function trainMemoryCli(o: TrainCli): Promise<void> {
  const log = (line: string) => console.error(line);
  if (!o.model) throw new Error('train --agent memory needs --model (a memory-SFT model: qwenlong sft --agent memory --out DIR)');
  if (!o.out) throw new Error('train --agent memory needs --out RUN_DIR');
  if (!existsSync(o.model)) throw new Error(`--model: no model at ${o.model}`);
  refuseTokenizer(o, '--agent memory');
  if (o.resume) throw new Error('--resume: train --agent memory keeps no checkpoint to resume from; start afresh (--overwrite replaces an earlier run)');
  prepareRunFolder(o.out, o.overwrite);
  const { model } = loadModel(o.model, { dtype: 'f32', device: usableDevice(o.device, '--device') });
  try {
    const metrics = join(o.out, 'metrics.jsonl');
    writeFileSync(metrics, '');
    const steps = o.steps ?? 40;
    await trainMemoryRl({
      model, steps, batch: o.batch, group: o.group, lr: o.lr, seed: o.seed, advStd: o.advStd,
      onStep: (r) => {
        appendFileSync(metrics, `${JSON.stringify(r)}\n`);
        log(`memory rl step ${r.step}/${steps}: reward ${r.rewardMean.toFixed(3)} (${Object.entries(r.rewardByTask).map(([t, x]) => `${t} ${x.toFixed(2)}`).join(', ')}), ${r.callsPerTrajectory.toFixed(1)} calls/trajectory${r.skipped ? `, skipped: ${r.skipped}` : ''}, ${r.seconds.toFixed(1)} s`);
      },
    });
    const final = join(o.out, 'final');
    await model.save(final);
    memoryTokenizer().save(join(final, 'words.json'));
    log(`final model: ${final}`);
  } finally {
    model.dispose();
  }
}

export async function evalMemoryCli(o: EvalCli): Promise<void> {
  if (!o.model) throw new Error('eval --mode memory needs --model');
  if (!existsSync(o.model)) throw new Error(`--model: no model at ${o.model}`);
  if (o.preset !== undefined && o.preset !== 'tiny-memory') throw new Error(`--preset: unknown preset '${o.preset}' for --mode memory (known: tiny-memory)`);
  if (o.preset && o.data) throw new Error('--preset tiny-memory brings its own documents: give --preset or --data, not both');
  if (!o.data && o.preset !== 'tiny-memory') throw new Error('eval --mode memory needs --data FILE (items with context and question) or --preset tiny-memory');
  if (o.out) outputFile(o.out, '--out', [o.data]);
  const lengths = o.lengths.split(',').map((x) => Number(x));
  if (lengths.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`--lengths must be a comma-separated list of token counts (got ${JSON.stringify(o.lengths)})`);
  const items = o.data ? readItems(o.data) : memoryWorldItems(4242, lengths, o.perTask);
  const tiny = o.preset === 'tiny-memory';
  const tokenizer = tiny && !o.tokenizer && !findTokenizer(o.model) ? memoryTokenizer() : tokenizerFor(o.model, o.tokenizer);
  const chat = hasOwnChatTemplate(tokenizer);
  const prompts = o.prompts ?? (chat ? 'chat' : 'plain');
  const { model } = loadModel(o.model, { device: usableDevice(o.device, '--device') });
  const backend = new LocalBackend(model, tokenizer, { chat: prompts === 'chat' && chat });
  try {
    const agent = new MemoryAgent({
      backend, prompts, chunkTokens: o.chunkTokens ?? (tiny ? TINY_MEMORY.chunkTokens : 1024), memoryTokens: o.memoryTokens ?? (tiny ? TINY_MEMORY.memoryTokens : 256),
      answerTokens: tiny ? TINY_MEMORY.answerTokens : o.maxTokens,
    });
    const r = await evaluateMemory(agent, items, { buckets: tiny ? lengthBuckets(lengths) : undefined });
    if (o.out) writeFileSync(o.out, r.predictions.map((p) => `${JSON.stringify(p)}\n`).join(''));
    if (o.json) console.log(JSON.stringify({ macro: r.macro, byTask: r.byTask, byLength: r.byLength, chunks: r.chunks, tokensRead: r.tokensRead, seconds: r.seconds }, null, 2));
    else {
      console.log(`memory agent: macro ${r.macro.toFixed(4)} over ${items.length} items`);
      console.log(`by task: ${scoreLine(r)}`);
      console.log(`by document length: ${Object.entries(r.byLength).map(([b, s]) => `${b} ${s.score.toFixed(3)} (n=${s.n})`).join(', ')}`);
      console.log(`read ${r.tokensRead} tokens in ${r.chunks} chunks, ${r.seconds.toFixed(1)} s (${(r.chunks / r.seconds).toFixed(1)} chunks/s)`);
    }
  } finally {
    backend.close();
    model.dispose();
  }
}
