import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { synthesize } from '../../src/synth/pipeline.js';
import { openGraphDb, readLines, repoRoot, tempFolders } from './helpers.js';
import { verifyQuestion } from './verify.js';

const fresh = tempFolders();

const world = { seed: 7, people: 30, cities: 8, countries: 3, organizations: 6 };

describe('determinism and resume', () => {
  it('gives the same bytes for the same seed and different bytes for another', async () => {
    const a = path.join(fresh('det-a'), 'q.jsonl');
    const b = path.join(fresh('det-b'), 'q.jsonl');
    const c = path.join(fresh('det-c'), 'q.jsonl');
    await synthesize({ inputs: [], out: a, count: 21, targetTokens: 1500, seed: 's1', world });
    await synthesize({ inputs: [], out: b, count: 21, targetTokens: 1500, seed: 's1', world });
    await synthesize({ inputs: [], out: c, count: 21, targetTokens: 1500, seed: 's2', world });
    expect(fs.readFileSync(a)).toEqual(fs.readFileSync(b));
    expect(fs.readFileSync(a).equals(fs.readFileSync(c))).toBe(false);
    const db = openGraphDb(`${a}.work`);
    try {
      const qs = readLines(a);
      expect(new Set(qs.map((q) => q.task)).size).toBe(7);
      for (const q of qs) verifyQuestion(q, db, 1500);
    } finally {
      db.close();
    }
  });

  it('resumes a paused run to the same bytes as an uninterrupted one', async () => {
    const whole = path.join(fresh('res-whole'), 'q.jsonl');
    const paused = path.join(fresh('res-paused'), 'q.jsonl');
    await synthesize({ inputs: [], out: whole, count: 14, targetTokens: 1500, seed: 'r', world });
    const first = await synthesize({ inputs: [], out: paused, count: 14, targetTokens: 1500, seed: 'r', world, stopAfter: 6 });
    expect(first.finished).toBe(false);
    expect(fs.existsSync(paused)).toBe(false);
    // A torn last line (a crash mid-write) must be dropped on resume.
    fs.appendFileSync(`${paused}.partial`, '{"id":"torn');
    const second = await synthesize({ inputs: [], out: paused, count: 14, targetTokens: 1500, seed: 'r', world });
    expect(second.finished).toBe(true);
    expect(fs.readFileSync(paused)).toEqual(fs.readFileSync(whole));
  });

  it('resumes after the process is killed part way (SIGKILL) to identical output', async () => {
    const whole = path.join(fresh('kill-whole'), 'q.jsonl');
    const killed = path.join(fresh('kill'), 'q.jsonl');
    const args = [24, 3000, 8] as const;
    await synthesize({ inputs: [], out: whole, count: args[0], targetTokens: args[1], seed: 'resume', maxDocs: args[2] });
    // Node itself with tsx's loader (not the tsx wrapper, whose own child would outlive the kill).
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'tests/synth/kill-child.ts'), killed, ...args.map(String)], { cwd: repoRoot, stdio: 'ignore' });
    // Kill once a few questions are durably written.
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        let lines = 0;
        try {
          lines = fs.readFileSync(`${killed}.partial`, 'utf8').split('\n').length - 1;
        } catch {
          // not created yet
        }
        if (lines >= 6 || child.exitCode !== null) {
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve();
        } else if (Date.now() - started > 90_000) {
          clearInterval(poll);
          child.kill('SIGKILL');
          reject(new Error('child made no progress'));
        }
      }, 20);
    });
    await new Promise((r) => child.once('exit', r));
    expect(fs.existsSync(killed)).toBe(false);
    const done = await synthesize({ inputs: [], out: killed, count: args[0], targetTokens: args[1], seed: 'resume', maxDocs: args[2] });
    expect(done.finished).toBe(true);
    expect(fs.readFileSync(killed)).toEqual(fs.readFileSync(whole));
  });
});
