import { normalize } from './text.js';

/** Scores for checking a model's answer against a question's (also the rewards the RL stage uses). */

/** Longest-matching-block ratio in the manner of Python's difflib.SequenceMatcher (no junk heuristic): 2·M / (|a|+|b|). */
export function sequenceRatio(a: string, b: string): number {
  if (a.length + b.length === 0) return 1;
  return (2 * matchingChars(a, 0, a.length, b, 0, b.length)) / (a.length + b.length);
}

function matchingChars(a: string, alo: number, ahi: number, b: string, blo: number, bhi: number): number {
  // Longest common substring (one DP row at a time), then the same on the pieces left and right of it.
  if (alo >= ahi || blo >= bhi) return 0;
  const m = bhi - blo;
  let prev = new Int32Array(m + 1);
  let cur = new Int32Array(m + 1);
  let best = 0;
  let bi = alo;
  let bj = blo;
  for (let i = alo; i < ahi; i++) {
    for (let j = blo; j < bhi; j++) {
      const k = j - blo + 1;
      const v = a.charCodeAt(i) === b.charCodeAt(j) ? prev[k - 1]! + 1 : 0;
      cur[k] = v;
      if (v > best) {
        best = v;
        bi = i - v + 1;
        bj = j - v + 1;
      }
    }
    [prev, cur] = [cur, prev];
    cur.fill(0);
  }
  if (best === 0) return 0;
  return best + matchingChars(a, alo, bi, b, blo, bj) + matchingChars(a, bi + best, ahi, b, bj + best, bhi);
}

/** F1 between two lists compared by normalized item. */
export function listF1(predicted: readonly string[], gold: readonly string[]): number {
  const p = new Set(predicted.map(normalize));
  const g = new Set(gold.map(normalize));
  if (p.size === 0 && g.size === 0) return 1;
  let tp = 0;
  for (const x of p) if (g.has(x)) tp++;
  if (tp === 0) return 0;
  const precision = tp / p.size;
  const recall = tp / g.size;
  return (2 * precision * recall) / (precision + recall);
}

/** Is `predicted` right for `gold` (with `aliases`)? Numbers within 1e-4 relative, lists by F1 = 1, text by normalized equality. */
export function isCorrect(predicted: unknown, gold: string | number | string[], aliases: readonly string[] = []): boolean {
  if (typeof gold === 'number') {
    const v = typeof predicted === 'number' ? predicted : Number(String(predicted).replace(/[^\d.eE-]/g, ''));
    return Number.isFinite(v) && Math.abs(v - gold) <= 1e-4 * Math.max(1, Math.abs(gold));
  }
  if (Array.isArray(gold)) {
    const list = Array.isArray(predicted) ? predicted.map(String) : String(predicted).split(/[,;\n]/);
    return listF1(list, gold) >= 0.999;
  }
  const p = normalize(String(predicted));
  return [gold, ...aliases].some((g) => normalize(g) === p);
}
