import type { SourceDocument } from './documents.js';
import type { Rng } from './rng.js';
import type { TokenCounter } from './tokenizer.js';
import type { EvidenceSpan, Span } from './types.js';
import { findWordLower } from './text.js';

/**
 * Contexts: the evidence documents (their head and the passages that hold the evidence) plus distractor
 * documents, hard negatives first, shuffled to a target length in tokens, with the evidence placed at a
 * recorded depth.
 */

export interface ContextRequest {
  evidence: Span[];
  targetTokens: number;
  /** Words no distractor may contain (they would add a second answer). */
  avoid: string[];
  /** Documents to draw distractors from first (they mention entities of the answer's type). */
  hardNegatives: string[];
  /** Where the first evidence block goes, 0 (start) to 1 (end); random when absent. */
  depth?: number;
}

export interface BuiltContext {
  context: string;
  tokens: number;
  /** One per requested evidence span, in order, as offsets into `context`. */
  evidence: EvidenceSpan[];
  /** Document ids in the order they appear. */
  docs: string[];
  /** Position of the first evidence character, as a fraction of the context length. */
  depth: number;
  /** Where each document's excerpt lies in `context` (its ranges joined by `[…]` lines). */
  blocks?: Array<{ doc: string; start: number; end: number }>;
}

interface Block {
  doc: string;
  ranges: Array<[number, number]>;
  tokens: number;
  evidence: boolean;
}

const RANGE_SEP = '\n[…]\n';
const BLOCK_SEP = '\n\n';
/** What a context holds besides quoted document text: the separators between excerpts and between ranges. */
export const CONTEXT_MARKUP = `${RANGE_SEP}${BLOCK_SEP}`;

function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = ranges.slice().sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 2) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

export class ContextBuilder {
  private readonly lowerTexts = new Map<string, string>();

  constructor(
    private readonly docs: Map<string, SourceDocument>,
    private readonly counter: TokenCounter,
  ) {}

  private docText(id: string): string {
    return this.docs.get(id)!.text;
  }

  private lowerText(id: string): string {
    let t = this.lowerTexts.get(id);
    if (t === undefined) {
      t = this.docText(id).toLowerCase();
      this.lowerTexts.set(id, t);
    }
    return t;
  }

  /** Build a context, or return why it cannot be built (`evidence-too-long`, `too-few-distractors`). */
  build(req: ContextRequest, rng: Rng): BuiltContext | { reject: string } {
    // 1. Evidence blocks: each evidence document's head plus every passage touching an evidence span.
    const byDoc = new Map<string, Array<[number, number]>>();
    for (const e of req.evidence) {
      const d = this.docs.get(e.doc);
      if (!d) return { reject: 'evidence-unknown-document' };
      const ranges = byDoc.get(e.doc) ?? [];
      const head = d.passages[0];
      if (head) ranges.push([head.start, head.end]);
      let covered = false;
      for (const p of d.passages) {
        if (p.end > e.start && p.start < e.end) {
          ranges.push([Math.min(p.start, e.start), Math.max(p.end, e.end)]);
          covered = true;
        }
      }
      if (!covered) ranges.push([e.start, e.end]);
      byDoc.set(e.doc, ranges);
    }
    const evidenceBlocks: Block[] = [...byDoc].map(([doc, ranges]) => {
      const merged = mergeRanges(ranges);
      return { doc, ranges: merged, tokens: this.rangeTokens(doc, merged), evidence: true };
    });
    const target = req.targetTokens;
    let used = evidenceBlocks.reduce((a, b) => a + b.tokens + 2, 0);
    if (used > target * 1.05) return { reject: 'evidence-too-long' };

    // 2. Distractors: hard negatives first, then the rest, each a run of passages from a random start.
    const excluded = new Set(byDoc.keys());
    const avoid = req.avoid.filter((w) => w.trim().length > 0);
    const usable = (id: string) => !excluded.has(id) && !avoid.some((w) => findWordLower(this.lowerText(id), w) >= 0);
    const hard = rng.shuffle(req.hardNegatives.filter((id) => this.docs.has(id)));
    const hardSet = new Set(hard);
    const rest = rng.shuffle([...this.docs.keys()].filter((id) => !hardSet.has(id)));
    const distractors: Block[] = [];
    for (const id of [...hard, ...rest]) {
      if (target - used < Math.max(8, target * 0.01)) break;
      if (!usable(id)) continue;
      excluded.add(id);
      const d = this.docs.get(id)!;
      const head = d.passages[0];
      if (!head) continue;
      const ranges: Array<[number, number]> = [[head.start, head.end]];
      let tokens = head.tokens + 2;
      if (used + tokens > target * 1.02) continue;
      const first = 1 + rng.int(Math.max(1, d.passages.length - 1));
      for (let k = first; k < d.passages.length; k++) {
        const p = d.passages[k]!;
        if (used + tokens + p.tokens + 2 > target) break;
        ranges.push([p.start, p.end]);
        tokens += p.tokens + 2;
      }
      const merged = mergeRanges(ranges);
      distractors.push({ doc: id, ranges: merged, tokens, evidence: false });
      used += tokens;
    }

    // 3. Order: distractors shuffled, evidence blocks inserted at the requested depth.
    const depth = req.depth ?? rng.next();
    const blocks = rng.shuffle(distractors);
    const at = Math.round(depth * blocks.length);
    blocks.splice(at, 0, ...rng.shuffle(evidenceBlocks));

    // 4. Render, mapping each evidence span to its place in the context.
    const parts: string[] = [];
    const placed = new Map<string, Array<{ src: [number, number]; at: number }>>();
    let length = 0;
    const push = (s: string) => {
      parts.push(s);
      length += s.length;
    };
    const layout: NonNullable<BuiltContext['blocks']> = [];
    blocks.forEach((b, bi) => {
      if (bi > 0) push(BLOCK_SEP);
      const blockStart = length;
      const text = this.docText(b.doc);
      b.ranges.forEach((r, ri) => {
        if (ri > 0) push(RANGE_SEP);
        if (b.evidence) placed.set(b.doc, [...(placed.get(b.doc) ?? []), { src: r, at: length }]);
        push(text.slice(r[0], r[1]));
      });
      layout.push({ doc: b.doc, start: blockStart, end: length });
    });
    const context = parts.join('');
    const evidence: EvidenceSpan[] = req.evidence.map((e) => {
      const r = placed.get(e.doc)!.find((p) => p.src[0] <= e.start && e.end <= p.src[1])!;
      const start = r.at + (e.start - r.src[0]);
      return { doc: e.doc, start, end: start + (e.end - e.start) };
    });
    const firstEvidence = Math.min(...evidence.map((e) => e.start));
    return {
      context,
      tokens: this.counter.count(context),
      evidence,
      docs: blocks.map((b) => b.doc),
      depth: context.length > 0 ? Math.round((firstEvidence / context.length) * 1000) / 1000 : 0,
      blocks: layout,
    };
  }

  private rangeTokens(doc: string, ranges: Array<[number, number]>): number {
    const d = this.docs.get(doc)!;
    let n = 0;
    for (const [a, b] of ranges) {
      let inPassages = 0;
      for (const p of d.passages) if (p.start >= a && p.end <= b) inPassages += p.tokens;
      n += inPassages > 0 ? inPassages : this.counter.count(d.text.slice(a, b));
    }
    return n + ranges.length * 3;
  }
}
