/** Shapes shared by the extractors, the knowledge graph and the composers. */

/** A character span in a source document's `text`. */
export interface Span {
  doc: string;
  start: number;
  end: number;
}

export interface EntityRef {
  name: string;
  type: string;
  /** Merge key; defaults to the normalized name (documents use their id so equal titles stay apart). */
  key?: string;
}

/** An entity mention with its exact span (`text.slice(start, end) === surface`). */
export interface Mention extends EntityRef {
  span: Span;
}

/** Subject–relation–object between two entities; `span` is the evidence (usually the sentence). */
export interface RelationFact {
  subject: EntityRef;
  object: EntityRef;
  /** Normalized relation key, e.g. `sign treaty with`. */
  relation: string;
  /** The words as written, e.g. `signed a treaty with`. */
  surface: string;
  span: Span;
}

/**
 * A numeric attribute: `value` (in `unit`) of `attribute` for a subject. The subject is an entity, or for a
 * number found in running text, a cloze `label` (the sentence with the number blanked). `valueSpan` is where
 * the number is written.
 */
export interface NumericFact {
  subject?: EntityRef;
  label: string;
  attribute: string;
  value: number;
  unit: string;
  span: Span;
  valueSpan: Span;
}

export interface Extraction {
  doc: string;
  mentions: Mention[];
  relations: RelationFact[];
  numbers: NumericFact[];
}

/** Task ids, fixed. */
export const TASKS = ['multihop', 'temporal', 'comparison', 'numerical', 'aggregation', 'multiple-choice', 'dialogue-memory'] as const;
export type Task = (typeof TASKS)[number];

/** Evidence as written to the output: offsets into the question's `context`, and the source document id. */
export interface EvidenceSpan {
  doc: string;
  start: number;
  end: number;
}

/** One output line. See docs/synth.md for the schema. */
export interface SynthQuestion {
  id: string;
  task: Task;
  question: string;
  answer: string | number | string[];
  aliases?: string[];
  options?: string[];
  context: string;
  evidence: EvidenceSpan[];
  hops: number;
  tokens: number;
  seed: string;
  meta: Record<string, unknown>;
}
