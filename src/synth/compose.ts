import type { GEdge, GNumber, Graph } from './graph.js';
import { isDistinctive, typeNoun } from './graph.js';
import type { Rng } from './rng.js';
import type { Span, Task } from './types.js';
import { formatNumber, normalize, splitSentences } from './text.js';
import type Database from 'better-sqlite3';

/**
 * Composers: one per task. Each turns the graph into a draft question whose answer is known by construction,
 * with the evidence spans that support it and the words distractors must not contain. Contexts and checks
 * come after (pipeline.ts). A composer returns `{ reject }` with a reason when this attempt finds nothing.
 */

export interface Draft {
  task: Task;
  question: string;
  answer: string | number | string[];
  aliases?: string[];
  options?: string[];
  /** Source spans, in the order the reasoning uses them. */
  evidence: Span[];
  hops: number;
  avoid: string[];
  /** Entity type whose documents make hard negatives. */
  hardNegativeType?: string;
  meta: Record<string, unknown>;
}

export type ComposeResult = Draft | { reject: string };

export interface ComposeEnv {
  graph: Graph;
  db: Database.Database;
  rng: Rng;
}

const LETTERS = ['A', 'B', 'C', 'D', 'E', 'F'];
const ORDINALS = ['first', 'second', 'third', 'fourth', 'fifth', 'sixth'];

/** Title line of a document: the span that names it. */
function titleSpan(g: Graph, doc: string): Span {
  const d = g.docs.get(doc)!;
  const end = d.text.indexOf('\n');
  return { doc, start: 0, end: end < 0 ? d.text.length : end };
}

function quoteName(name: string): string {
  return `"${name}"`;
}

/** Spans a step relies on: its fact, plus the title of the document a mention step leads to. */
export function edgeEvidence(g: Graph, e: GEdge): Span[] {
  return e.kind === 'mention' ? [e.span, titleSpan(g, e.span.doc)] : [e.span];
}

/** Words that would make a step ambiguous if a distractor contained them. */
function edgeAvoid(g: Graph, e: GEdge): string[] {
  return e.kind === 'mention' ? g.names(e.from) : [];
}

interface Walk {
  start: number;
  edges: GEdge[];
}

/** Random walk of `hops` functional steps visiting distinct entities, preferring a new document at each step. */
function walk(g: Graph, rng: Rng, hops: number, starts: number[]): Walk | null {
  for (let attempt = 0; attempt < 40; attempt++) {
    const start = rng.pick(starts);
    const seen = new Set([start]);
    const edges: GEdge[] = [];
    let cur = start;
    for (let h = 0; h < hops; h++) {
      const options = g.functionalEdges(cur).filter((e) => !seen.has(e.to));
      if (options.length === 0) break;
      const docsSoFar = new Set(edges.map((e) => e.span.doc));
      const fresh = options.filter((e) => !docsSoFar.has(e.span.doc));
      const e = rng.pick(fresh.length > 0 && rng.next() < 0.8 ? fresh : options);
      edges.push(e);
      seen.add(e.to);
      cur = e.to;
    }
    if (edges.length === hops) return { start, edges };
  }
  return null;
}

function walkStarts(g: Graph): number[] {
  const starts: number[] = [];
  for (const e of g.entities.values()) if (e.type !== 'document' && g.functionalEdges(e.id).length > 0) starts.push(e.id);
  return starts;
}

let startCache: { g: Graph; starts: number[] } | null = null;
function cachedStarts(g: Graph): number[] {
  if (startCache?.g !== g) startCache = { g, starts: walkStarts(g) };
  return startCache.starts;
}

function describePath(g: Graph, w: Walk): string {
  let d = quoteName(g.entity(w.start).name);
  for (const e of w.edges) d = g.describe(e, d);
  return d;
}

let uniqueNumberCache: { g: Graph; byEntity: Map<number, GNumber[]> } | null = null;

/**
 * Numbers that single out their entity: no other entity has the same value of the same attribute. Naming
 * an entity by one of them ("the person whose year of birth is 1957") hides it behind one more step.
 */
