/**
 * Rule-based rewards for verifiable answers, as pure functions. Each returns a score in [0, 1].
 *
 * - `exactMatch`, `coverExactMatch`: after SQuAD-style normalization (lower case, no punctuation or articles,
 *   single spaces); cover = every gold token sequence appears in the prediction.
 * - `tokenF1`, `listF1`: token-multiset F1; list F1 over normalized items.
 * - `numericMatch`: relative tolerance (DocMath's 0.15% by default) with unit scaling (%, thousand/million/billion…).
 * - `extractChoice`, `extractBoxed`, `extractAnswer`: pull the final answer out of a reasoning trace.
 * - `similarityRatio`: Python difflib's SequenceMatcher ratio (MRCR's dense reward), same algorithm and junk rule.
 * - `withJudge`: ask an async LLM judge when the rule check fails (the paper's judge behind the rule).
 */

const ARTICLES = new Set(['a', 'an', 'the']);

/** Lower case, punctuation removed, articles dropped, whitespace collapsed. */
export function normalizeAnswer(text: string): string {
  return String(text)
    .toLowerCase()
    .normalize('NFKC')
    .replace(/[\p{P}\p{S}]/gu, ' ')
    .split(/\s+/)
    .filter((w) => w && !ARTICLES.has(w))
    .join(' ');
}

function golds(gold: string | readonly string[]): string[] {
  return (Array.isArray(gold) ? gold : [gold]).map(String);
}

/** 1 when the normalized prediction equals a normalized gold answer (or alias). */
export function exactMatch(prediction: string, gold: string | readonly string[]): number {
  const p = normalizeAnswer(prediction);
  return golds(gold).some((g) => normalizeAnswer(g) === p && p !== '') ? 1 : 0;
}

/** 1 when a normalized gold answer appears in the normalized prediction as whole words. */
export function coverExactMatch(prediction: string, gold: string | readonly string[]): number {
  const p = ` ${normalizeAnswer(prediction)} `;
  return golds(gold).some((g) => {
    const n = normalizeAnswer(g);
    return n !== '' && p.includes(` ${n} `);
  })
    ? 1
    : 0;
}

