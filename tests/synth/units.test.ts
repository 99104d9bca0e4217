import { describe, expect, it } from 'vitest';
import { isCorrect, listF1, sequenceRatio } from '../../src/synth/scoring.js';
import { Rng } from '../../src/synth/rng.js';
import { parseQuantity, relationCluster } from '../../src/synth/extract.js';
import { findPipeTables, parseCellNumber, parseCsv } from '../../src/synth/tables.js';
import { findWord, normalize, splitSentences } from '../../src/synth/text.js';
import { DuplicateFilter, checkLength } from '../../src/synth/checks.js';
import { generateWorld } from '../../src/synth/world.js';

describe('scoring', () => {
  it('matches difflib.SequenceMatcher ratios', () => {
    // Values from Python's difflib.SequenceMatcher(None, a, b).ratio().
    expect(sequenceRatio('abcd', 'bcde')).toBeCloseTo(0.75, 12);
    expect(sequenceRatio('qabxcd', 'abycdf')).toBeCloseTo(0.6666666666666666, 12);
    expect(sequenceRatio('private Thread currentThread;', 'private volatile Thread currentThread;')).toBeCloseTo(0.8656716417910447, 12);
    expect(sequenceRatio('', '')).toBe(1);
    expect(sequenceRatio('abc', '')).toBe(0);
  });

  it('scores lists by F1 and answers by kind', () => {
    expect(listF1(['a', 'b'], ['a', 'b', 'c', 'd'])).toBeCloseTo(2 / 3, 12);
    expect(listF1([], [])).toBe(1);
    expect(isCorrect('1,250', 1250)).toBe(true);
    expect(isCorrect('3.14159', 3.1416)).toBe(true);
    expect(isCorrect(['B', 'a'], ['a', 'b'])).toBe(true);
    expect(isCorrect('The Hague', 'the hague')).toBe(true);
    expect(isCorrect('Hague', 'The Hague', ['Hague'])).toBe(true);
    expect(isCorrect('Paris', 'London')).toBe(false);
  });
});

describe('helpers', () => {
  it('seeded streams are reproducible and independent', () => {
    const a = new Rng('s', 'x');
    const b = new Rng('s', 'x');
    const seqA = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(seqA);
    expect(new Rng('s', 'y').nextU32()).not.toBe(seqA[0]);
    const r = new Rng(1);
    for (let i = 0; i < 1000; i++) {
      const v = r.range(3, 5);
      expect(v >= 3 && v <= 5).toBe(true);
    }
    expect(new Rng(2).shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(() => new Rng(1).pick([])).toThrow(RangeError);
  });

  it('parses numbers as written', () => {
    expect(parseQuantity('$2.5 million')).toBe(2_500_000);
    expect(parseQuantity('12 percent')).toBe(12);
    expect(parseQuantity('1,200')).toBe(1200);
    expect(parseQuantity('millions')).toBeNull();
    expect(parseCellNumber('(1,234.5)')).toBe(-1234.5);
    expect(parseCellNumber('45%')).toBe(45);
    expect(parseCellNumber('n/a')).toBeNull();
  });

  it('finds tables with exact row spans', () => {
    const text = 'x\n\n| a | b |\n|---|---|\n| u | 1 |\n| v | 2 |\n\ny';
    const [t] = findPipeTables(text);
    expect(t!.header).toEqual(['a', 'b']);
    expect(t!.rows.map((r) => text.slice(r.start, r.end))).toEqual(['| u | 1 |', '| v | 2 |']);
    const csv = parseCsv('k,v\r\n"a ""q""",1\r\nb,2\r\n');
    expect(csv!.rows.map((r) => r.cells)).toEqual([['a "q"', '1'], ['b', '2']]);
    expect(parseCsv('just one line')).toBeNull();
  });

  it('normalizes, finds whole words and splits sentences', () => {
    expect(normalize("  The  Queen's   Navy! ")).toBe('the queen navy');
    expect(findWord('Spain and Spaniards', 'Spaniard')).toBe(-1);
    expect(findWord('Spain and Spaniards', 'spain')).toBe(0);
    const text = 'Mr. Smith went. He said "Yes." Then 3 more came!';
    expect(splitSentences(text).map(([a, b]) => text.slice(a, b))).toEqual(['Mr.', 'Smith went.', 'He said "Yes."', 'Then 3 more came!']);
    expect(relationCluster('declare war on')).toBe('state war on');
  });

  it('filters near duplicates and checks length', () => {
    const f = new DuplicateFilter();
    const q = { task: 'multihop' as const, question: 'What is the capital of the country where Rome lies?', answer: 'Italy' };
    f.add(q);
    expect(f.isDuplicate({ ...q, question: 'What is the capital of the country where Rome lies ?' })).toBe(true);
    expect(f.isDuplicate({ ...q, task: 'temporal' as const })).toBe(false);
    expect(f.isDuplicate({ ...q, question: 'Which river crosses the city where Ada was born?', answer: 'Tiber' })).toBe(false);
    expect(checkLength(950, 1000)).toBeNull();
    expect(checkLength(949, 1000)).toBe('context-too-short');
    expect(checkLength(1051, 1000)).toBe('context-too-long');
  });

  it('generates worlds reproducibly and checks its options', () => {
    const a = generateWorld({ seed: 5, people: 6, cities: 3, countries: 2, organizations: 2 });
    const b = generateWorld({ seed: 5, people: 6, cities: 3, countries: 2, organizations: 2 });
    expect(a).toEqual(b);
    expect(new Set(a.entities.map((e) => e.name)).size).toBe(a.entities.length);
    expect(() => generateWorld({ seed: 1, people: 1 })).toThrow(/people/);
  });
});
