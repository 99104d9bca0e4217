import type { SourceDocument } from './documents.js';
import type { KnowledgeGraph } from './kg.js';
import type { Span } from './types.js';
import { containsWord, normalize } from './text.js';

/** In-memory view of the knowledge graph that the composers walk. */

export interface GEntity {
  id: number;
  name: string;
  type: string;
  aliases: string[];
  /** Document id → first span there where the entity is written by its own name (not an alias). */
  mentions: Map<string, Span>;
  /** Every document that mentions the entity by any of its names. */
  anyDocs: Set<string>;
}

/** A directed step from one entity to another, with the words that describe it and its evidence. */
export interface GEdge {
  from: number;
  to: number;
  /** Relation key; edges that share (from, relation, inverse) are alternatives of one another. */
  relation: string;
  inverse: boolean;
  kind: 'fact' | 'field' | 'mention';
  surface: string;
  span: Span;
}

export interface GNumber {
  id: number;
  subject: number | null;
  label: string;
  attribute: string;
  value: number;
  unit: string;
  span: Span;
  valueSpan: Span;
}

export interface RelationTemplate {
  forward: string;
  inverse: string;
}

const TYPE_NOUNS: Record<string, string> = { person: 'person', place: 'place', organization: 'organization', name: 'entity', document: 'document', row: 'row' };
export const typeNoun = (t: string): string => TYPE_NOUNS[t] ?? t;

/**
 * A name specific enough to identify what mentions it: several words, or one word of a known type
 * (a bare capitalized word of unknown type is often just a sentence opening).
 */
export function isDistinctive(e: { name: string; type: string }): boolean {
  return e.name.length >= 4 && (e.name.includes(' ') || e.type !== 'name');
}

export class Graph {
  readonly docs = new Map<string, SourceDocument>();
  readonly entities = new Map<number, GEntity>();
  readonly out = new Map<number, GEdge[]>();
  readonly numbers: GNumber[] = [];
  readonly byType = new Map<string, number[]>();
  readonly docEntity = new Map<string, number>();
  readonly templates = new Map<string, RelationTemplate>();
  /** True for synthetic worlds: every true fact is in the graph, so "list every …" answers are complete. */
  complete = false;

