/**
 * The trainer's configuration and the presets that name the paper's arms:
 * - `grpo`: the baseline — Eq. 4 aggregation (group-token-mean), group std, random sampler, one update per batch;
 * - `aepo`: grpo + task-balanced sampling + task std + the AEPO entropy controller (the full recipe);
 * - `dapo`: token-mean, clip 0.2/0.28 over several minibatches (so clipping acts), dynamic sampling.
 * Single switches override a preset.
 */
import type { Aggregation } from '../ops/policy_loss.js';

export type Algo = 'grpo' | 'aepo' | 'dapo';
export const ALGOS: readonly Algo[] = ['grpo', 'aepo', 'dapo'];

export interface Stage {
  /** Prompts longer than this (tokens) are left out of the stage. */
  maxInput: number;
  /** New tokens per response at most. */
  maxOutput: number;
  steps: number;
  /** Only these tasks (default all). */
  tasks?: string[];
}

export interface TrainConfig {
  algo: Algo;
  /** 'task': every batch draws equally from each task; 'none': uniformly from the pool. */
  balance: 'none' | 'task';
  advStd: 'group' | 'batch' | 'task' | 'none';
  /** The AEPO controller (entropy hysteresis on negative gradients). */
  aepo: boolean;
  entropyLow: number;
  entropyHigh: number;
  aggregation: Aggregation;
  minibatches: number;
  clipLow: number;
  clipHigh: number;
  /** Drop groups whose G rewards are all equal before the update. */
  dynamicSampling: boolean;
  group: number;
  /** Prompts per batch. */
  batch: number;
  lr: number;
  weightDecay: number;
  clipNorm: number;
  temperature: number;
  topP: number;
  stages: Stage[];
  /** Retrospective sampling: prompts whose mean reward in a stage was at most this stay in the next stage's pool. */
  retrospective: number;
  /** Offline difficulty binning: pass@k of the starting model per prompt (0: off), equal draws per bin. */
  binK: number;
  checkpointEvery: number;
  seed: number;
}

export const DEFAULT_CONFIG: TrainConfig = {
  algo: 'aepo', balance: 'task', advStd: 'task', aepo: true, entropyLow: 0.6, entropyHigh: 1.2, aggregation: 'group-token-mean',
  minibatches: 1, clipLow: 0.2, clipHigh: 0.28, dynamicSampling: false, group: 8, batch: 16, lr: 2e-6, weightDecay: 0.01, clipNorm: 1,
  temperature: 0.7, topP: 0.95, stages: [{ maxInput: 32768, maxOutput: 4096, steps: 100 }], retrospective: 0, binK: 0, checkpointEvery: 20, seed: 0,
};

/** The preset's settings for an algorithm. */
export function algoPreset(algo: Algo): Partial<TrainConfig> {
  switch (algo) {
    case 'grpo':
      return { algo, balance: 'none', advStd: 'group', aepo: false, aggregation: 'group-token-mean', minibatches: 1, dynamicSampling: false };
    case 'aepo':
      return { algo, balance: 'task', advStd: 'task', aepo: true, aggregation: 'group-token-mean', minibatches: 1, dynamicSampling: false };
    case 'dapo':
      return { algo, balance: 'none', advStd: 'group', aepo: false, aggregation: 'token-mean', minibatches: 4, clipLow: 0.2, clipHigh: 0.28, dynamicSampling: true };
    default:
      throw new RangeError(`unknown algorithm '${String(algo)}' (known: ${ALGOS.join(', ')})`);
  }
}

/** Checks every field; the error names the field. */
export function checkTrainConfig(c: TrainConfig): TrainConfig {
  const bad = (k: string, want: string, v: unknown) => new RangeError(`train config: '${k}' must be ${want}, not ${JSON.stringify(v)}`);
  // a misspelt field would otherwise be ignored and its default used in silence
  const unknown = (where: string, o: object, known: readonly string[]) => {
    const extra = Object.keys(o).filter((k) => !known.includes(k));
    if (extra.length > 0) throw new RangeError(`train config: unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => `'${where}${k}'`).join(', ')} (known: ${known.join(', ')})`);
  };
  unknown('', c, Object.keys(DEFAULT_CONFIG));
  if (!ALGOS.includes(c.algo)) throw bad('algo', ALGOS.join(' | '), c.algo);
  if (!['none', 'task'].includes(c.balance)) throw bad('balance', "'none' or 'task'", c.balance);
  if (!['group', 'batch', 'task', 'none'].includes(c.advStd)) throw bad('advStd', "'group', 'batch', 'task' or 'none'", c.advStd);
  if (!['token-mean', 'group-token-mean', 'seq-mean-token-mean'].includes(c.aggregation)) throw bad('aggregation', "'token-mean', 'group-token-mean' or 'seq-mean-token-mean'", c.aggregation);
  const ints: [keyof TrainConfig, number][] = [['minibatches', 1], ['group', 1], ['batch', 1], ['checkpointEvery', 1], ['binK', 0], ['seed', 0]];
  for (const [k, lo] of ints) if (!Number.isInteger(c[k]) || (c[k] as number) < lo) throw bad(k, `an integer ≥ ${lo}`, c[k]);
  const pos: (keyof TrainConfig)[] = ['lr', 'temperature'];
  for (const k of pos) if (!(Number.isFinite(c[k]) && (c[k] as number) > 0)) throw bad(k, 'a positive number', c[k]);
  const nonneg: (keyof TrainConfig)[] = ['weightDecay', 'clipNorm', 'clipLow', 'clipHigh', 'entropyLow', 'retrospective'];
  for (const k of nonneg) if (!(Number.isFinite(c[k]) && (c[k] as number) >= 0)) throw bad(k, 'a number ≥ 0', c[k]);
  if (!(c.topP > 0 && c.topP <= 1)) throw bad('topP', 'in (0, 1]', c.topP);
  if (c.aepo && !(c.entropyHigh > c.entropyLow)) throw bad('entropyHigh', `above entropyLow (${c.entropyLow})`, c.entropyHigh);
  if (c.minibatches > c.batch) throw bad('minibatches', `at most batch (${c.batch})`, c.minibatches);
  if (!Array.isArray(c.stages) || c.stages.length === 0) throw bad('stages', 'a non-empty list', c.stages);
  c.stages.forEach((s, i) => {
    if (s !== null && typeof s === 'object') unknown(`stages[${i}].`, s, ['maxInput', 'maxOutput', 'steps', 'tasks']);
    for (const k of ['maxInput', 'maxOutput', 'steps'] as const) if (!Number.isInteger(s?.[k]) || s[k] < 1) throw bad(`stages[${i}].${k}`, 'a positive integer', s?.[k]);
    if (s.tasks !== undefined && !(Array.isArray(s.tasks) && s.tasks.every((t) => typeof t === 'string'))) throw bad(`stages[${i}].tasks`, 'a list of task names', s.tasks);
  });
  return c;
}

/** Defaults, then the algorithm's preset, then explicit overrides. */
export function makeTrainConfig(overrides: Partial<TrainConfig> = {}, base: Partial<TrainConfig> = {}): TrainConfig {
  const algo = overrides.algo ?? base.algo ?? DEFAULT_CONFIG.algo;
  return checkTrainConfig({ ...DEFAULT_CONFIG, ...base, ...algoPreset(algo), ...overrides, algo });
}
