// Synthetic worlds: the --world argument's errors, and a vocabulary that holds every token of the documents,
// contexts and questions made from the world.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { synthesize } from '../../src/synth/pipeline.js';
import { generateWorld, worldVocabulary } from '../../src/synth/world.js';
import { WordTokenizer } from '../../src/tokenizer/word.js';
import { readLines, runCli, tmpDir } from './helpers.js';

const dir = tmpDir('world');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('--world', () => {
  it('names the key and the rule for every bad value, with one exit code', async () => {
    const out = path.join(dir, 'bad.jsonl');
    const cases: Array<[string, RegExp]> = [
      ['people=0', /--world: people must be an integer from 2 to 100000 \(got 0\)/],
      ['people=-1', /--world: people must be an integer from 2 to 100000 \(got -1\)/],
      ['people=x', /--world: people must be an integer from 2 to 100000 \(got "x"\)/],
      ['people=2.5', /--world: people must be an integer from 2 to 100000 \(got "2.5"\)/],
      ['cities=1', /--world: cities must be an integer from 2 to 20000 \(got 1\)/],
      ['filler=-1', /--world: filler must be an integer from 0 to 1000 \(got -1\)/],
      ['countries=999999999', /--world: countries must be an integer from 2 to 20000/],
      ['persons=3', /--world: unknown key "persons" \(keys: people, cities, countries, organizations, filler\)/],
      ['people', /--world: expected key=number pairs with keys people, cities/],
    ];
    for (const [spec, error] of cases) {
      const r = await runCli(['--world', spec, '--out', out, '--no-progress']);
      expect(r.code, spec).toBe(1);
      expect(r.stderr, spec).toMatch(error);
    }
    // The API says the same.
    await expect(synthesize({ inputs: [], out, count: 2, targetTokens: 300, world: { seed: 1, people: -1 } })).rejects.toThrow(/--world: people must be an integer from 2 to 100000 \(got -1\)/);
    expect(() => generateWorld({ seed: 1, filler: 5000 })).toThrow(/world: filler must be an integer from 0 to 1000/);
    expect(fs.readdirSync(dir)).toEqual([]);
    // filler=0 is allowed.
    expect(generateWorld({ seed: 1, filler: 0 }).options.filler).toBe(0);
  });
});

describe('--world-vocab', () => {
  it('holds every token of the documents, contexts and questions, punctuation and numbers included', async () => {
    const world = { seed: 9, people: 24, cities: 6, countries: 3, organizations: 5 };
    const out = path.join(dir, 'q.jsonl');
    const s = await synthesize({ inputs: [], out, count: 56, targetTokens: 1200, seed: 'v', world });
    expect(s.written).toBe(56);
    const vocab = new Set(worldVocabulary(generateWorld(world)));
    const questions = readLines(out);
    expect(new Set(questions.map((q) => q.task)).size).toBe(7);
    const missing = new Set<string>();
    for (const q of questions) {
      const text = [q.context, q.question, ...(q.options ?? [])];
      // Answers too, except numbers that are computed (sums, differences, averages, ratios).
      if (typeof q.answer === 'string') text.push(q.answer);
      if (Array.isArray(q.answer)) text.push(JSON.stringify(q.answer));
      for (const t of WordTokenizer.split(text.join('\n'))) if (!vocab.has(t)) missing.add(t);
    }
    expect([...missing]).toEqual([]);
    // What the trial found missing: punctuation, the context's markup, and the world's numbers.
    for (const t of ['.', ':', '?', '(', ')', '"', '[', '…', ']', ',']) expect(vocab.has(t), t).toBe(true);
    for (const e of generateWorld(world).entities) for (const n of e.numbers) expect(vocab.has(String(n.value)), String(n.value)).toBe(true);
    // The CLI writes the same list, one token a line.
    const file = path.join(dir, 'vocab.txt');
    const r = await runCli(['--world', 'people=24,cities=6,countries=3,organizations=5', '--seed', '9', '--world-vocab', file, '--out', path.join(dir, 'cli.jsonl'), '--count', '7', '--target-tokens', '1200', '--no-progress']);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${worldVocabulary(generateWorld(world)).join('\n')}\n`);
  });
});