function uniqueNumbers(g: Graph): Map<number, GNumber[]> {
  if (uniqueNumberCache?.g === g) return uniqueNumberCache.byEntity;
  const counts = new Map<string, number>();
  const key = (n: GNumber) => `${n.attribute}\u0000${n.value}`;
  for (const n of g.numbers) if (n.subject !== null) counts.set(key(n), (counts.get(key(n)) ?? 0) + 1);
  const byEntity = new Map<number, GNumber[]>();
  for (const n of g.numbers) {
    if (n.subject === null || counts.get(key(n)) !== 1) continue;
    const type = g.entity(n.subject).type;
    if (type === 'document' || type === 'row') continue;
    (byEntity.get(n.subject) ?? byEntity.set(n.subject, []).get(n.subject)!).push(n);
  }
  uniqueNumberCache = { g, byEntity };
  return byEntity;
}

export function composeMultihop(env: ComposeEnv): ComposeResult {
  const { graph: g, rng } = env;
  const starts = cachedStarts(g);
  if (starts.length === 0) return { reject: 'no-material' };
  const hops = rng.range(2, 4);
  const w = walk(g, rng, hops, starts);
  if (!w) return { reject: 'no-path' };
  const last = g.entity(w.edges[w.edges.length - 1]!.to);
  if (last.type === 'document') return { reject: 'path-ends-at-document' };
  // Half the time, the start is named by a number that singles it out rather than by its name.
  const hiding = uniqueNumbers(g).get(w.start);
  const hide = hiding && rng.next() < 0.5 ? rng.pick(hiding) : null;
  const first = g.entity(w.start);
  let desc = hide ? `the ${typeNoun(first.type)} whose ${hide.attribute} is ${formatNumber(hide.value)}` : quoteName(first.name);
  for (const e of w.edges) desc = g.describe(e, desc);
  return {
    task: 'multihop',
    question: `What is ${desc}? Answer with its name.`,
    answer: last.name,
    aliases: last.aliases.length > 0 ? last.aliases : undefined,
    evidence: [...(hide ? [hide.span] : []), ...w.edges.flatMap((e) => edgeEvidence(g, e))],
    hops: hops + (hide ? 1 : 0),
    avoid: w.edges.flatMap((e) => edgeAvoid(g, e)),
    hardNegativeType: last.type,
    meta: {
      path: [first.name, ...w.edges.map((e) => g.entity(e.to).name)],
      relations: w.edges.map((e) => ({ relation: e.relation, inverse: e.inverse, kind: e.kind })),
      start_named_by: hide ? { fact: hide.id, attribute: hide.attribute, value: hide.value } : undefined,
      documents: [...new Set(w.edges.map((e) => e.span.doc))].length,
    },
  };
}

export function composeMultipleChoice(env: ComposeEnv): ComposeResult {
  const { graph: g, rng } = env;
  const starts = cachedStarts(g);
  if (starts.length === 0) return { reject: 'no-material' };
  const hops = rng.range(1, 2);
  const w = walk(g, rng, hops, starts);
  if (!w) return { reject: 'no-path' };
  const last = g.entity(w.edges[w.edges.length - 1]!.to);
  if (last.type === 'document') return { reject: 'path-ends-at-document' };
  const pool = (g.byType.get(last.type) ?? []).filter((id) => {
    if (id === last.id) return false;
    const n = normalize(g.entity(id).name);
    return n.length > 0 && !normalize(last.name).includes(n) && !n.includes(normalize(last.name));
  });
  const wrong = rng.sample(pool, 3).map((id) => g.entity(id).name);
  if (wrong.length < 3) return { reject: 'too-few-options' };
  const options = rng.shuffle([last.name, ...wrong]);
  const letter = LETTERS[options.indexOf(last.name)]!;
  const desc = describePath(g, w);
  return {
    task: 'multiple-choice',
    question: `Which of the options is ${desc}?\n${options.map((o, i) => `${LETTERS[i]}. ${o}`).join('\n')}\nAnswer with the letter.`,
    answer: letter,
    options,
    evidence: w.edges.flatMap((e) => edgeEvidence(g, e)),
    hops,
    avoid: w.edges.flatMap((e) => edgeAvoid(g, e)),
    hardNegativeType: last.type,
    meta: { correct: last.name, path: [g.entity(w.start).name, ...w.edges.map((e) => g.entity(e.to).name)] },
  };
}

