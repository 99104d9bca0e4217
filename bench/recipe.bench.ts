/**
 * The recipe at tiny scale (the paper's Table 2/4 ablation on 2 CPU cores): the tiny preset under grpo, + task-
 * balanced sampling, + task std, and the full aepo recipe, 3 seeds each, all from the one packaged SFT checkpoint,
 * each run capped at 4 minutes and resumable (finished runs are reused, so the sweep may span several sittings).
 * Reports greedy held-out macro accuracy per arm with its seed spread and a paired bootstrap interval of the
 * difference against grpo (questions resampled within tasks, seeds paired), and rollout throughput. Writes
 * recipe.md in the results folder (with --save). Runs live in its recipe-runs/ (or QWENLONG_RECIPE_RUNS).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';
import { tinyCheckpoint } from '../src/cli/train.js';
import { machine, machineLine } from '../src/bench/runner.js';
import type { TrainConfig } from '../src/rl/config.js';
import { Random } from '../src/rl/random.js';
import { runTinyRecipe } from '../src/rl/recipe.js';
import type { StepRecord } from '../src/rl/trainer.js';

const ARMS: { name: string; over: Partial<TrainConfig> }[] = [
  { name: 'grpo', over: { algo: 'grpo' } },
  { name: '+ task-balanced sampling', over: { algo: 'grpo', balance: 'task' } },
  { name: '+ task std', over: { algo: 'grpo', balance: 'task', advStd: 'task' } },
  { name: 'aepo (full recipe)', over: { algo: 'aepo' } },
];

interface Scored {
  id: string;
  task: string;
  score: number;
}

function macro(rows: Scored[]): number {
  const by = new Map<string, number[]>();
  for (const r of rows) by.set(r.task, [...(by.get(r.task) ?? []), r.score]);
  const means = [...by.values()].map((v) => v.reduce((a, b) => a + b, 0) / v.length);
  return means.reduce((a, b) => a + b, 0) / means.length;
}

/** 95% paired bootstrap interval of mean-over-seeds(macro(arm) − macro(base)), questions resampled within tasks. */
function pairedBootstrap(arm: Scored[][], base: Scored[][], resamples = 2000): [number, number] {
  const tasks = [...new Set(base[0]!.map((r) => r.task))].sort();
  const idx = tasks.map((t) => base[0]!.flatMap((r, i) => (r.task === t ? [i] : [])));
  const rng = new Random(12345);
  const diffs: number[] = [];
  for (let b = 0; b < resamples; b++) {
    const pick = idx.map((ix) => ix.map(() => ix[rng.int(ix.length)]!));
    let d = 0;
    for (let s = 0; s < arm.length; s++) {
      let sum = 0;
      for (const ix of pick) {
        let t = 0;
        for (const i of ix) t += arm[s]![i]!.score - base[s]![i]!.score;
        sum += t / ix.length;
      }
      d += sum / pick.length;
    }
    diffs.push(d / arm.length);
  }
  diffs.sort((a, b) => a - b);
  return [diffs[Math.floor(0.025 * resamples)]!, diffs[Math.floor(0.975 * resamples)]!];
}

