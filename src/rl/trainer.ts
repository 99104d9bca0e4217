/**
 * The RL loop of the recipe. Each step: the sampler draws prompts (task-balanced or uniform), the policy generates G
 * responses per prompt, rewards per task type, task-specific advantages, AEPO's switch from the rollouts' entropy,
 * dynamic sampling when asked, the policy update(s), metrics. Stages run in order (each with its input and output
 * limits), with retrospective sampling between them. Checkpoints are atomic and hold everything a resume needs
 * (weights, optimizer, sampler, controller, per-prompt history, step): a resumed run continues bitwise as if never
 * stopped on the same machine and thread count, since every random draw is seeded by (seed, step).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Device } from '../native/device.js';
import { readHfFolder, writeHfFolder } from '../model/hf.js';
import { copyTokenizerFiles } from '../model/merge.js';
import type { HostWeights } from '../model/llama2c.js';
import { CausalLM } from '../model/model.js';
import { AdamW } from '../model/optim.js';
import type { TextTokenizer } from '../tokenizer/hf.js';
import { AepoController } from './aepo.js';
import { checkTrainConfig, type Stage, type TrainConfig } from './config.js';
import { promptIds, responseText, scoreResponse, type RecipeItem } from './data.js';
import { type Judge, withJudge } from './rewards.js';
import { TaskBalancedSampler, type TaskBalancedSamplerState } from './sampler.js';
import { policyUpdate, rollout, rolloutMetrics, zeroVarianceGroups, type RlPrompt } from './step.js';

export interface StepRecord {
  step: number;
  stage: number;
  rewardMean: number;
  rewardByTask: Record<string, number>;
  /** Fraction of rollouts with reward 1, per task. */
  accuracyByTask: Record<string, number>;
  batchEntropy: number | null;
  aepoOn: boolean;
  aepoSwitched: boolean;
  zeroVarianceGroups: number;
  droppedGroups: number;
  responseTokensMean: number;
  truncatedResponses: number;
  gradNorm: number | null;
  nll: number | null;
  skipped: string | null;
  rolloutTokensPerS: number;
  trainTokensPerS: number;
  stepSeconds: number;
}

interface TrainerState {
  version: 1;
  step: number;
  sampler: TaskBalancedSamplerState | null;
  samplerStage: number;
  aepo: { on: boolean; step: number; switches: { step: number; entropy: number; dropNegative: boolean }[] } | null;
  /** Per prompt id: [sum of mean group rewards, times drawn] in the current stage. */
  history: Record<string, [number, number]>;
  /** Prompt ids carried into each stage by retrospective sampling. */
  carried: string[];
  metricsLines: number;
}

export interface TrainRunOptions {
  runDir: string;
  /** The starting weights (a model folder / llama2.c file path, or host weights); ignored when resuming. */
  model: string | HostWeights;
  tokenizer: TextTokenizer;
  items: readonly RecipeItem[];
  config: TrainConfig;
  /** Continue from runDir's checkpoint when there is one. */
  resume?: boolean;
  /**
   * Start afresh in a folder that holds an earlier run, replacing that run's files (metrics, checkpoint, final model,
   * difficulty bins...). Without it (and without `resume`) such a folder is refused, so no earlier run is lost.
   */
  overwrite?: boolean;
  /** A model folder whose tokenizer files each checkpoint carries (default: `model` when it is a path). */
  tokenizerFrom?: string;
  device?: Device;
  /** Stop after this many steps in this sitting (the run stays resumable). */
  maxSteps?: number;
  /** Stop after this many seconds in this sitting (checked between steps). */
  maxSeconds?: number;
  log?: (line: string) => void;
  onStep?: (record: StepRecord, total: number) => void;
  /** An LLM judge asked when the rule check does not give full marks (the paper's judge behind the rule). */
  judge?: Judge;
}

export interface TrainRunResult {
  model: CausalLM;
  records: StepRecord[];
  /** Steps done in all (this sitting and before). */
  step: number;
  totalSteps: number;
  finished: boolean;
}

const CHECKPOINT = 'checkpoint';

function stageAt(stages: readonly Stage[], step: number): number {
  let end = 0;
  for (let i = 0; i < stages.length; i++) if (step < (end += stages[i]!.steps)) return i;
  return stages.length;
}