/** A dated or numeric item: how the question names it and the spans that give it. */
interface Item {
  desc: string;
  value: number;
  evidence: Span[];
  avoid: string[];
}

/** Name a number fact: by its subject and attribute, through a document's unique mention, or by its cloze. */
function describeNumber(g: Graph, n: GNumber, rng: Rng): Item | null {
  const base = { value: n.value, evidence: [n.span] };
  if (n.subject !== null) {
    const s = g.entity(n.subject);
    if (s.type === 'document') {
      // The document is named by a name found only in it, so finding the year takes two steps.
      const unique = [...g.entities.values()].filter((e) => e.type !== 'document' && e.anyDocs.size === 1 && e.mentions.has(n.span.doc) && isDistinctive(e));
      if (unique.length === 0) return null;
      const u = rng.pick(unique);
      return { ...base, desc: `the ${n.attribute} of the document that mentions ${quoteName(u.name)}`, evidence: [u.mentions.get(n.span.doc)!, n.span], avoid: g.names(u.id) };
    }
    const where = s.type === 'row' ? ` (in ${g.docs.get(n.span.doc)?.title ?? n.span.doc})` : '';
    return { ...base, desc: `the ${n.attribute} of ${s.name}${where}`, avoid: [] };
  }
  return { ...base, desc: `the ${n.unit === 'year' ? 'year' : 'number'} missing from "${n.label}"`, avoid: [] };
}

function groupNumbers(g: Graph, pred: (n: GNumber) => boolean): GNumber[][] {
  const groups = new Map<string, GNumber[]>();
  for (const n of g.numbers) {
    if (!pred(n)) continue;
    const k = `${n.attribute}\u0000${n.unit}`;
    // grown in place: a copy per number was quadratic in a group's size (25k years took 4.5 s)
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(n);
  }
  return [...groups.values()].filter((l) => l.length >= 2);
}

let numberGroupCache: { g: Graph; years: GNumber[][]; values: GNumber[][] } | null = null;
function numberGroups(g: Graph) {
  if (numberGroupCache?.g !== g) {
    numberGroupCache = {
      g,
      years: groupNumbers(g, (n) => n.unit === 'year' || n.attribute.includes('year')),
      values: groupNumbers(g, (n) => !(n.unit === 'year' || n.attribute.includes('year'))),
    };
  }
  return numberGroupCache;
}

/** Pick `k` numbers with distinct values (and distinct labels) from one group. */
function pickItems(g: Graph, rng: Rng, groups: GNumber[][], k: number): { facts: GNumber[]; items: Item[] } | 'none' | null {
  const usable = groups.filter((l) => new Set(l.map((n) => n.value)).size >= k);
  if (usable.length === 0) return 'none';
  const group = rng.pick(usable);
  const facts: GNumber[] = [];
  const items: Item[] = [];
  for (const n of rng.shuffle(group)) {
    if (facts.some((f) => f.value === n.value || f.label === n.label)) continue;
    const it = describeNumber(g, n, rng);
    if (!it || items.some((i) => i.desc === it.desc)) continue;
    facts.push(n);
    items.push(it);
    if (facts.length === k) return { facts, items };
  }
  return null;
}