const suite: BenchSuite = {
  name: 'recipe',
  description: 'tiny-preset ablation: grpo, + balanced sampling, + task std, aepo; 3 seeds; held-out accuracy and RL throughput',
  async run(ctx) {
    const root = process.env.QWENLONG_RECIPE_RUNS ?? join(ctx.resultsDir, 'recipe-runs');
    const seeds = ctx.quick ? [0] : [0, 1, 2];
    const arms = ctx.quick ? [ARMS[0]!, ARMS[3]!] : ARMS;
    const cap = Number(process.env.QWENLONG_RECIPE_CAP_S ?? 240);
    mkdirSync(root, { recursive: true });
    const results = new Map<string, { scores: Scored[][]; before: number; after: number[]; records: StepRecord[][]; switches: number[] }>();
    let pending = 0;
    for (const arm of arms) {
      const entry = { scores: [] as Scored[][], before: NaN, after: [] as number[], records: [] as StepRecord[][], switches: [] as number[] };
      results.set(arm.name, entry);
      for (const seed of seeds) {
        const runDir = join(root, `${arm.over.algo}-${arm.over.balance ?? 'preset'}-${arm.over.advStd ?? 'preset'}-seed${seed}${ctx.quick ? '-quick' : ''}`);
        const done = join(runDir, 'heldout-after.jsonl');
        if (!existsSync(done)) {
          ctx.log(`${arm.name}, seed ${seed}: running (cap ${cap} s)`);
          const over = { ...arm.over, seed, ...(ctx.quick ? { stages: [{ maxInput: 160, maxOutput: 8, steps: 6 }] } : {}) };
          const r = await runTinyRecipe({ runDir, checkpoint: tinyCheckpoint(), overrides: over, resume: true, maxSeconds: cap, heldOut: ctx.quick ? 50 : 300 });
          if (!r.after) {
            ctx.log(`${arm.name}, seed ${seed}: not finished within the cap; run the suite again to continue it`);
            pending++;
            continue;
          }
        }
        const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8')) as { before: { macro: number } };
        const scores = readFileSync(done, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Scored);
        const records = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepRecord);
        entry.before = summary.before.macro;
        entry.scores.push(scores);
        entry.after.push(macro(scores));
        entry.records.push(records);
        entry.switches.push(records.filter((r) => r.aepoSwitched).length);
      }
    }
    if (pending > 0) {
      ctx.log(`${pending} runs unfinished: no figures yet`);
      return [];
    }
    const base = results.get('grpo')!;
    const out: BenchRecord[] = [];
    const rows: string[] = [];
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    for (const arm of arms) {
      const r = results.get(arm.name)!;
      const [lo, hi] = arm.name === 'grpo' ? [0, 0] : pairedBootstrap(r.scores, base.scores, ctx.quick ? 200 : 2000);
      const steps = r.records.flat();
      const figures: Record<string, number | string> = {
        'held-out before': r.before,
        'held-out after (mean)': mean(r.after),
        'after min': Math.min(...r.after),
        'after max': Math.max(...r.after),
        'vs grpo': mean(r.after) - mean(base.after),
        'vs grpo 95% lo': lo,
        'vs grpo 95% hi': hi,
        'AEPO switches (mean)': mean(r.switches),
        'rollout tok/s': mean(steps.map((s) => s.rolloutTokensPerS)),
        's/step': mean(steps.map((s) => s.stepSeconds)),
      };
      out.push({ suite: 'recipe', case: arm.name, medianMs: mean(steps.map((s) => s.stepSeconds)) * 1000, samples: steps.length, figures });
      rows.push(`| ${arm.name} | ${r.after.map((x) => x.toFixed(3)).join(' / ')} | ${mean(r.after).toFixed(3)} | ${arm.name === 'grpo' ? '–' : `${(mean(r.after) - mean(base.after)) >= 0 ? '+' : ''}${(mean(r.after) - mean(base.after)).toFixed(3)} [${lo.toFixed(3)}, ${hi.toFixed(3)}]`} | ${mean(r.switches).toFixed(1)} | ${mean(steps.map((s) => s.rolloutTokensPerS)).toFixed(0)} | ${mean(steps.map((s) => s.stepSeconds)).toFixed(2)} |`);
    }
    if (!ctx.quick) {
      const md = [
        '# The recipe at tiny scale: ablation on the tiny preset',
        '',
        `Written by \`npm run bench -- recipe\` on ${new Date().toISOString().slice(0, 10)} (${machineLine(machine())}).`,
        `Every run starts from the packaged SFT checkpoint (held-out macro accuracy ${base.before.toFixed(3)}, greedy, 300 questions per task) and`,
        `runs the tiny preset's RL stage; seeds ${seeds.join(', ')}. Interval: 95% paired bootstrap of the difference in mean macro accuracy against grpo`,
        '(questions resampled within each task, seeds paired).',
        '',
        '| arm | held-out after, per seed | mean | vs grpo [95% CI] | AEPO switches | rollout tok/s | s/step |',
        '|---|---|---|---|---|---|---|',
        ...rows,
        '',
      ].join('\n');
      ctx.writeReport('recipe.md', md);
    }
    return out;
  },
};

export default suite;
