/**
 * Memory-agent SFT at tiny scale: the single-pass SFT checkpoint, its vocabulary grown by the memory prompts' words,
 * trained on oracle traces (each chunk's ideal memory update, then the answer from the ideal memory) over tiny-world
 * documents a few chunks long.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readHfFolder, writeHfFolder } from '../model/hf.js';
import { initWeights } from '../model/init.js';
import type { HostWeights } from '../model/llama2c.js';
import { CausalLM } from '../model/model.js';
import { AdamW } from '../model/optim.js';
import { Random } from '../rl/random.js';
import { runSft, type SftExample } from '../rl/sft.js';
import { WORLD_TASKS, type WorldTask } from '../rl/tiny_world.js';
import { groupAdvantages } from '../ops/advantages.js';
import { policyLoss } from '../ops/policy_loss.js';
import { scoreResponse } from '../rl/data.js';
import { gradientStep } from '../rl/step.js';
import { LocalBackend } from './backend.js';
import { MemoryAgent, type AgentRun } from './memory_agent.js';
import { memoryModelConfig, memoryTokenizer, memoryWorld, memoryWorldText, oracleTrace, TINY_MEMORY } from './tiny_memory.js';

/** Weights with the vocabulary grown to `vocabSize` (new embedding and LM-head rows drawn small). */
export function growVocabulary(host: HostWeights, vocabSize: number, seed = 1): HostWeights {
  const old = host.config.vocabSize;
  if (vocabSize < old) throw new RangeError(`growVocabulary: ${vocabSize} is below the model's ${old}`);
  const fresh = initWeights({ ...host.config, vocabSize }, { seed });
  const tensors = new Map(host.tensors);
  for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
    const t = host.tensors.get(name);
    if (!t) continue;
    const data = fresh.tensors.get(name)!.data;
    data.set(t.data); // the old rows first, as they were
    tensors.set(name, { shape: [vocabSize, t.shape[1]!], data });
  }
  return { config: { ...host.config, vocabSize }, tensors };
}

/** Oracle SFT examples from fresh worlds of `minTokens`–`maxTokens` documents; unchanged-memory steps thinned. */
export async function oracleExamples(rng: Random, n: number, o: { minTokens?: number; maxTokens?: number; keepUnchanged?: number; tasks?: readonly WorldTask[] } = {}): Promise<SftExample[]> {
  const tok = memoryTokenizer();
  const count = (t: string) => tok.encode(t).length;
  const tasks = o.tasks ?? WORLD_TASKS;
  const lo = o.minTokens ?? 100, hi = o.maxTokens ?? 700, keep = o.keepUnchanged ?? 0.35;
  const out: SftExample[] = [];
  while (out.length < n) {
    const w = memoryWorld(rng, tasks[rng.int(tasks.length)]!, lo + rng.int(hi - lo + 1));
    const steps = await oracleTrace(w, count, TINY_MEMORY.chunkTokens);
    let previous = '';
    steps.forEach((s, i) => {
      const last = i === steps.length - 1;
      if (!last && s.target === previous && rng.next() > keep) return;
      if (!last) previous = s.target;
      out.push({ prompt: tok.encode(s.prompt, { bos: true }), response: [...tok.encode(s.target), tok.eosIds[0]!] });
    });
  }
  return out.slice(0, n);
}

export interface MemorySftOptions {
  /** The single-pass checkpoint to start from (a Hugging Face folder). */
  from: string;
  outDir: string;
  steps?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  log?: (line: string) => void;
}