function twoItemQuestion(task: 'temporal' | 'comparison', env: ComposeEnv): ComposeResult {
  const { graph: g, rng } = env;
  const groups = task === 'temporal' ? numberGroups(g).years : numberGroups(g).values;
  const picked = pickItems(g, rng, groups, 2);
  if (picked === 'none') return { reject: 'no-material' };
  if (!picked) return { reject: 'numbers-not-describable' };
  const [a, b] = picked.items as [Item, Item];
  const unit = picked.facts[0]!.unit;
  const listed = `(A) ${a.desc}\n(B) ${b.desc}`;
  const kind = rng.int(2);
  let question: string;
  let answer: string | number;
  if (task === 'temporal') {
    if (kind === 0) {
      question = `Two years are described below.\n${listed}\nWhich of the two is earlier? Answer A or B.`;
      answer = a.value < b.value ? 'A' : 'B';
    } else {
      question = `Two years are described below.\n${listed}\nHow many years apart are they? Answer with a number.`;
      answer = Math.abs(a.value - b.value);
    }
  } else if (kind === 0) {
    question = `Two quantities are described below.\n${listed}\nWhich of the two is larger? Answer A or B.`;
    answer = a.value > b.value ? 'A' : 'B';
  } else {
    question = `Two quantities are described below${unit ? ` (in ${unit})` : ''}.\n${listed}\nBy how much does the larger exceed the smaller? Answer with a number.`;
    answer = Number(formatNumber(Math.abs(a.value - b.value)));
  }
  return {
    task,
    question,
    answer,
    evidence: [...a.evidence, ...b.evidence],
    hops: 2,
    avoid: [...a.avoid, ...b.avoid],
    meta: { operands: picked.facts.map((f) => ({ fact: f.id, value: f.value, doc: f.valueSpan.doc, start: f.valueSpan.start, end: f.valueSpan.end })), kind: kind === 0 ? 'order' : 'difference' },
  };
}

export const composeTemporal = (env: ComposeEnv): ComposeResult => twoItemQuestion('temporal', env);
export const composeComparison = (env: ComposeEnv): ComposeResult => twoItemQuestion('comparison', env);

/** SQL for each numerical template over `numeric_facts`; the executed result is the answer. */
const NUMERIC_OPS = {
  sum: { k: [3, 5], phrase: 'the sum of these quantities', sql: (ids: string) => `SELECT SUM(value) AS r FROM numeric_facts WHERE id IN (${ids})` },
  average: { k: [3, 5], phrase: 'the average of these quantities', sql: (ids: string) => `SELECT AVG(value) AS r FROM numeric_facts WHERE id IN (${ids})` },
  max: { k: [3, 5], phrase: 'the largest of these quantities', sql: (ids: string) => `SELECT MAX(value) AS r FROM numeric_facts WHERE id IN (${ids})` },
  min: { k: [3, 5], phrase: 'the smallest of these quantities', sql: (ids: string) => `SELECT MIN(value) AS r FROM numeric_facts WHERE id IN (${ids})` },
  count: { k: [4, 6], phrase: 'the number of these quantities that are greater than THRESHOLD', sql: (ids: string) => `SELECT COUNT(*) AS r FROM numeric_facts WHERE id IN (${ids}) AND value > :threshold` },
  difference: { k: [2, 2], phrase: 'the first quantity minus the second', sql: (ids: string) => `SELECT (SELECT value FROM numeric_facts WHERE id = ${ids.split(',')[0]}) - (SELECT value FROM numeric_facts WHERE id = ${ids.split(',')[1]}) AS r` },
  ratio: { k: [2, 2], phrase: 'the first quantity divided by the second (to 4 decimal places)', sql: (ids: string) => `SELECT (SELECT value FROM numeric_facts WHERE id = ${ids.split(',')[0]}) * 1.0 / (SELECT value FROM numeric_facts WHERE id = ${ids.split(',')[1]}) AS r` },
} as const;
export type NumericOp = keyof typeof NUMERIC_OPS;

