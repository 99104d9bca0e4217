/**
 * The tiny recipe end to end: SFT from scratch (`sftTiny`), then RL from that checkpoint with greedy held-out
 * evaluation before and after (`runTinyRecipe`). `passAtK` measures what SFT leaves for RL to find.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate, type EvalReport } from '../eval/evaluate.js';
import { readHfFolder, writeHfFolder } from '../model/hf.js';
import { initWeights } from '../model/init.js';
import { CausalLM } from '../model/model.js';
import { AdamW } from '../model/optim.js';
import type { TextTokenizer } from '../tokenizer/hf.js';
import { makeTrainConfig, type TrainConfig } from './config.js';
import { promptIds, responseText, scoreResponse, type RecipeItem } from './data.js';
import { runSft } from './sft.js';
import { TINY_TRAIN, tinyHeldOut, tinyItems, tinyModelConfig, tinySftStream } from './tiny.js';
import { worldTokenizer } from './tiny_world.js';
import { prepareRunFolder, train, type StepRecord } from './trainer.js';
import { copyTokenizerFiles } from '../model/merge.js';

/** pass@1 (mean reward of k samples) and pass@k (any of k samples scores 1), per task and macro-averaged. */
export function passAtK(model: CausalLM, tokenizer: TextTokenizer, items: readonly RecipeItem[], opts: { k: number; maxTokens: number; temperature?: number; seed?: number }): { pass1: number; passK: number; byTask: Record<string, { pass1: number; passK: number }> } {
  const k = opts.k;
  const prompts = items.map((it) => promptIds(it, tokenizer, { window: model.config.maxSeqLen, maxTokens: opts.maxTokens }).ids);
  const gens = model.generate(prompts.flatMap((p) => Array.from({ length: k }, () => p)), { maxTokens: opts.maxTokens, temperature: opts.temperature ?? 0.7, topP: 0.95, stopIds: tokenizer.eosIds, seed: opts.seed ?? 1 });
  const acc = new Map<string, { p1: number; pk: number; n: number }>();
  items.forEach((it, i) => {
    const scores = gens.slice(i * k, (i + 1) * k).map((g) => scoreResponse(it, responseText(tokenizer, g.tokens)));
    const a = acc.get(it.task) ?? { p1: 0, pk: 0, n: 0 };
    a.p1 += scores.reduce((x, y) => x + y, 0) / k;
    a.pk += scores.some((s) => s >= 1) ? 1 : 0;
    a.n++;
    acc.set(it.task, a);
  });
  const byTask = Object.fromEntries([...acc].sort().map(([t, a]) => [t, { pass1: a.p1 / a.n, passK: a.pk / a.n }]));
  const tasks = Object.values(byTask);
  return { pass1: tasks.reduce((x, t) => x + t.pass1, 0) / tasks.length, passK: tasks.reduce((x, t) => x + t.passK, 0) / tasks.length, byTask };
}

export interface TinySftOptions {
  outDir: string;
  steps?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  /** Stop at the first check (every 50 steps) where macro pass@1 ≥ this and pass@8 ≥ 2 × pass@1 (default 0: never). */
  stopAt?: number;
  log?: (line: string) => void;
}

