import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesize, type SynthSummary } from '../../src/synth/pipeline.js';
import { loadTokenCounter } from '../../src/synth/tokenizer.js';
import { validateQuestion } from '../../src/synth/schema.js';
import { TASKS, type SynthQuestion } from '../../src/synth/types.js';
import { openGraphDb, readLines, tmpDir } from './helpers.js';
import { verifyQuestion } from './verify.js';

const LONG = Boolean(process.env.QWENLONG_TEST_LONG);
const TARGET = LONG ? 32000 : 4000;
const COUNT = LONG ? 140 : 35;

describe('synth on the bundled State of the Union corpus', () => {
  const dir = tmpDir('sotu');
  const out = path.join(dir, 'q.jsonl');
  let summary: SynthSummary;
  let questions: SynthQuestion[];

  beforeAll(async () => {
    summary = await synthesize({ inputs: [], out, count: COUNT, targetTokens: TARGET, seed: 'sotu-test', maxDocs: LONG ? undefined : 24 });
    questions = readLines(out);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the requested number of schema-valid questions over every task', () => {
    expect(summary.finished).toBe(true);
    expect(questions.length).toBe(COUNT);
    for (const q of questions) expect(validateQuestion(q)).toBeNull();
    const tasks = new Set(questions.map((q) => q.task));
    expect(tasks.size).toBeGreaterThanOrEqual(5);
    expect([...tasks].every((t) => (TASKS as readonly string[]).includes(t))).toBe(true);
    expect(new Set(questions.map((q) => q.id)).size).toBe(COUNT);
    expect(fs.existsSync(`${out}.partial`)).toBe(false);
  });

  it('re-derives every answer independently', () => {
    const db = openGraphDb(`${out}.work`);
    try {
      for (const q of questions) verifyQuestion(q, db, TARGET);
    } finally {
      db.close();
    }
  });

  it('records token counts that a fresh count of the context reproduces', () => {
    const counter = loadTokenCounter();
    for (const q of questions.slice(0, 8)) expect(counter.count(q.context)).toBe(q.tokens);
  });

  it('spreads evidence depth and includes multi-hop paths', () => {
    const depths = questions.map((q) => q.meta.depth as number);
    expect(Math.min(...depths)).toBeLessThan(0.3);
    expect(Math.max(...depths)).toBeGreaterThan(0.6);
    expect(questions.some((q) => q.task === 'multihop' && q.hops >= 2)).toBe(true);
  });
});
