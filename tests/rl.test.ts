// Host-side RL pieces: group advantages against a plain reference, batch entropy, the task-balanced sampler, the
// AEPO switch on a scripted entropy sequence, and every reward on tricky answers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { AepoController, Random, Tensor, TaskBalancedSampler, ops, rewards } from '../src/index.js';

describe('ops.groupAdvantages', () => {
  // 2 groups of 3 (task qa), 1 group of 2 (task mc), a singleton group (task mc), a one-response task (niah)
  const r = [1, 0, 0, 1, 1, 0, 0.5, 0.5, 1, 0.3];
  const g = ['g1', 'g1', 'g1', 'g2', 'g2', 'g2', 'g3', 'g3', 'g4', 'g5'];
  const task = ['qa', 'qa', 'qa', 'qa', 'qa', 'qa', 'mc', 'mc', 'mc', 'niah'];
  const std = (xs: number[]) => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    return xs.length < 2 ? 1 : Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
  };
  const mean = (xs: number[]) => (xs.length < 2 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  const pick = (keys: string[], k: string) => r.filter((_, i) => keys[i] === k);

  it('task std (Eq. 7): group-centred, divided by the std of the task', () => {
    const a = ops.groupAdvantages(r, g, task);
    r.forEach((ri, i) => {
      const expected = (ri - mean(pick(g, g[i]!))) / (std(pick(task, task[i]!)) + 1e-6);
      expect(a[i]).toBeCloseTo(expected, 12);
    });
    expect(a[9]).toBeCloseTo(0.3 / (1 + 1e-6), 12); // one-response task: std 1; singleton group: mean 0 (keep)
  });

  it('group, batch and no std; singleton zero', () => {
    const byGroup = ops.groupAdvantages(r, g, task, { std: 'group' });
    const byBatch = ops.groupAdvantages(r, g, task, { std: 'batch' });
    const none = ops.groupAdvantages(r, g, task, { std: 'none', singleton: 'zero' });
    r.forEach((ri, i) => {
      const c = ri - mean(pick(g, g[i]!));
      expect(byGroup[i]).toBeCloseTo(c / (std(pick(g, g[i]!)) + 1e-6), 12);
      expect(byBatch[i]).toBeCloseTo(c / (std(r) + 1e-6), 12);
      expect(none[i]).toBeCloseTo(pick(g, g[i]!).length < 2 ? 0 : c, 12);
    });
    // all-equal rewards in a group: advantage 0 (the group carries no signal)
    expect(Array.from(ops.groupAdvantages([1, 1, 1], [0, 0, 0], [0, 0, 0]))).toEqual([0, 0, 0]);
  });

  it('refuses bad input', () => {
    expect(() => ops.groupAdvantages([1, NaN], [0, 0], [0, 0])).toThrow(/rewards\[1\]/);
    expect(() => ops.groupAdvantages([1, 2], [0], [0, 0])).toThrow(/groupIds' has 1 entries, expected 2/);
    expect(() => ops.groupAdvantages([1], [0], [0], { std: 'x' as never })).toThrow(/std/);
  });

  it('broadcasts advantages to tokens', () => {
    expect(Array.from(ops.broadcastAdvantages([1.5, -2, 3], [0, 2, 2, 5]))).toEqual([1.5, 1.5, 3, 3, 3]);
    expect(() => ops.broadcastAdvantages([1], [0, 2, 1])).toThrow(/must not decrease|sequences/);
  });
});

describe('ops.batchEntropy (Eq. 11)', () => {
  it('averages per-sequence token means over non-empty sequences', async () => {
    const e = [1, 3, 10, 2, 2, 2];
    // sequences: [1,3] mean 2; [] empty; [10] mean 10; [2,2,2] mean 2 -> (2 + 10 + 2) / 3
    expect(await ops.batchEntropy(e, [0, 2, 2, 3, 6])).toBeCloseTo(14 / 3, 12);
    const t = Tensor.from(e, [6], { device: 'cpu' });
    expect(await ops.batchEntropy(t, [0, 2, 2, 3, 6], [1, 0, 0, 1, 1, 1])).toBeCloseTo((1 + 2) / 2, 6); // seq 3 masked out entirely
    await expect(ops.batchEntropy(e, [0, 7])).rejects.toThrow(/end at 6/);
  });
});

describe('TaskBalancedSampler', () => {
  it('draws equal counts per task (remainder to the heaviest, then first listed), reshuffles pools, is deterministic', () => {
    const tasks = { mc: 10, qa: 7, niah: 3, numeric: 5, dialogue: 4 };
    const s = new TaskBalancedSampler({ tasks, batchSize: 128, seed: 1 });
    expect(s.counts).toEqual({ mc: 26, qa: 26, niah: 26, numeric: 25, dialogue: 25 });
    const seen: Record<string, number[]> = {};
    for (let b = 0; b < 3; b++) {
      const batch = s.next();
      expect(batch).toHaveLength(128);
      const per: Record<string, number> = {};
      for (const it of batch) {
        per[it.task] = (per[it.task] ?? 0) + 1;
        expect(it.index).toBeLessThan(tasks[it.task as keyof typeof tasks]);
        (seen[it.task] ??= []).push(it.index);
      }
      expect(per).toEqual(s.counts);
    }
    // each pool is used up before any item repeats, so within a batch every item of a task is drawn equally often (±1)
    for (const [task, n] of [['niah', 3], ['mc', 10]] as const) {
      const counts = new Array(n).fill(0);
      for (const i of seen[task]!.slice(0, 26)) counts[i]++;
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
    const again = new TaskBalancedSampler({ tasks, batchSize: 128, seed: 1 });
    const a1 = again.next();
    expect(a1).toEqual(new TaskBalancedSampler({ tasks, batchSize: 128, seed: 1 }).next());
    expect(a1).not.toEqual(new TaskBalancedSampler({ tasks, batchSize: 128, seed: 2 }).next());
  });

  it('honours weights and resumes exactly from a saved state', () => {
    const s = new TaskBalancedSampler({ tasks: { a: 20, b: 20 }, batchSize: 10, weights: { a: 3, b: 1 }, seed: 5 });
    expect(s.counts).toEqual({ a: 8, b: 2 });
    s.next();
    const saved = JSON.parse(JSON.stringify(s.state()));
    const expected = [s.next(), s.next()];
    const resumed = new TaskBalancedSampler({ tasks: { a: 20, b: 20 }, batchSize: 10, weights: { a: 3, b: 1 }, seed: 999 });
    resumed.restore(saved);
    expect([resumed.next(), resumed.next()]).toEqual(expected);
    expect(() => new TaskBalancedSampler({ tasks: {}, batchSize: 4 })).toThrow(/no tasks/);
    expect(() => new TaskBalancedSampler({ tasks: { a: 0 }, batchSize: 4 })).toThrow(/no items/);
  });

  it('Random is uniform enough and restores its state', () => {
    const r = new Random(42);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) counts[r.int(10)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    const st = r.state();
    const x = [r.next(), r.next()];
    expect([new Random(st).next(), new Random(st).next()][0]).toBe(x[0]);
  });
});

describe('AepoController', () => {
  it('switches with hysteresis on a scripted entropy sequence, logging each switch', () => {
    const log: string[] = [];
    const c = new AepoController({ entropyLow: 0.14, entropyHigh: 0.26, onSwitch: (e) => log.push(`${e.step}:${e.dropNegative ? 'on' : 'off'}`) });
    const entropy = [0.12, 0.2, 0.25, 0.27, 0.22, 0.18, 0.15, 0.13, 0.2, 0.26, 0.261, 0.1];
    const decisions = entropy.map((e) => c.update(e));
    expect(decisions).toEqual([false, false, false, true, true, true, true, false, false, false, true, false]);
    expect(log).toEqual(['4:on', '8:off', '11:on', '12:off']);
    const again = new AepoController({ entropyLow: 0.14, entropyHigh: 0.26 });
    again.restore(c.state());
    expect(again.dropNegative).toBe(false);
    expect(() => new AepoController({ entropyLow: 0.3, entropyHigh: 0.2 })).toThrow(/entropyLow < entropyHigh/);
    expect(() => c.update(NaN)).toThrow(/finite/);
  });
});

describe('rewards', () => {
  const { exactMatch, coverExactMatch, tokenF1, listF1, numericMatch, parseNumbers, extractBoxed, extractAnswer, extractChoice, choiceMatch, similarityRatio, withJudge, normalizeAnswer } = rewards;

  it('normalizes and matches exactly or by cover', () => {
    expect(normalizeAnswer('  The  Eiffel-Tower!! ')).toBe('eiffel tower');
    expect(exactMatch('the Eiffel Tower.', 'Eiffel tower')).toBe(1);
    expect(exactMatch('Eiffel Tower in Paris', ['Eiffel Tower', 'La tour Eiffel'])).toBe(0);
    expect(exactMatch('', '')).toBe(0);
    expect(coverExactMatch('It is the Eiffel Tower in Paris.', 'eiffel tower')).toBe(1);
    expect(coverExactMatch('Parisian', 'Paris')).toBe(0); // whole words only
  });

  it('token and list F1', () => {
    expect(tokenF1('Barack Obama', 'President Barack Obama')).toBeCloseTo(0.8, 12);
    expect(tokenF1('nothing here', 'Obama')).toBe(0);
    expect(listF1('Paris, London and Rome', 'rome; paris; berlin')).toBeCloseTo(2 / 3, 12);
    expect(listF1(['A', 'b'], ['a', 'B'])).toBe(1);
    expect(listF1('- apples\n- pears', 'apples, pears')).toBe(1);
  });

  it('numeric match with DocMath tolerance and unit scaling', () => {
    expect(parseNumbers('Revenue was $1,234.5 million, down (3.2%)')).toEqual([1234.5e6, -0.032]);
    expect(numericMatch('The answer is 12.34', '12.35')).toBe(1); // 0.08% off
    expect(numericMatch('The answer is 12.4', '12.35')).toBe(0); // 0.4% off
    expect(numericMatch('25%', '0.25')).toBe(1);
    expect(numericMatch('3.2 million', '3200000')).toBe(1);
    expect(numericMatch('about 3,200 thousand', 3.2e6)).toBe(1);
    expect(numericMatch('-5', '5')).toBe(0);
    expect(numericMatch('no number', '5')).toBe(0);
    expect(numericMatch('first 7 then 42', '42')).toBe(1); // the last number is the answer
    expect(numericMatch('25', '0.25', { unitScaling: false })).toBe(0);
  });

  it('extracts boxed answers, answer lines and option letters from reasoning traces', () => {
    expect(extractBoxed('so \\boxed{\\frac{1}{2}} and finally \\boxed{42}')).toBe('42');
    expect(extractBoxed('\\boxed{a{b}c}')).toBe('a{b}c');
    expect(extractBoxed('\\boxed{unclosed')).toBeNull();
    expect(extractAnswer('<think>maybe 3? the answer: 3</think>\nAnswer: 5.')).toBe('5');
    expect(extractAnswer('plain text')).toBe('plain text');
    expect(extractChoice('<think>A seems wrong, B too</think> The answer is (C).')).toBe('C');
    expect(extractChoice('**D**')).toBe('D');
    expect(extractChoice('Answer: b) because')).toBe('B');
    expect(extractChoice('I cannot decide')).toBe('I'); // a lone capital I is a letter too: the caller restricts letters
    expect(extractChoice('I cannot decide', 'ABCD')).toBeNull();
    expect(choiceMatch('Final answer: (A)', 'a')).toBe(1);
  });

  it("similarityRatio equals Python difflib's SequenceMatcher ratio", () => {
    const pairs = JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', 'rewards.json'), 'utf8')) as { a: string; b: string; ratio: number }[];
    for (const { a, b, ratio } of pairs) expect(similarityRatio(a, b)).toBeCloseTo(ratio, 12);
  });

  it('asks the judge only when the rule fails', async () => {
    let asked = 0;
    const judge = async () => {
      asked++;
      return 0.8;
    };
    const input = { question: 'q', answer: 'a', prediction: 'p' };
    expect(await withJudge(1, judge, input)).toBe(1);
    expect(await withJudge(0, judge, input)).toBe(0.8);
    expect(await withJudge(0.2, undefined, input)).toBe(0.2);
    expect(asked).toBe(1);
    await expect(withJudge(0, async () => NaN, input)).rejects.toThrow(/number/);
  });
});

describe('computePolicyLoss', () => {
  it('composes task advantages, AEPO and the fused loss exactly as the ops do by hand', async () => {
    const { computePolicyLoss } = await import('../src/index.js');
    const H = 8, V = 23, r = (s: number) => Float32Array.from({ length: s }, (_, i) => Math.sin(i * 1.3 + s));
    const rollouts = [
      { groupId: 'p1', taskId: 'qa', reward: 1, tokens: [1, 2, 3], tokenEntropy: [0.5, 0.4, 0.3] },
      { groupId: 'p1', taskId: 'qa', reward: 0, tokens: [4, 5], tokenEntropy: [0.9, 0.7] },
      { groupId: 'p2', taskId: 'mc', reward: 1, tokens: [6], tokenEntropy: [0.2] },
      { groupId: 'p2', taskId: 'mc', reward: 0, tokens: [7, 8, 9, 10], tokenEntropy: [0.1, 0.1, 0.1, 0.1] },
    ];
    const hidden = Tensor.from(r(10 * H), [10, H], { device: 'cpu' }), weight = Tensor.from(r(V * H), [V, H], { device: 'cpu' });
    const aepo = new AepoController({ entropyLow: 0.1, entropyHigh: 0.3 });
    const res = await computePolicyLoss({ rollouts, hidden, weight, aggregation: 'group-token-mean', aepo });
    // Eq. 11: sequence means 0.4, 0.8, 0.2, 0.1 -> 0.375 > 0.3: AEPO drops the negative sequences
    expect(res.batchEntropy).toBeCloseTo(0.375, 6);
    expect(res.dropNegative).toBe('zero');
    const adv = ops.groupAdvantages([1, 0, 1, 0], ['p1', 'p1', 'p2', 'p2'], ['qa', 'qa', 'mc', 'mc']);
    expect(Array.from(res.advantages)).toEqual(Array.from(adv));
    const byHand = ops.policyLoss({
      hidden, weight, targets: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], advantages: ops.broadcastAdvantages(adv, [0, 3, 5, 6, 10]),
      cuSeqlens: [0, 3, 5, 6, 10], groupIds: ['p1', 'p1', 'p2', 'p2'], aggregation: 'group-token-mean', dropNegative: 'zero',
    });
    expect(await res.loss.item()).toBe(await byHand.loss.item());
    expect(Array.from(await res.dWeight!.toArray())).toEqual(Array.from(await byHand.dWeight!.toArray()));
    await expect(computePolicyLoss({ rollouts: [], hidden, weight })).rejects.toThrow(/no rollouts/);
    await expect(computePolicyLoss({ rollouts: rollouts.slice(0, 1), hidden, weight })).rejects.toThrow(/'hidden' has 10 rows but the rollouts have 3 tokens/);
  });
});