/** SFT of the tiny model from scratch; saves a model folder (config.json, model.safetensors, words.json). */
export async function sftTiny(opts: TinySftOptions): Promise<{ steps: number; pass1: number; passK: number }> {
  const log = opts.log ?? (() => {});
  const tokenizer = worldTokenizer();
  const model = CausalLM.fromHost(initWeights(tinyModelConfig(), { seed: opts.seed ?? 1 }), { device: 'cpu' });
  const opt = new AdamW(model.parameters(), { lr: opts.lr ?? 1e-3, weightDecay: 0.01 });
  const stream = tinySftStream(opts.seed ?? 1);
  const dev = tinyItems(777, 200, { locate: 0.25, 'owned-place': 0.25, items: 0.25, 'owner-job': 0.25 }, 'd');
  let result = { pass1: 0, passK: 0 };
  const stopAt = opts.stopAt ?? 0;
  try {
    const started = performance.now();
    const run = await runSft({
      model, optimizer: opt, steps: opts.steps ?? 800, lr: opts.lr ?? 1e-3,
      batch: () => stream(opts.batch ?? 64).map((e) => ({ prompt: tokenizer.encode(e.prompt, { bos: true }), response: [...tokenizer.encode(e.target), 2] })),
      check: {
        every: 50,
        run: (step) => {
          const p = passAtK(model, tokenizer, dev, { k: 8, maxTokens: 8 });
          result = p;
          log(`sft step ${step} (${((performance.now() - started) / 1000).toFixed(0)} s): pass@1 ${p.pass1.toFixed(3)} pass@8 ${p.passK.toFixed(3)} ${Object.entries(p.byTask).map(([t, s]) => `${t} ${s.pass1.toFixed(2)}/${s.passK.toFixed(2)}`).join(' ')}`);
          return stopAt > 0 && p.pass1 >= stopAt && p.passK >= 2 * p.pass1;
        },
      },
    });
    mkdirSync(opts.outDir, { recursive: true });
    writeHfFolder(opts.outDir, await model.hostWeights());
    tokenizer.save(join(opts.outDir, 'words.json'));
    return { steps: run.steps, ...result };
  } finally {
    opt.dispose();
    model.dispose();
  }
}

export interface TinyRecipeOptions {
  runDir: string;
  /** The SFT checkpoint folder. */
  checkpoint: string;
  overrides?: Partial<TrainConfig>;
  resume?: boolean;
  /** Start afresh in a folder that holds an earlier run (see TrainRunOptions.overwrite). */
  overwrite?: boolean;
  maxSeconds?: number;
  /** Held-out questions per task (default 300). */
  heldOut?: number;
  log?: (line: string) => void;
  onStep?: (record: StepRecord, total: number) => void;
}

export interface TinyRecipeResult {
  before: EvalReport;
  after: EvalReport | null;
  finished: boolean;
  records: StepRecord[];
  config: TrainConfig;
}

/** Held-out accuracy of the SFT checkpoint, the RL run, held-out accuracy after. */
export async function runTinyRecipe(opts: TinyRecipeOptions): Promise<TinyRecipeResult> {
  const log = opts.log ?? (() => {});
  const tokenizer = worldTokenizer();
  const config = makeTrainConfig(opts.overrides ?? {}, TINY_TRAIN);
  // refuse (or clear) a folder holding an earlier run before the held-out evaluation, not after it
  if (!opts.resume) prepareRunFolder(opts.runDir, opts.overwrite);
  const held = tinyHeldOut(opts.heldOut ?? 300);
  const host = readHfFolder(opts.checkpoint);
  const start = CausalLM.fromHost(host, { device: 'cpu' });
  let before: EvalReport;
  try {
    before = evaluate(start, tokenizer, held, { maxTokens: 8 });
  } finally {
    start.dispose();
  }
  log(`held-out before RL: ${before.macro.toFixed(3)} (${Object.entries(before.byTask).map(([t, s]) => `${t} ${s.score.toFixed(3)}`).join(', ')})`);
  const pool = tinyItems(config.seed + 1000, 4000);
  const res = await train({ runDir: opts.runDir, model: host, tokenizer, items: pool, config, resume: opts.resume, overwrite: opts.overwrite, tokenizerFrom: opts.checkpoint, maxSeconds: opts.maxSeconds, log, onStep: opts.onStep });
  try {
    const after = res.finished ? evaluate(res.model, tokenizer, held, { maxTokens: 8 }) : null;
    if (after) log(`held-out after RL: ${after.macro.toFixed(3)} (${Object.entries(after.byTask).map(([t, s]) => `${t} ${s.score.toFixed(3)}`).join(', ')})`);
    const summary = { before: { macro: before.macro, byTask: before.byTask }, after: after && { macro: after.macro, byTask: after.byTask }, steps: res.step, finished: res.finished };
    writeFileSync(join(opts.runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    if (after) writeFileSync(join(opts.runDir, 'heldout-after.jsonl'), after.predictions.map((p) => `${JSON.stringify(p)}\n`).join(''));
    if (res.finished) {
      await res.model.save(join(opts.runDir, 'final'));
      copyTokenizerFiles(opts.checkpoint, join(opts.runDir, 'final'));
    }
    return { before, after, finished: res.finished, records: res.records, config };
  } finally {
    res.model.dispose();
  }
}