function f1(pred: string[], gold: string[]): number {
  if (pred.length === 0 || gold.length === 0) return pred.length === gold.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const g of gold) counts.set(g, (counts.get(g) ?? 0) + 1);
  let common = 0;
  for (const p of pred) {
    const c = counts.get(p) ?? 0;
    if (c > 0) {
      common++;
      counts.set(p, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / pred.length, recall = common / gold.length;
  return (2 * precision * recall) / (precision + recall);
}

/** SQuAD token F1 against the best gold answer. */
export function tokenF1(prediction: string, gold: string | readonly string[]): number {
  const p = normalizeAnswer(prediction).split(' ').filter(Boolean);
  return Math.max(0, ...golds(gold).map((g) => f1(p, normalizeAnswer(g).split(' ').filter(Boolean))));
}

/** Split a list answer on commas, semicolons, newlines, bullets and a final "and". */
export function splitList(text: string): string[] {
  return String(text)
    .split(/[,;\n]|\s+and\s+|^\s*[-*•]\s+/gim)
    .map((s) => normalizeAnswer(s.replace(/^\s*(?:[-*•]|\d+[.)])\s+/, '')))
    .filter(Boolean);
}

/** F1 between the sets of normalized list items. */
export function listF1(prediction: string | readonly string[], gold: string | readonly string[]): number {
  const p = [...new Set(Array.isArray(prediction) ? prediction.map(normalizeAnswer) : splitList(prediction as string))];
  const g = [...new Set(Array.isArray(gold) ? gold.map(normalizeAnswer) : splitList(gold as string))];
  return f1(p, g);
}

const SCALES: Record<string, number> = {
  thousand: 1e3, k: 1e3, million: 1e6, mn: 1e6, m: 1e6, mm: 1e6, billion: 1e9, bn: 1e9, b: 1e9, trillion: 1e12, tn: 1e12,
};

/** The numbers in a text, with their unit scale applied (percent → /100, "2.5 million" → 2.5e6). */
export function parseNumbers(text: string): number[] {
  const out: number[] = [];
  // No match starts at whitespace (one starting at the next character has the same groups), and the whitespace
  // around a currency sign is read one way only: `\s*[$€£¥]?\s*` tried every split of every run from every start,
  // cubic in a run's length (4000 spaces: 22 s).
  const re = /(?=\S)(\(?)([-−–]?)\s*(?:[$€£¥]\s*)?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:\s*[eE]([-+]?\d+))?\s*(%|percent\b|thousand\b|million\b|billion\b|trillion\b|bn\b|mn\b|tn\b|mm\b|k\b|m\b|b\b)?(\)?)/gi;
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

export interface NumericMatchOptions {
  /** Relative tolerance. Default 0.0015 (DocMath). */
  relTol?: number;
  /** Also accept answers off by a unit scale (×/÷ 100, 1e3, 1e6, 1e9): "25%" for 0.25, "3.2 million" for 3200000. Default true. */
  unitScaling?: boolean;
}

/** 1 when the prediction's final number equals a gold number within the tolerance. */
export function numericMatch(prediction: string | number, gold: string | number, opts: NumericMatchOptions = {}): number {
  const relTol = opts.relTol ?? 0.0015;
  const preds = typeof prediction === 'number' ? [prediction] : parseNumbers(prediction);
  const goldValues = typeof gold === 'number' ? [gold] : parseNumbers(gold);
  if (preds.length === 0 || goldValues.length === 0) return 0;
  const p = preds[preds.length - 1]!;
  const factors = opts.unitScaling === false ? [1] : [1, 100, 0.01, 1e3, 1e-3, 1e6, 1e-6, 1e9, 1e-9];
  const close = (a: number, b: number) => (b === 0 ? Math.abs(a) <= 1e-9 : Math.abs(a - b) <= relTol * Math.abs(b));
  return goldValues.some((g) => factors.some((f) => close(p * f, g))) ? 1 : 0;
}

/** The content of the last \boxed{…} (braces balanced), or null. */
export function extractBoxed(text: string): string | null {
  const s = String(text);
  const at = s.lastIndexOf('\\boxed');
  if (at < 0) return null;
  let i = s.indexOf('{', at);
  if (i < 0) return null;
  let depth = 0;
  const start = i + 1;
  for (; i < s.length; i++) {
    if (s[i] === '{') depth++;
    else if (s[i] === '}' && --depth === 0) return s.slice(start, i).trim();
  }
  return null;
}

/** The final answer of a reasoning trace: after the thinking block, \boxed{}, else the last "Answer:" line, else the text. */
export function extractAnswer(text: string): string {
  let s = String(text);
  const think = s.lastIndexOf('</think>');
  if (think >= 0) s = s.slice(think + '</think>'.length);
  const boxed = extractBoxed(s);
  if (boxed !== null) return boxed;
  // `\s*(?:is\s*)?`, not `\s*(?:is)?\s*`: one way to read a run of whitespace (else quadratic in its length)
  const lines = [...s.matchAll(/(?:final answer|answer)\s*(?:is\s*)?[:：]\s*(.+)/gi)];
  if (lines.length) return lines[lines.length - 1]![1]!.trim().replace(/[.。]\s*$/, '');
  return s.trim();
}

/** The chosen option letter (A–J) of a multiple-choice answer, or null. */
export function extractChoice(text: string, letters = 'ABCDEFGHIJ'): string | null {
  const s = extractAnswer(text);
  const set = `[${letters}]`;
  const patterns = [
    // each run of whitespace read one way (`\s*(?:is|:)?\s*[(\[]?\s*` was cubic in its length: 4000 spaces, 19 s)
    new RegExp(`(?:answer|option|choice)\\s*(?:(?:is|:)\\s*)?(?:[(\\[]\\s*)?(${set})\\b`, 'gi'),
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

/** 1 when the extracted option letter is the gold one. */
export function choiceMatch(prediction: string, gold: string): number {
  const c = extractChoice(prediction);
  return c !== null && c === String(gold).trim().toUpperCase() ? 1 : 0;
}

/**
 * Python's difflib.SequenceMatcher(None, a, b).ratio(): 2·M / (|a| + |b|), M the characters in matching blocks
 * found by recursive longest-match, with difflib's automatic junk rule (when |b| ≥ 200, characters occurring more
 * than 1% of the time in b are not used to start matches).
 */
export function similarityRatio(a: string, b: string): number {
  const A = Array.from(String(a)), B = Array.from(String(b));
  const total = A.length + B.length;
  if (total === 0) return 1;
  // b2j: positions of each character in b, minus the popular ones
  const b2j = new Map<string, number[]>();
  B.forEach((ch, j) => (b2j.get(ch) ?? b2j.set(ch, []).get(ch)!).push(j));
  if (B.length >= 200) {
    const limit = Math.floor(B.length / 100) + 1;
    for (const [ch, idx] of [...b2j]) if (idx.length > limit) b2j.delete(ch);
  }
  const longest = (alo: number, ahi: number, blo: number, bhi: number): [number, number, number] => {
    let besti = alo, bestj = blo, bestsize = 0;
    let j2len = new Map<number, number>();
    for (let i = alo; i < ahi; i++) {
      const next = new Map<number, number>();
      for (const j of b2j.get(A[i]!) ?? []) {
        if (j < blo) continue;
        if (j >= bhi) break;
        const k = (j2len.get(j - 1) ?? 0) + 1;
        next.set(j, k);
        if (k > bestsize) {
          besti = i - k + 1;
          bestj = j - k + 1;
          bestsize = k;
        }
      }
      j2len = next;
    }
    // extend by equal characters on both sides: popular characters are not junk, only left out of b2j
    while (besti > alo && bestj > blo && A[besti - 1] === B[bestj - 1]) {
      besti--;
      bestj--;
      bestsize++;
    }
    while (besti + bestsize < ahi && bestj + bestsize < bhi && A[besti + bestsize] === B[bestj + bestsize]) bestsize++;
    return [besti, bestj, bestsize];
  };
  let matches = 0;
  const queue: [number, number, number, number][] = [[0, A.length, 0, B.length]];
  while (queue.length) {
    const [alo, ahi, blo, bhi] = queue.pop()!;
    const [i, j, k] = longest(alo, ahi, blo, bhi);
    if (k) {
      matches += k;
      if (alo < i && blo < j) queue.push([alo, i, blo, j]);
      if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
    }
  }
  return (2 * matches) / total;
}

/** An LLM judge: given the question, the reference answer and the prediction, a score in [0, 1]. */
export type Judge = (input: { question: string; answer: string; prediction: string }) => Promise<number>;

/** The rule score when it is 1, else the judge's (clamped to [0, 1]); the judge is not asked when the rule passes. */
export async function withJudge(ruleScore: number, judge: Judge | undefined, input: { question: string; answer: string; prediction: string }): Promise<number> {
  if (ruleScore >= 1 || !judge) return ruleScore;
  const verdict = await judge(input);
  if (typeof verdict !== 'number' || Number.isNaN(verdict)) throw new TypeError('withJudge: the judge must resolve to a number');
  return Math.max(ruleScore, Math.min(1, Math.max(0, verdict)));
}