export function composeNumerical(env: ComposeEnv): ComposeResult {
  const { graph: g, rng, db } = env;
  const op = rng.pick(Object.keys(NUMERIC_OPS) as NumericOp[]);
  const spec = NUMERIC_OPS[op];
  const k = rng.range(spec.k[0], spec.k[1]);
  const all = [...numberGroups(g).values, ...numberGroups(g).years.filter((l) => l.every((n) => n.subject !== null))];
  const picked = pickItems(g, rng, all, k);
  if (picked === 'none') return k > 3 ? { reject: 'too-few-numbers' } : { reject: 'no-material' };
  if (!picked) return { reject: 'numbers-not-describable' };
  if (op === 'ratio' && picked.facts[1]!.value === 0) return { reject: 'division-by-zero' };
  const ids = picked.facts.map((f) => f.id).join(',');
  const sorted = picked.facts.map((f) => f.value).sort((x, y) => x - y);
  const threshold = sorted[Math.floor(sorted.length / 2)]!;
  const sql = spec.sql(ids);
  const row = (op === 'count' ? db.prepare(sql).get({ threshold }) : db.prepare(sql).get()) as { r: number | null } | undefined;
  if (!row || row.r === null || !Number.isFinite(row.r)) return { reject: 'sql-no-result' };
  const answer = Number(formatNumber(row.r));
  const unit = picked.facts[0]!.unit;
  const phrase = spec.phrase.replace('THRESHOLD', formatNumber(threshold));
  return {
    task: 'numerical',
    question: `The documents give the following quantities${unit && unit !== 'year' ? ` (in ${unit})` : ''}:\n${picked.items.map((it, i) => `${i + 1}. ${it.desc}`).join('\n')}\nWhat is ${phrase}? Answer with a number.`,
    answer,
    evidence: picked.items.flatMap((it) => it.evidence),
    hops: k,
    avoid: picked.items.flatMap((it) => it.avoid),
    meta: {
      op,
      sql,
      threshold: op === 'count' ? threshold : undefined,
      operands: picked.facts.map((f) => ({ fact: f.id, value: f.value, doc: f.valueSpan.doc, start: f.valueSpan.start, end: f.valueSpan.end })),
    },
  };
}

export function composeAggregation(env: ComposeEnv): ComposeResult {
  const { graph: g, rng } = env;
  if (g.complete) {
    // A complete graph: every subject of (relation, object) is known, so the list is exact.
    const groups = new Map<string, GEdge[]>();
    for (const [from, edges] of g.out) {
      for (const e of edges) {
        if (!e.inverse || e.kind !== 'fact') continue;
        const k = `${from}\u0000${e.relation}`;
        (groups.get(k) ?? groups.set(k, []).get(k)!).push(e);
      }
    }
    const ok = [...groups.values()].filter((l) => l.length >= 2 && l.length <= 6);
    if (ok.length === 0) return { reject: 'no-material' };
    const edges = rng.pick(ok);
    const answer = [...new Set(edges.map((e) => g.entity(e.to).name))].sort();
    const desc = g.describe(edges[0]!, quoteName(g.entity(edges[0]!.from).name)).replace(/^the /, '');
    return {
      task: 'aggregation',
      question: `List every ${desc}. Answer with a JSON array of names.`,
      answer,
      evidence: edges.map((e) => e.span),
      hops: 1,
      avoid: [],
      meta: { relation: edges[0]!.relation, object: g.entity(edges[0]!.from).name },
    };
  }
  // Real text: every document in the context that mentions a name. Distractors never contain the name, so
  // the documents that mention it in the context are exactly the evidence documents.
  const candidates = [...g.entities.values()].filter((e) => e.type !== 'document' && e.mentions.size >= 2 && e.mentions.size <= 5 && isDistinctive(e));
  if (candidates.length === 0) return { reject: 'no-material' };
  const e = rng.pick(candidates);
  const docs = [...e.mentions.keys()].sort();
  const titles = [...new Set(docs.map((d) => g.docs.get(d)!.title))];
  if (titles.length !== docs.length || docs.some((d) => !g.docs.get(d)!.text.startsWith(g.docs.get(d)!.title))) return { reject: 'ambiguous-titles' };
  return {
    task: 'aggregation',
    question: `List the title of every document that mentions ${quoteName(e.name)}. Answer with a JSON array of titles.`,
    answer: titles.slice().sort(),
    evidence: docs.flatMap((d) => [titleSpan(g, d), e.mentions.get(d)!]),
    hops: docs.length,
    avoid: g.names(e.id),
    hardNegativeType: e.type,
    meta: { entity: e.name },
  };
}

/** Sentences usable as assistant replies: every body sentence of 40–400 characters on one line. */
function replySentences(g: Graph): Span[] {
  const out: Span[] = [];
  for (const d of g.docs.values()) {
    for (const p of d.passages) {
      if (p.end <= d.headerEnd) continue;
      for (const [start, end] of splitSentences(d.text, p.start, p.end)) {
        const len = end - start;
        if (len >= 40 && len <= 400 && !d.text.slice(start, end).includes('\n')) out.push({ doc: d.id, start, end });
      }
    }
  }
  return out;
}

let replyCache: { g: Graph; spans: Span[] } | null = null;