  static load(kg: KnowledgeGraph): Graph {
    const g = new Graph();
    for (const d of kg.documents()) g.docs.set(d.id, d);
    const db = kg.db;
    for (const r of db.prepare('SELECT id, key, name, type FROM entities ORDER BY id').all() as Array<{ id: number; key: string; name: string; type: string }>) {
      g.entities.set(r.id, { id: r.id, name: r.name, type: r.type, aliases: [], mentions: new Map(), anyDocs: new Set() });
      if (r.key.startsWith('doc:')) g.docEntity.set(r.key.slice(4), r.id);
      // lists grow in place (a copy per entity was quadratic: 25k entities of a type took 5 s, 100k 87 s)
      (g.byType.get(r.type) ?? g.byType.set(r.type, []).get(r.type)!).push(r.id);
    }
    for (const r of db.prepare('SELECT entity, alias FROM aliases ORDER BY entity, alias').all() as Array<{ entity: number; alias: string }>) {
      const e = g.entities.get(r.entity);
      if (e && r.alias !== e.name) e.aliases.push(r.alias);
    }
    for (const r of db.prepare('SELECT entity, doc, start, end FROM mentions ORDER BY entity, doc, start').all() as Array<{ entity: number; doc: string; start: number; end: number }>) {
      const e = g.entities.get(r.entity);
      if (!e) continue;
      e.anyDocs.add(r.doc);
      const surface = g.docs.get(r.doc)?.text.slice(r.start, r.end) ?? '';
      if (!e.mentions.has(r.doc) && normalize(surface) === normalize(e.name)) e.mentions.set(r.doc, { doc: r.doc, start: r.start, end: r.end });
    }
    for (const r of db.prepare('SELECT relation, forward, inverse FROM relation_templates').all() as Array<{ relation: string; forward: string; inverse: string }>) {
      g.templates.set(r.relation, { forward: r.forward, inverse: r.inverse });
    }
    const facts = db.prepare('SELECT subject, relation, cluster, surface, object, doc, start, end FROM facts ORDER BY id').all() as Array<{ subject: number; relation: string; cluster: string; surface: string; object: number; doc: string; start: number; end: number }>;
    for (const f of facts) {
      const subj = g.entities.get(f.subject);
      const obj = g.entities.get(f.object);
      if (!subj || !obj) continue;
      const kind = subj.type === 'document' ? 'field' : 'fact';
      const span = { doc: f.doc, start: f.start, end: f.end };
      // A step is usable only where its evidence writes both ends by their own names: a fact reached through
      // an alias (a surname folded into a full name) may be about someone else of that name.
      const evidence = g.docs.get(f.doc)?.text.slice(f.start, f.end) ?? '';
      if ((kind === 'fact' && !containsWord(evidence, subj.name)) || !containsWord(evidence, obj.name)) continue;
      g.addEdge({ from: f.subject, to: f.object, relation: f.cluster, inverse: false, kind, surface: f.surface, span });
      g.addEdge({ from: f.object, to: f.subject, relation: f.cluster, inverse: true, kind, surface: f.surface, span });
    }
    // An entity named in exactly one document leads to that document.
    for (const e of g.entities.values()) {
      if (e.type === 'document' || e.anyDocs.size !== 1 || e.mentions.size !== 1 || !isDistinctive(e)) continue;
      const [doc, span] = [...e.mentions][0]!;
      const target = g.docEntity.get(doc);
      if (target !== undefined) g.addEdge({ from: e.id, to: target, relation: 'mentioned in', inverse: false, kind: 'mention', surface: 'mentions', span });
    }
    for (const r of db.prepare('SELECT * FROM numeric_facts ORDER BY id').all() as Array<Record<string, number | string | null>>) {
      g.numbers.push({
        id: Number(r.id),
        subject: r.subject === null ? null : Number(r.subject),
        label: String(r.label),
        attribute: String(r.attribute),
        value: Number(r.value),
        unit: String(r.unit),
        span: { doc: String(r.doc), start: Number(r.start), end: Number(r.end) },
        valueSpan: { doc: String(r.doc), start: Number(r.vstart), end: Number(r.vend) },
      });
    }
    const info = kg.stageInfo<{ complete?: boolean }>('world');
    g.complete = info?.complete === true;
    return g;
  }

  private addEdge(e: GEdge): void {
    const list = this.out.get(e.from);
    if (list) list.push(e);
    else this.out.set(e.from, [e]);
  }

  entity(id: number): GEntity {
    const e = this.entities.get(id);
    if (!e) throw new Error(`graph: no entity ${id}`);
    return e;
  }

  /** Edges from `id` whose (relation, direction) has exactly one distinct target: steps with a unique answer. */
  functionalEdges(id: number): GEdge[] {
    const groups = new Map<string, GEdge[]>();
    for (const e of this.out.get(id) ?? []) {
      const k = `${e.relation}\u0000${e.inverse}`;
      (groups.get(k) ?? groups.set(k, []).get(k)!).push(e);
    }
    const outEdges: GEdge[] = [];
    for (const list of groups.values()) if (new Set(list.map((e) => e.to)).size === 1) outEdges.push(list[0]!);
    return outEdges;
  }

  /** Noun phrase for the entity reached by `edge` from an entity described as `d`. */
  describe(edge: GEdge, d: string): string {
    const t = this.templates.get(edge.relation);
    if (t) return (edge.inverse ? t.inverse : t.forward).replace('{D}', d);
    const toType = typeNoun(this.entity(edge.to).type);
    switch (edge.kind) {
      case 'mention':
        return `the document that mentions ${d}`;
      case 'field':
        return edge.inverse ? `the document whose ${edge.relation} is ${d}` : `the ${edge.relation} of ${d}`;
      default:
        return edge.inverse ? `the ${toType} that ${edge.surface} ${d}` : `the ${toType} that ${d} ${edge.surface}`;
    }
  }

  /** Every name an entity goes by. */
  names(id: number): string[] {
    const e = this.entity(id);
    return [e.name, ...e.aliases];
  }
}
