/**
 * The tiny preset: the whole recipe on a laptop CPU. A 4-layer, d=128 Llama-style model (~0.8M parameters) over
 * the tiny synthetic worlds (word-level tokens, 64-word vocabulary); SFT from scratch to a start RL can improve,
 * then RL on an imbalanced task pool (60/25/10/5) with different reward densities, evaluated greedily on a fixed
 * held-out set of 300 questions per task.
 */
import type { ModelConfig } from '../model/config.js';
import { Random } from './random.js';
import type { RecipeItem } from './data.js';
import type { Stage, TrainConfig } from './config.js';
import { WORLD_TASKS, worldEpisode, worldTokenizer, type WorldEpisode, type WorldTask } from './tiny_world.js';

export { worldTokenizer as tinyTokenizer };

export function tinyModelConfig(): ModelConfig {
  const vocabSize = worldTokenizer().vocabSize;
  return {
    architecture: 'llama', vocabSize, dim: 128, hiddenDim: 384, layers: 4, heads: 4, kvHeads: 4, headDim: 32, maxSeqLen: 256,
    ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-5, tiedEmbeddings: false, qkNorm: false, qkvBias: false, bosId: 1, eosIds: [2],
  };
}

/** The RL pool's task shares: a frequent easy task, rarer harder ones, a dense list task. */
export const TINY_TASK_SHARES: Record<WorldTask, number> = { locate: 0.6, 'owned-place': 0.25, items: 0.1, 'owner-job': 0.05 };

export function episodeItem(e: WorldEpisode, id: string): RecipeItem {
  return { id, task: e.task, prompt: e.prompt, answer: e.task === 'items' ? e.answer : e.answer[0]! };
}

/** `n` items drawn with the given task shares (exact counts, rounded), from one seed. */
export function tinyItems(seed: number, n: number, shares: Record<WorldTask, number> = TINY_TASK_SHARES, prefix = 'w'): RecipeItem[] {
  const rng = new Random(seed);
  const out: RecipeItem[] = [];
  for (const task of WORLD_TASKS) {
    const count = Math.round(n * shares[task]);
    for (let i = 0; i < count; i++) out.push(episodeItem(worldEpisode(rng, task), `${prefix}${seed}-${task}-${i}`));
  }
  return out;
}

/** The held-out set: `perTask` questions of every task (seed apart from training data). */
export function tinyHeldOut(perTask = 300): RecipeItem[] {
  return tinyItems(424242, perTask * WORLD_TASKS.length, Object.fromEntries(WORLD_TASKS.map((t) => [t, 1 / WORLD_TASKS.length])) as Record<WorldTask, number>, 'h');
}

/**
 * SFT examples: tasks drawn with the RL pool's shares (the frequent 1-hop task is where reading by reference is
 * learned first), a fresh world each (the stream is endless and seeded).
 */
export function tinySftStream(seed: number, shares: Record<WorldTask, number> = TINY_TASK_SHARES): (batch: number) => WorldEpisode[] {
  const rng = new Random(seed);
  const draw = (): WorldTask => {
    let r = rng.next();
    for (const t of WORLD_TASKS) if ((r -= shares[t]) < 0) return t;
    return WORLD_TASKS[0]!;
  };
  return (batch) => Array.from({ length: batch }, () => worldEpisode(rng, draw()));
}

export const TINY_STAGES: Stage[] = [{ maxInput: 160, maxOutput: 8, steps: 80 }];

/** The preset's RL settings (the algorithm's arm is applied on top). */
export const TINY_TRAIN: Partial<TrainConfig> = {
  group: 8, batch: 16, lr: 1e-4, weightDecay: 0, clipNorm: 1, temperature: 0.7, topP: 0.95, stages: TINY_STAGES, checkpointEvery: 10,
  entropyLow: 0.5, entropyHigh: 0.65,
};
