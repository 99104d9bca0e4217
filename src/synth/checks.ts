import type { SourceDocument } from './documents.js';
import type { SynthQuestion } from './types.js';
import { containsWord, normalize, wordSet, jaccard } from './text.js';
import { parseQuantity } from './extract.js';

/**
 * Checks every question must pass before it is written. Each returns null (pass) or a rejection reason.
 */

/** Every evidence span quotes its source exactly: `context[start,end)` equals the source document's text there. */
export function checkEvidence(q: SynthQuestion, docs: Map<string, SourceDocument>): string | null {
  const sources = q.meta.source_spans as Array<{ doc: string; start: number; end: number }> | undefined;
  if (!sources || sources.length !== q.evidence.length) return 'evidence-missing';
  for (let i = 0; i < q.evidence.length; i++) {
    const e = q.evidence[i]!;
    const s = sources[i]!;
    const d = docs.get(s.doc);
    if (!d || e.start < 0 || e.end > q.context.length || e.end <= e.start) return 'evidence-out-of-context';
    if (q.context.slice(e.start, e.end) !== d.text.slice(s.start, s.end)) return 'evidence-not-in-context';
  }
  return null;
}

/** The answer is written in the evidence (strings, list items, the correct option) or computed from numbers that are. */
export function checkSupported(q: SynthQuestion): string | null {
  const spans = q.evidence.map((e) => q.context.slice(e.start, e.end));
  const inEvidence = (s: string) => spans.some((t) => containsWord(t, s) || t.includes(s));
  switch (q.task) {
    case 'multihop':
      return inEvidence(String(q.answer)) ? null : 'answer-not-in-evidence';
    case 'multiple-choice': {
      const idx = 'ABCDEF'.indexOf(String(q.answer));
      const opt = q.options?.[idx];
      return opt !== undefined && inEvidence(opt) ? null : 'answer-not-in-evidence';
    }
    case 'aggregation':
      return Array.isArray(q.answer) && q.answer.every((a) => inEvidence(a)) ? null : 'answer-not-in-evidence';
    case 'dialogue-memory':
      return spans.includes(String(q.answer)) ? null : 'answer-not-in-evidence';
    default: {
      const ops = q.meta.operands as Array<{ value: number; start: number; end: number }> | undefined;
      if (!ops || ops.length === 0) return 'operands-missing';
      for (const o of ops) {
        const written = q.context.slice(o.start, o.end);
        const v = parseQuantity(written) ?? Number(written.replace(/[^\d.-]/g, ''));
        if (Math.abs(v - o.value) > 1e-9 * Math.max(1, Math.abs(o.value))) return 'operand-not-in-context';
        if (!q.evidence.some((e) => e.start <= o.start && o.end <= e.end)) return 'operand-outside-evidence';
      }
      return null;
    }
  }
}

/** Tasks that name their candidates by design may contain the answer; the others may not. */
export function checkLeak(q: SynthQuestion): string | null {
  if (q.task === 'comparison' || q.task === 'temporal' || q.task === 'multiple-choice') return null;
  const answers = Array.isArray(q.answer) ? q.answer : [String(q.answer), ...(q.aliases ?? [])];
  if (q.task === 'numerical') return null; // a number may coincide with an operand's label; the work is the arithmetic
  return answers.some((a) => a.length > 0 && containsWord(q.question, a)) ? 'answer-in-question' : null;
}

export function checkLength(tokens: number, target: number): string | null {
  if (tokens < target * 0.95) return 'context-too-short';
  if (tokens > target * 1.05) return 'context-too-long';
  return null;
}

/**
 * Near-duplicate filter over question + answer words (Jaccard ≥ 0.9 within a task). Comparing each question with
 * every kept one was quadratic (8k questions: 9 s), so kept word sets are indexed by their prefix in one fixed word
 * order (prefix filtering): two sets with Jaccard ≥ t share at least ceil(t · the larger size) words, so the first
 * n − ceil(t·n) + 1 words of each (n its size) share one. Only sets met through the index are compared, with the same
 * jaccard() test as before; the prefix uses t a hair below 0.9, so rounding can only add candidates, never lose one.
 */
export class DuplicateFilter {
  private readonly byTask = new Map<string, { sets: Array<Set<string>>; index: Map<string, number[]>; empty: boolean }>();
  private readonly exact = new Set<string>();

  key(q: Pick<SynthQuestion, 'task' | 'question' | 'answer'>): Set<string> {
    return wordSet(`${q.question} ${JSON.stringify(q.answer)}`);
  }

  isDuplicate(q: Pick<SynthQuestion, 'task' | 'question' | 'answer'>): boolean {
    const exactKey = `${q.task}\u0000${normalize(q.question)}\u0000${JSON.stringify(q.answer)}`;
    if (this.exact.has(exactKey)) return true;
    const k = this.key(q);
    const task = this.byTask.get(q.task);
    if (!task) return false;
    if (k.size === 0) return task.empty; // jaccard(∅, ∅) = 1, and 0 against any other set
    const tried = new Set<number>();
    for (const w of prefix(k)) {
      for (const id of task.index.get(w) ?? []) {
        if (tried.has(id)) continue;
        tried.add(id);
        if (jaccard(task.sets[id]!, k) >= 0.9) return true;
      }
    }
    return false;
  }

  add(q: Pick<SynthQuestion, 'task' | 'question' | 'answer'>): void {
    this.exact.add(`${q.task}\u0000${normalize(q.question)}\u0000${JSON.stringify(q.answer)}`);
    let task = this.byTask.get(q.task);
    if (!task) this.byTask.set(q.task, (task = { sets: [], index: new Map(), empty: false }));
    const k = this.key(q);
    if (k.size === 0) task.empty = true;
    const id = task.sets.push(k) - 1;
    for (const w of prefix(k)) {
      const ids = task.index.get(w);
      if (ids) ids.push(id);
      else task.index.set(w, [id]);
    }
  }
}

/** FNV-1a of a word: the fixed order of prefix filtering (hash order spreads common words over the positions). */
function wordHash(w: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The first n − ceil(t·n) + 1 words of a set in hash order (t = 0.9 less a margin for rounding). */
function prefix(set: ReadonlySet<string>): string[] {
  const words = [...set].sort((a, b) => wordHash(a) - wordHash(b) || (a < b ? -1 : a > b ? 1 : 0));
  return words.slice(0, words.length - Math.ceil((0.9 - 1e-9) * words.length) + 1);
}