const REQUESTS = [
  'Tell me one thing the documents say about {T}.',
  'Quote a sentence about {T}.',
  'Give me a line from the texts that concerns {T}.',
  'What does one of the documents state about {T}?',
];
const TOPICS = ['government', 'the country', 'money', 'war', 'the people', 'the law', 'trade', 'the future', 'a nation', 'an agreement'];

/**
 * MRCR-style conversation: turns whose replies are sentences from the documents, several of them answering
 * the very same request. The question asks for the reply to the i-th of those requests.
 */
export function composeDialogueMemory(env: ComposeEnv): ComposeResult & { dialogue?: DialoguePlan } {
  const { graph: g, rng } = env;
  if (replyCache?.g !== g) replyCache = { g, spans: replySentences(g) };
  const pool = replyCache.spans;
  if (pool.length < 8) return { reject: 'no-material' };
  const request = rng.pick(REQUESTS).replace('{T}', rng.pick(TOPICS));
  const planted = rng.range(2, 4);
  const which = rng.int(planted);
  const replies = rng.sample(pool, planted);
  const texts = replies.map((s) => g.docs.get(s.doc)!.text.slice(s.start, s.end));
  if (new Set(texts).size !== texts.length) return { reject: 'duplicate-replies' };
  const answerSpan = replies[which]!;
  return {
    task: 'dialogue-memory',
    question: `In the conversation above, the user asked "${request}" ${planted} times. Reproduce, word for word, the assistant's reply to the ${ORDINALS[which]} of these requests.`,
    answer: texts[which]!,
    evidence: [answerSpan],
    hops: 1,
    avoid: [],
    meta: { request, planted, index: which + 1 },
    dialogue: { request, planted: replies, which, pool },
  };
}

export interface DialoguePlan {
  request: string;
  planted: Span[];
  /** Index into `planted` of the turn the question asks for. */
  which: number;
  pool: Span[];
}

/** Other requests that fill the conversation. */
export function fillerRequest(rng: Rng, avoidRequest: string): string {
  for (;;) {
    const r = rng.pick(REQUESTS).replace('{T}', rng.pick(TOPICS));
    if (r !== avoidRequest) return r;
  }
}

/**
 * The fixed text of every question template, placeholders left out but punctuation and the small numbers they
 * write kept (list numbers, option letters, how many times a request was planted), for a synthetic world's
 * closed vocabulary. Keep it in step with the templates above.
 */
export function questionTemplateText(): string[] {
  return [
    'What is ? Answer with its name.',
    'Which of the options is ?\nAnswer with the letter.',
    ...LETTERS.slice(0, 4).map((l) => `${l}. `),
    `the ${['person', 'place', 'organization'].map(typeNoun).join(' ')} whose is`,
    'the document that mentions "" the of "" ( in ) the year number missing from ""',
    'Two years are described below.\n(A) \n(B) \nWhich of the two is earlier? Answer A or B.',
    'How many years apart are they? Answer with a number.',
    'Two quantities are described below (in ).\nWhich of the two is larger? Answer A or B.',
    'By how much does the larger exceed the smaller? Answer with a number.',
    'The documents give the following quantities (in ):\nWhat is ? Answer with a number.',
    ...Array.from({ length: 6 }, (_, i) => `${i + 1}. `),
    ...Object.values(NUMERIC_OPS).map((o) => o.phrase.replace('THRESHOLD', '')),
    'List every . Answer with a JSON array of names.',
    'List the title of every document that mentions "". Answer with a JSON array of titles.',
    'In the conversation above, the user asked "" 2 3 4 times. Reproduce, word for word, the assistant\'s reply to the of these requests.',
    ...ORDINALS,
    ...REQUESTS.map((r) => r.replace('{T}', '')),
    ...TOPICS,
  ];
}

export const COMPOSERS: Record<Task, (env: ComposeEnv) => ComposeResult> = {
  multihop: composeMultihop,
  temporal: composeTemporal,
  comparison: composeComparison,
  numerical: composeNumerical,
  aggregation: composeAggregation,
  'multiple-choice': composeMultipleChoice,
  'dialogue-memory': composeDialogueMemory,
};
