import type Database from 'better-sqlite3';
import { expect } from 'vitest';
import type { SynthQuestion } from '../../src/synth/types.js';
import { parseQuantity } from '../../src/synth/extract.js';

/**
 * Independent re-derivation of every answer, written without the composers: evidence against the stored
 * documents, numbers recomputed from SQL rows fetched one by one, paths re-walked with SQL over the fact
 * tables, lists and dialogue turns recounted from the context text itself.
 */

const norm = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();

function docText(db: Database.Database, id: string): string {
  const r = db.prepare('SELECT text FROM documents WHERE id = ?').get(id) as { text: string } | undefined;
  if (!r) throw new Error(`no document ${id}`);
  return r.text;
}

function valueAt(q: SynthQuestion, o: { start: number; end: number }): number {
  const written = q.context.slice(o.start, o.end);
  return parseQuantity(written) ?? Number(written.replace(/[^\d.-]/g, ''));
}

function round4(x: number): number {
  return Number.isInteger(x) ? x : Math.round(x * 1e4) / 1e4;
}

/** Targets of one step, found with SQL. */
function step(db: Database.Database, from: number, rel: { relation: string; inverse: boolean; kind: string }): number[] {
  if (rel.kind === 'mention') {
    const docs = db.prepare('SELECT DISTINCT doc FROM mentions WHERE entity = ?').all(from) as Array<{ doc: string }>;
    return docs.map((d) => (db.prepare("SELECT id FROM entities WHERE key = 'doc:' || ?").get(d.doc) as { id: number }).id);
  }
  const sql = rel.inverse ? 'SELECT DISTINCT subject AS t FROM facts WHERE object = ? AND cluster = ?' : 'SELECT DISTINCT object AS t FROM facts WHERE subject = ? AND cluster = ?';
  return (db.prepare(sql).all(from, rel.relation) as Array<{ t: number }>).map((r) => r.t);
}

