// `qwenlong bench --quick`: every suite runs to the end through the command a user types, and what it prints and
// saves is well formed (a suite that throws, or a case whose median is not a positive time, fails here). The figures
// themselves are the benchmarks' business; this only keeps `npm run bench` from breaking unseen.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchRecord } from '../src/bench/types.js';

const cli = (...args: string[]) => spawnSync(process.execPath, ['dist/src/cli/main.js', 'bench', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
const dir = mkdtempSync(join(tmpdir(), 'qwenlong-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench --quick', () => {
  it('runs every suite and saves one JSON line per case', { timeout: 600_000 }, () => {
    const suites = cli('--list').stdout.trim().split('\n');
    expect(suites).toEqual(expect.arrayContaining(['agent', 'attention', 'core', 'dense', 'kv', 'model', 'policy-loss', 'recipe', 'synth']));
    const r = cli('--quick', '--json', '--save', '--results-dir', dir);
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    const records = JSON.parse(r.stdout) as BenchRecord[];
    for (const suite of suites) expect(records.some((rec) => rec.suite === suite), `suite ${suite} gave no record`).toBe(true);
    for (const rec of records) {
      // A timed case has a positive median; accuracy rows (agent's scores by length) carry 0 and their figures.
      expect(rec.medianMs, `${rec.suite} / ${rec.case}`).toBeGreaterThanOrEqual(rec.figures.score === undefined ? Number.MIN_VALUE : 0);
      expect(Number.isFinite(rec.medianMs)).toBe(true);
      expect(rec.samples).toBeGreaterThanOrEqual(1);
      for (const [key, value] of Object.entries(rec.figures))
        if (typeof value === 'number') expect(Number.isNaN(value), `${rec.suite} / ${rec.case}: ${key}`).toBe(false);
    }
    // --save: one JSON line per record, in the suite's file under --results-dir.
    const saved = readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
    const lines = saved.flatMap((f) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as BenchRecord & { commit?: string }));
    expect(lines.length).toBe(records.length);
    expect(new Set(lines.map((l) => `${l.suite}/${l.case}`))).toEqual(new Set(records.map((l) => `${l.suite}/${l.case}`)));
  });
});
