/**
 * Task-balanced sampling (QwenLong-L1.5 §4.2): every batch draws the same number of prompts from each task type,
 * so no task's reward distribution dominates an update. Per-task counts are ⌊batch · weight⌋, the remainder going
 * one at a time to the tasks with the largest weights (ties: first listed); each task keeps a shuffled pool that is
 * reshuffled when used up; the batch is shuffled. Deterministic under a seed; `state()` / `restore()` resume exactly.
 */
import { Random } from './random.js';

export interface SampledItem {
  task: string;
  /** The item's index in its task's list. */
  index: number;
}

export interface TaskBalancedSamplerOptions {
  /** Items per task: task id → number of items (indices 0..n-1) or their explicit indices. */
  tasks: Record<string, number | readonly number[]>;
  batchSize: number;
  /** Relative weight per task (default equal). */
  weights?: Record<string, number>;
  seed?: number;
}

export interface TaskBalancedSamplerState {
  random: number[];
  pools: Record<string, number[]>;
  batches: number;
}

export class TaskBalancedSampler {
  readonly batchSize: number;
  readonly tasks: readonly string[];
  readonly counts: Readonly<Record<string, number>>;
  #items: Record<string, readonly number[]>;
  #pools: Record<string, number[]> = {};
  #random: Random;
  #batches = 0;

  constructor(opts: TaskBalancedSamplerOptions) {
    const what = 'TaskBalancedSampler';
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new RangeError(`${what}: batchSize must be a positive integer`);
    const names = Object.keys(opts.tasks ?? {});
    if (names.length === 0) throw new RangeError(`${what}: no tasks`);
    this.#items = {};
    for (const name of names) {
      const spec = opts.tasks[name]!;
      const list = typeof spec === 'number' ? Array.from({ length: spec }, (_, i) => i) : Array.from(spec);
      if (list.length === 0) throw new RangeError(`${what}: task '${name}' has no items`);
      if (list.some((i) => !Number.isInteger(i) || i < 0)) throw new RangeError(`${what}: task '${name}' has an index that is not a non-negative integer`);
      this.#items[name] = list;
    }
    const weights = names.map((n) => opts.weights?.[n] ?? 1);
    if (weights.some((w) => !(w >= 0) || !Number.isFinite(w)) || weights.every((w) => w === 0)) throw new RangeError(`${what}: weights must be finite, non-negative and not all zero`);
    const total = weights.reduce((a, b) => a + b, 0);
    const shares = weights.map((w) => w / total);
    const counts = shares.map((s) => Math.floor(opts.batchSize * s + 1e-9));
    let left = opts.batchSize - counts.reduce((a, b) => a + b, 0);
    const order = names.map((_, i) => i).sort((a, b) => shares[b]! - shares[a]! || a - b);
    for (let k = 0; left > 0; k = (k + 1) % order.length, left--) counts[order[k]!]!++;
    this.batchSize = opts.batchSize;
    this.tasks = names;
    this.counts = Object.fromEntries(names.map((n, i) => [n, counts[i]!]));
    this.#random = new Random(opts.seed ?? 0);
  }

  /** The next batch: `counts[task]` items of each task, shuffled together. */
  next(): SampledItem[] {
    const batch: SampledItem[] = [];
    for (const task of this.tasks) {
      for (let i = 0; i < this.counts[task]!; i++) {
        let pool = this.#pools[task];
        if (!pool || pool.length === 0) pool = this.#pools[task] = this.#random.shuffle(Array.from(this.#items[task]!));
        batch.push({ task, index: pool.pop()! });
      }
    }
    this.#batches++;
    return this.#random.shuffle(batch);
  }

  get batches(): number {
    return this.#batches;
  }

  state(): TaskBalancedSamplerState {
    return { random: this.#random.state(), pools: Object.fromEntries(Object.entries(this.#pools).map(([k, v]) => [k, v.slice()])), batches: this.#batches };
  }

  restore(state: TaskBalancedSamplerState): void {
    for (const [task, pool] of Object.entries(state.pools)) {
      if (!(task in this.#items)) throw new RangeError(`TaskBalancedSampler.restore: unknown task '${task}'`);
      const known = new Set(this.#items[task]);
      if (!pool.every((i) => known.has(i))) throw new RangeError(`TaskBalancedSampler.restore: task '${task}' has indices this sampler does not`);
    }
    this.#random = new Random(state.random);
    this.#pools = Object.fromEntries(Object.entries(state.pools).map(([k, v]) => [k, v.slice()]));
    this.#batches = state.batches;
  }
}
