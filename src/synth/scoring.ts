import { normalize } from './text.js';

/** Scores for checking a model's answer against a question's (also the rewards the RL stage uses). */

/** Python difflib's SequenceMatcher ratio, the dense reward of dialogue-memory questions (one implementation, shared with the RL rewards). */
export { similarityRatio as sequenceRatio } from '../rl/rewards.js';

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
