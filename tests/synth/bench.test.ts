// `qwenlong bench synth --quick`: the suite runs through the real harness (tinybench) and its timed runs never
// overlap on their one output (they did: the harness calls a plain function once, unawaited, to see whether it
// returns a promise, and that run collided with the next on `q.jsonl.partial`).
import { describe, expect, it } from 'vitest';
import suite from '../../bench/synth.bench.js';
import { timeIt } from '../../src/bench/runner.js';

describe('bench synth --quick', () => {
  it('measures extraction, tokenization and composition', async () => {
    const logs: string[] = [];
    const records = await suite.run({
      quick: true,
      log: (line) => void logs.push(line),
      time: (fn, t) => timeIt(fn, t, true),
      resultsDir: '',
      writeReport: () => {},
    });
    expect(records.map((r) => r.case)).toEqual([
      expect.stringMatching(/^extract offline, 12 SOTU addresses/),
      expect.stringMatching(/^tokenize/),
      'compose 7 questions, all tasks, 32K-token contexts',
    ]);
    for (const r of records) {
      expect(r.medianMs).toBeGreaterThan(0);
      expect(r.samples).toBeGreaterThanOrEqual(1);
    }
    expect(records[2]!.figures['questions/s']).toBeGreaterThan(0);
  });
});