/** Memory-agent SFT from a single-pass checkpoint; writes the model and its words.json to outDir. */
export async function sftMemory(o: MemorySftOptions): Promise<{ steps: number; nll: number }> {
  const tok = memoryTokenizer();
  const host = growVocabulary(readHfFolder(o.from), memoryModelConfig().vocabSize, o.seed ?? 1);
  const model = CausalLM.fromHost(host, { device: 'cpu' });
  const opt = new AdamW(model.parameters(), { lr: o.lr ?? 1e-3, weightDecay: 0.01 });
  const rng = new Random(o.seed ?? 1);
  const batch = o.batch ?? 32;
  const pool: SftExample[] = [];
  try {
    const steps = o.steps ?? 600;
    const started = performance.now();
    let nll = NaN;
    // runSft takes batches synchronously and oracle traces are async: every step's examples are drawn before training,
    // 20 steps' worth per draw (the draw boundaries are part of the seeded data the packaged model was trained on)
    for (let s = 0; s < steps; s += 20) {
      pool.push(...(await oracleExamples(rng, batch * Math.min(20, steps - s))));
    }
    const run = await runSft({
      model, optimizer: opt, steps, lr: o.lr ?? 1e-3,
      batch: (step) => pool.slice((step - 1) * batch, step * batch),
      onStep: (step, m) => {
        nll = m.nll;
        if (step % 25 === 0) o.log?.(`memory sft step ${step}/${steps}: nll ${m.nll.toFixed(4)} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
      },
    });
    mkdirSync(o.outDir, { recursive: true });
    writeHfFolder(o.outDir, await model.hostWeights());
    tok.save(join(o.outDir, 'words.json'));
    return { steps: run.steps, nll };
  } finally {
    model.dispose();
  }
}

/**
 * The update's rows: one per call (memory update or answer) of every trajectory, each with its trajectory's
 * advantage and group; trajectories with advantage 0 and calls that generated nothing drop out.
 */
export function memoryRows(runs: readonly Pick<AgentRun, 'calls'>[], adv: ArrayLike<number>, groupOf: readonly number[]): { prompt: number[]; response: number[]; adv: number; group: number }[] {
  const rows: { prompt: number[]; response: number[]; adv: number; group: number }[] = [];
  runs.forEach((r, i) => {
    if (adv[i] === 0) return;
    for (const c of r.calls ?? []) {
      if (!c.reply.promptIds || !c.reply.responseIds) throw new TypeError('memoryRows: a call has no token ids (trace the run on the local backend)');
      if (c.reply.responseIds.length > 0) rows.push({ prompt: c.reply.promptIds, response: c.reply.responseIds, adv: adv[i]!, group: groupOf[i]! });
    }
  });
  return rows;
}

export interface MemoryRlOptions {
  model: CausalLM;
  /** Default: a fresh AdamW (lr, no weight decay). */
  optimizer?: AdamW;
  steps: number;
  /** Questions per step (default 8) and trajectories per question (default 8). */
  batch?: number;
  group?: number;
  lr?: number;
  /** Rollout temperature (default 0.7). */
  temperature?: number;
  /** The std dividing group-centred trajectory rewards (default 'task': the paper's Eq. 7). */
  advStd?: 'task' | 'group' | 'batch' | 'none';
  /** Document lengths drawn per question, tokens (default 300–900: a few chunks). */
  docTokens?: [number, number];
  tasks?: readonly WorldTask[];
  seed?: number;
  clipNorm?: number;
  onStep?: (r: MemoryRlRecord) => void;
}

export interface MemoryRlRecord {
  step: number;
  rewardMean: number;
  rewardByTask: Record<string, number>;
  /** Calls (memory updates and answers) per trajectory, on average. */
  callsPerTrajectory: number;
  responseTokens: number;
  nll: number;
  gradNorm: number;
  skipped: string | null;
  seconds: number;
}

/**
 * Memory-agent RL on tiny-world documents (GRPO-style, on-policy): G trajectories per question, each its memory
 * updates plus its answer. Reward, group mean and std are per trajectory (never per call, or a K-call trajectory
 * would count K times); the trajectory's advantage goes to every token it generated, and the group-token-mean
 * aggregation (Eq. 4) divides by all response tokens of the group's trajectories.
 */
export async function trainMemoryRl(o: MemoryRlOptions): Promise<MemoryRlRecord[]> {
  const model = o.model;
  const tok = memoryTokenizer();
  if (model.config.vocabSize !== tok.vocabSize) throw new RangeError(`trainMemoryRl: the model's vocabulary (${model.config.vocabSize}) is not the memory worlds' (${tok.vocabSize})`);
  const B = o.batch ?? 8, G = o.group ?? 8, lr = o.lr ?? 1e-4;
  const [lo, hi] = o.docTokens ?? [300, 900];
  const tasks = o.tasks ?? WORLD_TASKS;
  const optimizer = o.optimizer ?? new AdamW(model.parameters(), { lr, weightDecay: 0 });
  const backend = new LocalBackend(model, tok, {});
  const agent = new MemoryAgent({ backend, ...TINY_MEMORY, prompts: 'plain', temperature: o.temperature ?? 0.7 });
  const records: MemoryRlRecord[] = [];
  try {
    for (let step = 1; step <= o.steps; step++) {
      const t0 = performance.now();
      const rng = new Random(((o.seed ?? 0) * 1000003 + step) >>> 0);
      const worlds = Array.from({ length: B }, () => memoryWorld(rng, tasks[rng.int(tasks.length)]!, lo + rng.int(hi - lo + 1)));
      const runs = await Promise.all(worlds.flatMap((w, q) => Array.from({ length: G }, (_, g) =>
        agent.run({ question: w.world.question, document: memoryWorldText(w) }, { trace: true, seed: rng.int(2 ** 30) + q * G + g }))));
      const items = worlds.map((w) => ({ id: '', task: w.world.task, answer: w.world.task === 'items' ? w.world.answer : w.world.answer[0]! }));
      const rewards = runs.map((r, i) => scoreResponse(items[Math.floor(i / G)]!, r.answer));
      const groupOf = runs.map((_, i) => Math.floor(i / G));
      const adv = groupAdvantages(rewards, groupOf, groupOf.map((q) => items[q]!.task), { std: o.advStd ?? 'task' });
      const rows = memoryRows(runs, adv, groupOf);
      // Eq. 4's normalizer: all response tokens of each group's trajectories, every group of the batch
      const groupTokens = new Map<number, number>();
      runs.forEach((r, i) => groupTokens.set(groupOf[i]!, (groupTokens.get(groupOf[i]!) ?? 0) + r.calls!.reduce((n, c) => n + (c.reply.responseIds?.length ?? 0), 0)));
      const byTask: Record<string, number[]> = {};
      rewards.forEach((x, i) => (byTask[items[groupOf[i]!]!.task] ??= []).push(x));
      const base = {
        step, rewardMean: rewards.reduce((a, b) => a + b, 0) / rewards.length,
        rewardByTask: Object.fromEntries(Object.entries(byTask).map(([t, v]) => [t, v.reduce((a, b) => a + b, 0) / v.length])),
        callsPerTrajectory: runs.reduce((a, r) => a + r.calls!.length, 0) / runs.length,
        responseTokens: rows.reduce((a, r) => a + r.response.length, 0),
      };
      let rec: MemoryRlRecord;
      if (rows.length === 0) rec = { ...base, nll: NaN, gradNorm: 0, skipped: 'every group has equal rewards', seconds: (performance.now() - t0) / 1000 };
      else {
        const cu = [0];
        for (const r of rows) cu.push(cu[cu.length - 1]! + r.response.length);
        const advantages = new Float32Array(cu[rows.length]!);
        rows.forEach((r, i) => advantages.fill(r.adv, cu[i]!, cu[i + 1]!));
        const g = await gradientStep(model, optimizer, rows, (hidden) => policyLoss({
          hidden, weight: model.lmHead, targets: rows.flatMap((r) => r.response), advantages, cuSeqlens: cu,
          groupIds: rows.map((r) => r.group), aggregation: 'group-token-mean', normalizers: { groups: B, groupTokens },
          temperature: o.temperature ?? 0.7, // the policy the trajectories were sampled from
        }), { clipNorm: o.clipNorm ?? 1, lr });
        rec = { ...base, nll: g.nll, gradNorm: g.gradNorm, skipped: g.skipped, seconds: (performance.now() - t0) / 1000 };
      }
      records.push(rec);
      o.onStep?.(rec);
    }
    return records;
  } finally {
    backend.close();
  }
}