function stepSeed(seed: number, step: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) + step) >>> 0;
}

/** Loads the starting weights (path or host weights). */
function hostOf(model: string | HostWeights): HostWeights {
  if (typeof model !== 'string') return model;
  if (!existsSync(model)) throw new Error(`train: no model at ${model}`);
  return readHfFolder(model);
}

/** Writes the checkpoint atomically: a fresh folder renamed over the old one (the old kept until the rename). */
async function saveCheckpoint(runDir: string, model: CausalLM, opt: AdamW, state: TrainerState, tokenizerFrom: string | undefined): Promise<void> {
  const dir = join(runDir, CHECKPOINT), tmp = `${dir}.tmp`, old = `${dir}.old`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeHfFolder(tmp, await model.hostWeights());
  // the starting model's tokenizer files, so that the checkpoint is a model folder every command can load alone
  if (tokenizerFrom !== undefined) copyTokenizerFiles(tokenizerFrom, tmp);
  await opt.saveState(join(tmp, 'optimizer.safetensors'));
  writeFileSync(join(tmp, 'trainer.json'), JSON.stringify(state));
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

// What a run leaves in its folder: the first five mean a run is there; all are cleared by an overwrite.
const RUN_MARKS = ['metrics.jsonl', CHECKPOINT, `${CHECKPOINT}.old`, 'final', 'summary.json'];
const RUN_FILES = [...RUN_MARKS, `${CHECKPOINT}.tmp`, 'config.json', 'bins.json', 'heldout-after.jsonl', 'report.html'];

/**
 * Makes `runDir` ready for a fresh run: created if missing; a folder that holds an earlier run is refused unless
 * `overwrite`, which removes that run's files (only those: anything else in the folder stays).
 */
export function prepareRunFolder(runDir: string, overwrite = false): void {
  const found = RUN_MARKS.filter((f) => existsSync(join(runDir, f)));
  if (found.length > 0) {
    if (!overwrite) {
      throw new Error(`${runDir} already holds a run (${found.join(', ')}): continue it with resume (--resume), choose another folder, or replace it with overwrite (--overwrite)`);
    }
    for (const f of RUN_FILES) rmSync(join(runDir, f), { recursive: true, force: true });
  }
  mkdirSync(runDir, { recursive: true });
}

/** The checkpoint folder to resume from, if any (a crash between the two renames leaves only `.old`). */
export function findCheckpoint(runDir: string): string | null {
  for (const d of [join(runDir, CHECKPOINT), join(runDir, `${CHECKPOINT}.old`)]) if (existsSync(join(d, 'trainer.json'))) return d;
  return null;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot be read as JSON (${(e as Error).message}); the checkpoint is damaged, start without --resume or restore it`);
  }
}

/** Fraction of k sampled responses per item that score 1. */
export function passRates(model: CausalLM, items: readonly RecipeItem[], ids: (it: RecipeItem) => number[], tokenizer: TextTokenizer, o: { k: number; maxTokens: number; temperature: number; topP: number; seed: number }): Map<string, number> {
  const out = new Map<string, number>();
  const chunk = Math.max(1, Math.floor(1024 / o.k));
  for (let s = 0; s < items.length; s += chunk) {
    const part = items.slice(s, s + chunk);
    const gens = model.generate(part.flatMap((it) => Array.from({ length: o.k }, () => ids(it))), { maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, stopIds: tokenizer.eosIds, seed: o.seed + s });
    part.forEach((it, i) => {
      let hits = 0;
      for (const g of gens.slice(i * o.k, (i + 1) * o.k)) hits += scoreResponse(it, responseText(tokenizer, g.tokens)) >= 1 ? 1 : 0;
      out.set(it.id, hits / o.k);
    });
  }
  return out;
}

export async function train(opts: TrainRunOptions): Promise<TrainRunResult> {
  const config = checkTrainConfig({ ...opts.config });
  const log = opts.log ?? (() => {});
  const { tokenizer, runDir } = opts;
  if (!Array.isArray(opts.items) || opts.items.length === 0) throw new RangeError('train: no items');
  const byId = new Map<string, RecipeItem>();
  for (const it of opts.items) {
    if (byId.has(it.id)) throw new RangeError(`train: two items have the id '${it.id}'`);
    byId.set(it.id, it);
  }
  if (opts.resume) mkdirSync(runDir, { recursive: true });
  else prepareRunFolder(runDir, opts.overwrite);
  const metricsPath = join(runDir, 'metrics.jsonl');
  const ckpt = opts.resume ? findCheckpoint(runDir) : null;
  let state: TrainerState;
  let host: HostWeights;
  if (ckpt) {
    state = readJson(join(ckpt, 'trainer.json')) as TrainerState;
    if (state?.version !== 1 || !Number.isInteger(state.step)) throw new Error(`${join(ckpt, 'trainer.json')}: not a trainer state this version reads`);
    const saved = existsSync(join(runDir, 'config.json')) ? (readJson(join(runDir, 'config.json')) as TrainConfig) : null;
    if (JSON.stringify(saved) !== JSON.stringify(config)) log('warning: the configuration differs from the one the run started with; resuming with the new one');
    host = readHfFolder(ckpt);
    // metrics written after the checkpoint belong to steps that will run again
    if (existsSync(metricsPath)) {
      const lines = readFileSync(metricsPath, 'utf8').split('\n').filter(Boolean).slice(0, state.metricsLines);
      writeFileSync(metricsPath, lines.map((l) => `${l}\n`).join(''));
    }
    log(`resuming ${runDir} at step ${state.step}`);
  } else {
    if (opts.resume) log(`no checkpoint in ${runDir}: starting fresh`);
    host = hostOf(opts.model);
    state = { version: 1, step: 0, sampler: null, samplerStage: -1, aepo: null, history: {}, carried: [], metricsLines: 0 };
    writeFileSync(join(runDir, 'config.json'), JSON.stringify(config, null, 2));
    if (existsSync(metricsPath)) truncateSync(metricsPath, 0);
  }
  const model = CausalLM.fromHost(host, { device: opts.device, dtype: 'f32' });
  const opt = new AdamW(model.parameters(), { lr: config.lr, weightDecay: config.weightDecay });
  const aepo = config.aepo ? new AepoController({ entropyLow: config.entropyLow, entropyHigh: config.entropyHigh }) : undefined;
  try {
    if (ckpt) {
      opt.loadStateFile(join(ckpt, 'optimizer.safetensors'));
      if (aepo && state.aepo) aepo.restore(state.aepo);
    }
    const totalSteps = config.stages.reduce((a, s) => a + s.steps, 0);
    const promptCache = new Map<string, number[]>();
    const ids = (it: RecipeItem): number[] => {
      let p = promptCache.get(it.id);
      if (!p) promptCache.set(it.id, (p = promptIds(it, tokenizer, { window: Number.MAX_SAFE_INTEGER, maxTokens: 0 }).ids));
      return p;
    };
    // Offline difficulty binning: pass@k of the starting model per prompt, computed once per run (kept for resumes).
    let bins: Map<string, number> | null = null;
    if (config.binK > 0) {
      const binsPath = join(runDir, 'bins.json');
      if (existsSync(binsPath)) bins = new Map(Object.entries(JSON.parse(readFileSync(binsPath, 'utf8')) as Record<string, number>));
      else {
        const maxOut = Math.max(...config.stages.map((s) => s.maxOutput));
        const fits = opts.items.filter((it) => ids(it).length + maxOut <= model.config.maxSeqLen);
        const rates = passRates(model, fits, ids, tokenizer, { k: config.binK, maxTokens: maxOut, temperature: config.temperature, topP: config.topP, seed: stepSeed(config.seed, 0x5eed) });
        bins = new Map([...rates].map(([id, r]) => [id, r]));
        writeFileSync(binsPath, JSON.stringify(Object.fromEntries(bins)));
      }
      const solved = [...bins.values()].filter((r) => r >= 1).length;
      log(`difficulty bins (pass rate of ${config.binK} samples): ${solved} prompts always solved are left out`);
    }
    const binOf = (it: RecipeItem): string => {
      const r = bins?.get(it.id);
      if (r === undefined) return '';
      return r <= 0 ? '|unsolved' : r <= 1 / 3 ? '|hard' : r <= 2 / 3 ? '|medium' : '|easy';
    };
    let sampler: TaskBalancedSampler | null = null;
    let pool: RecipeItem[] = [];
    const buildSampler = (stageIndex: number) => {
      const stage = config.stages[stageIndex]!;
      const carried = new Set(state.carried);
      pool = opts.items.filter((it) => {
        const fits = ids(it).length <= stage.maxInput && ids(it).length + stage.maxOutput <= model.config.maxSeqLen;
        const unsolvable = bins !== null && !((bins.get(it.id) ?? 0) < 1);
        return fits && !unsolvable && ((stage.tasks?.includes(it.task) ?? true) || carried.has(it.id));
      });
      if (pool.length === 0) {
        // say which limit left every item out
        const W = model.config.maxSeqLen;
        const count = (f: (it: RecipeItem) => boolean) => opts.items.filter(f).length;
        const why = [
          `${count((it) => ids(it).length > stage.maxInput)} are longer than maxInput ${stage.maxInput}`,
          `${count((it) => ids(it).length + stage.maxOutput > W)} leave no room for maxOutput ${stage.maxOutput} in the model's window of ${W}${stage.maxOutput >= W ? ' (maxOutput alone fills it)' : ''}`,
          ...(stage.tasks ? [`${count((it) => !stage.tasks!.includes(it.task))} are not of the tasks ${stage.tasks.join(',')}`] : []),
          ...(bins ? [`${count((it) => !((bins!.get(it.id) ?? 0) < 1))} are always solved or were not binned`] : []),
        ];
        throw new RangeError(`train: stage ${stageIndex} has no prompts: of ${opts.items.length} items, ${why.join(', ')}`);
      }
      const tasks: Record<string, number[]> = {};
      pool.forEach((it, i) => {
        // equal draws per task (when balanced) and per difficulty bin (when binned)
        const key = (config.balance === 'task' ? it.task : 'all') + binOf(it);
        (tasks[key] ??= []).push(i);
      });
      sampler = new TaskBalancedSampler({ tasks, batchSize: config.batch, seed: stepSeed(config.seed, 7919 * (stageIndex + 1)) });
    };
    const records: StepRecord[] = [];
    const started = performance.now();
    let sitting = 0;
    while (state.step < totalSteps) {
      if (opts.maxSteps !== undefined && sitting >= opts.maxSteps) break;
      if (opts.maxSeconds !== undefined && (performance.now() - started) / 1000 >= opts.maxSeconds) break;
      const stageIndex = stageAt(config.stages, state.step);
      const stage = config.stages[stageIndex]!;
      if (state.samplerStage !== stageIndex) {
        if (state.samplerStage >= 0 && config.retrospective > 0) {
          // Retrospective sampling: the prompts the finished stage found hard stay in the next one's pool.
          state.carried = Object.entries(state.history).filter(([, [sum, n]]) => sum / n <= config.retrospective).map(([id]) => id);
          log(`stage ${stageIndex}: ${state.carried.length} hard prompts carried over`);
        }
        state.history = {};
        state.samplerStage = stageIndex;
        state.sampler = null;
        buildSampler(stageIndex);
      } else if (!sampler) {
        buildSampler(stageIndex);
        if (state.sampler) sampler!.restore(state.sampler);
      }
      const t0 = performance.now();
      const drawn = sampler!.next().map((s) => pool[s.index]!);
      const prompts: RlPrompt[] = drawn.map((it) => ({
        ids: ids(it),
        taskId: it.task,
        score: (tokens) => scoreResponse(it, responseText(tokenizer, tokens)),
      }));
      const seed = stepSeed(config.seed, state.step);
      const rollouts = rollout(model, prompts, { group: config.group, maxTokens: stage.maxOutput, temperature: config.temperature, topP: config.topP, stopIds: tokenizer.eosIds, seed });
      if (opts.judge) {
        for (const r of rollouts) {
          if (!(r.reward < 1)) continue;
          const it = drawn[r.groupId as number]!;
          r.reward = await withJudge(r.reward, opts.judge, { question: it.question ?? it.prompt ?? '', answer: Array.isArray(it.answer) ? it.answer.join(', ') : String(it.answer), prediction: responseText(tokenizer, r.tokens) });
        }
      }
      const t1 = performance.now();
      const rm = rolloutMetrics(rollouts);
      const zero = zeroVarianceGroups(rollouts);
      const train = config.dynamicSampling ? rollouts.filter((r) => !zero.has(r.groupId)) : rollouts;
      const switchesBefore = aepo?.switches.length ?? 0;
      let update: Awaited<ReturnType<typeof policyUpdate>> | null = null;
      let skipped: string | null = null;
      if (train.length === 0) skipped = 'every group had equal rewards (dynamic sampling left nothing)';
      else {
        const groups = new Set(train.map((r) => r.groupId)).size;
        update = await policyUpdate(model, opt, train, {
          advantage: { std: config.advStd }, aggregation: config.aggregation, aepo, clipNorm: config.clipNorm,
          minibatches: Math.min(config.minibatches, groups), clipLow: config.clipLow, clipHigh: config.clipHigh, temperature: config.temperature,
        });
        skipped = update.skipped;
      }
      if (skipped) log(`warning: step ${state.step + 1} skipped: ${skipped}`);
      const t2 = performance.now();
      const rewardOf = new Map<number, number[]>();
      for (const r of rollouts) rewardOf.set(r.groupId as number, [...(rewardOf.get(r.groupId as number) ?? []), r.reward]);
      drawn.forEach((it, g) => {
        const rs = rewardOf.get(g)!.filter(Number.isFinite);
        if (rs.length === 0) return;
        const h = (state.history[it.id] ??= [0, 0]);
        h[0] += rs.reduce((a, b) => a + b, 0) / rs.length;
        h[1]++;
      });
      const acc = new Map<string, number[]>();
      for (const r of rollouts) acc.set(String(r.taskId), [...(acc.get(String(r.taskId)) ?? []), r.reward >= 1 ? 1 : 0]);
      const rolloutTokens = rollouts.reduce((a, r) => a + r.prompt.length + r.tokens.length, 0);
      const record: StepRecord = {
        step: state.step + 1,
        stage: stageIndex,
        rewardMean: rm.rewardMean,
        rewardByTask: rm.rewardByTask,
        accuracyByTask: Object.fromEntries([...acc].map(([k, v]) => [k, v.reduce((a, b) => a + b, 0) / v.length])),
        batchEntropy: update?.batchEntropy ?? null,
        aepoOn: aepo?.dropNegative ?? false,
        aepoSwitched: (aepo?.switches.length ?? 0) !== switchesBefore,
        zeroVarianceGroups: zero.size,
        droppedGroups: config.dynamicSampling ? zero.size : 0,
        responseTokensMean: rm.responseTokensMean,
        truncatedResponses: rollouts.filter((r) => r.finishReason === 'length').length,
        gradNorm: update && Number.isFinite(update.gradNorm) ? update.gradNorm : null,
        nll: update && Number.isFinite(update.nll) ? update.nll : null,
        skipped,
        rolloutTokensPerS: rolloutTokens / ((t1 - t0) / 1000),
        trainTokensPerS: update ? update.trainTokens / ((t2 - t1) / 1000) : 0,
        stepSeconds: (t2 - t0) / 1000,
      };
      records.push(record);
      appendFileSync(metricsPath, `${JSON.stringify(record)}\n`);
      state.step++;
      state.metricsLines++;
      sitting++;
      opts.onStep?.(record, totalSteps);
      if (state.step % config.checkpointEvery === 0 || state.step === totalSteps) {
        state.sampler = sampler!.state();
        state.aepo = aepo ? aepo.state() : null;
        await saveCheckpoint(runDir, model, opt, state, opts.tokenizerFrom ?? (typeof opts.model === 'string' ? opts.model : undefined));
      }
    }
    if (state.step < totalSteps && (state.step % config.checkpointEvery !== 0)) {
      // stopped early in this sitting: checkpoint where it stands so the next one resumes here
      state.sampler = sampler ? (sampler as TaskBalancedSampler).state() : state.sampler;
      state.aepo = aepo ? aepo.state() : null;
      await saveCheckpoint(runDir, model, opt, state, opts.tokenizerFrom ?? (typeof opts.model === 'string' ? opts.model : undefined));
    }
    return { model, records, step: state.step, totalSteps, finished: state.step >= totalSteps };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    opt.dispose();
  }
}