export function verifyQuestion(q: SynthQuestion, db: Database.Database, target: number): void {
  // Length within ±5% of the target.
  expect(q.tokens).toBeGreaterThanOrEqual(target * 0.95);
  expect(q.tokens).toBeLessThanOrEqual(target * 1.05);
  // Evidence spans quote the source documents exactly.
  const sources = q.meta.source_spans as Array<{ doc: string; start: number; end: number }>;
  expect(sources.length).toBe(q.evidence.length);
  q.evidence.forEach((e, i) => {
    const s = sources[i]!;
    expect(e.doc).toBe(s.doc);
    expect(q.context.slice(e.start, e.end)).toBe(docText(db, s.doc).slice(s.start, s.end));
  });
  const evidenceText = q.evidence.map((e) => q.context.slice(e.start, e.end)).join('\n');

  switch (q.task) {
    case 'multihop':
    case 'multiple-choice': {
      const path = q.meta.path as string[];
      const rels = q.meta.relations as Array<{ relation: string; inverse: boolean; kind: string }> | undefined;
      const final = q.task === 'multihop' ? String(q.answer) : q.options!['ABCD'.indexOf(String(q.answer))]!;
      if (q.task === 'multiple-choice') expect(final).toBe(q.meta.correct);
      expect(path[path.length - 1]).toBe(final);
      expect(norm(evidenceText)).toContain(norm(final));
      if (rels) {
        // Re-walk: from the start entity each step must have exactly one target, named as the path says.
        const startRow = db.prepare("SELECT id FROM entities WHERE name = ? AND type != 'document'").get(path[0]) as { id: number };
        let cur = startRow.id;
        rels.forEach((r, i) => {
          const next = step(db, cur, r);
          expect(next.length, `step ${i + 1} of ${q.id} must be unique`).toBe(1);
          const name = (db.prepare('SELECT name FROM entities WHERE id = ?').get(next[0]) as { name: string }).name;
          expect(name).toBe(path[i + 1]);
          cur = next[0]!;
        });
        // A start named by a number: that number belongs to the start entity and to no other.
        const hidden = q.meta.start_named_by as { attribute: string; value: number } | undefined;
        if (hidden) {
          const owners = db.prepare('SELECT DISTINCT subject FROM numeric_facts WHERE attribute = ? AND value = ? AND subject IS NOT NULL').all(hidden.attribute, hidden.value) as Array<{ subject: number }>;
          expect(owners.map((o) => o.subject)).toEqual([startRow.id]);
          expect(q.question).not.toContain(path[0]);
        }
        expect(rels.length + (hidden ? 1 : 0)).toBe(q.hops);
      }
      if (q.task === 'multihop') expect(norm(q.question)).not.toContain(norm(String(q.answer)));
      break;
    }
    case 'numerical': {
      const ops = q.meta.operands as Array<{ fact: number; value: number; start: number; end: number }>;
      // Second path: each operand's row fetched alone, and the number read back from the context.
      const values = ops.map((o) => {
        const row = db.prepare('SELECT value FROM numeric_facts WHERE id = ?').get(o.fact) as { value: number };
        expect(valueAt(q, o)).toBeCloseTo(row.value, 6);
        return row.value;
      });
      const op = q.meta.op as string;
      const expected =
        op === 'sum' ? values.reduce((a, b) => a + b, 0)
        : op === 'average' ? values.reduce((a, b) => a + b, 0) / values.length
        : op === 'max' ? Math.max(...values)
        : op === 'min' ? Math.min(...values)
        : op === 'count' ? values.filter((v) => v > (q.meta.threshold as number)).length
        : op === 'difference' ? values[0]! - values[1]!
        : values[0]! / values[1]!;
      expect(Number(q.answer)).toBeCloseTo(round4(expected), 6);
      break;
    }
    case 'temporal':
    case 'comparison': {
      const ops = q.meta.operands as Array<{ start: number; end: number }>;
      expect(ops.length).toBe(2);
      const [a, b] = ops.map((o) => valueAt(q, o)) as [number, number];
      if (q.meta.kind === 'order') expect(q.answer).toBe(q.task === 'temporal' ? (a < b ? 'A' : 'B') : a > b ? 'A' : 'B');
      else expect(Number(q.answer)).toBeCloseTo(round4(Math.abs(a - b)), 6);
      break;
    }
    case 'aggregation': {
      const answer = q.answer as string[];
      expect(Array.isArray(answer)).toBe(true);
      for (const item of answer) expect(q.context).toContain(item);
      const entity = q.meta.entity as string | undefined;
      if (entity) {
        // The context's layout: each block is made only of pieces of the document it names.
        const blocks = q.meta.blocks as Array<{ doc: string; start: number; end: number }>;
        const titleOf = new Map<string, string>();
        for (const blk of blocks) {
          const text = docText(db, blk.doc);
          for (const piece of q.context.slice(blk.start, blk.end).split('\n[…]\n')) expect(text.includes(piece)).toBe(true);
          titleOf.set(blk.doc, (db.prepare('SELECT title FROM documents WHERE id = ?').get(blk.doc) as { title: string }).title);
        }
        // Every place the name occurs in the context (whole words) lies in a document whose title is listed.
        const titles = new Set<string>();
        const re = new RegExp(`(?<![\\p{L}\\p{N}])${entity.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}])`, 'giu');
        for (const m of q.context.matchAll(re)) {
          const owner = blocks.find((blk) => blk.start <= m.index && m.index < blk.end);
          expect(owner, `occurrence of "${entity}" at ${m.index} outside every block`).toBeDefined();
          titles.add(titleOf.get(owner!.doc)!);
        }
        expect([...titles].sort()).toEqual(answer.slice().sort());
      }
      break;
    }
    case 'dialogue-memory': {
      const request = q.meta.request as string;
      const index = q.meta.index as number;
      const turns = q.context.split('\n\n').map((t) => /^User: (.*)\nAssistant: ([\s\S]*)$/.exec(t));
      const asked = turns.filter((t) => t && t[1] === request);
      expect(asked.length).toBe(q.meta.planted);
      expect(asked[index - 1]![2]).toBe(q.answer);
      break;
    }
  }
}
