/** Small text helpers shared by the extractors, composers and checks. */

/** Lower case, punctuation folded to spaces, whitespace collapsed: the key used to compare names and answers. */
export function normalize(s: string): string {
  return s
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[’‘]/g, "'")
    .replace(/'s\b/g, '')
    .replace(/[^\p{L}\p{M}\p{N}%$.]+/gu, ' ')
    .replace(/\.(?!\d)/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

const wordChar = /[\p{L}\p{M}\p{N}]/u;

/** Whole-word, case-insensitive search for `needle` in `hay`; returns the first offset or -1. */
export function findWord(hay: string, needle: string, from = 0): number {
  return findWordLower(hay.toLowerCase(), needle, from);
}

/** `findWord` on a haystack already lower-cased (callers that search one text many times keep it so). */
export function findWordLower(h: string, needle: string, from = 0): number {
  if (needle.length === 0) return -1;
  const n = needle.toLowerCase();
  let i = h.indexOf(n, from);
  while (i >= 0) {
    const before = i > 0 ? h[i - 1] : '';
    const after = h[i + n.length] ?? '';
    if (!(before && wordChar.test(before)) && !(after && wordChar.test(after))) return i;
    i = h.indexOf(n, i + 1);
  }
  return -1;
}

export function containsWord(hay: string, needle: string): boolean {
  return findWord(hay, needle) >= 0;
}

/** Sentence boundaries by punctuation: [start, end) pairs covering `text` from `from` to `to`, trimmed. */
export function splitSentences(text: string, from = 0, to = text.length): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const re = /[.!?]+["'”’)\]]*\s+(?=["'“‘(\[]?[\p{Lu}\p{N}])|\n\s*\n/gu;
  re.lastIndex = from;
  let start = from;
  for (let m = re.exec(text); m && m.index < to; m = re.exec(text)) {
    const end = m.index + m[0].trimEnd().length;
    pushTrimmed(text, start, end, out);
    start = m.index + m[0].length;
  }
  pushTrimmed(text, start, to, out);
  return out;
}

function pushTrimmed(text: string, start: number, end: number, out: Array<[number, number]>): void {
  while (start < end && /\s/.test(text[start] ?? '')) start++;
  while (end > start && /\s/.test(text[end - 1] ?? '')) end--;
  if (end > start) out.push([start, end]);
}

/** Word-set Jaccard similarity, for near-duplicate detection. */
export function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let inter = 0;
  for (const x of a) if (b.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

export function wordSet(s: string): Set<string> {
  return new Set(normalize(s).split(' ').filter((w) => w.length > 0));
}

/** Numbers written the way the composers write them: integers plain, others to at most 4 decimals. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return String(x);
  return String(Math.round(x * 1e4) / 1e4);
}
