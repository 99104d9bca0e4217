import { Rng } from './rng.js';
import type { SourceDocument } from './documents.js';
import type { KnowledgeGraph } from './kg.js';
import type { TokenCounter } from './tokenizer.js';
import type { EntityRef, Extraction, Mention, NumericFact, RelationFact } from './types.js';
import { splitSentences } from './text.js';
import { questionTemplateText } from './compose.js';
import { CONTEXT_MARKUP } from './context.js';
import { DIALOGUE_MARKUP } from './dialogue.js';
import { typeNoun } from './graph.js';
import { WordTokenizer } from '../tokenizer/word.js';

/**
 * Synthetic worlds: contamination-free corpora. A seeded random world (people, cities, countries,
 * organizations with generated names; typed relations; numeric and date attributes) rendered as one plain
 * English document per entity from a closed vocabulary. Its facts go straight into the knowledge graph with
 * their spans, so the graph is complete and every composer's answer is exact.
 */

export interface WorldOptions {
  seed: string | number;
  people?: number;
  cities?: number;
  countries?: number;
  organizations?: number;
  /** Filler sentences per document (closed-vocabulary small talk), to control length. Default 6. */
  filler?: number;
}

type Kind = 'person' | 'city' | 'country' | 'organization';

export interface WorldEntity {
  name: string;
  kind: Kind;
  links: Array<{ relation: string; to: number }>;
  numbers: Array<{ attribute: string; value: number; unit: string }>;
}

export interface World {
  entities: WorldEntity[];
  options: Required<WorldOptions>;
}

/** Relations: how a document states one, and how a question names either end of it. */
const RELATIONS: Record<string, { sentence: string; forward: string; inverse: string; from: Kind; to: Kind }> = {
  born_in: { sentence: '{S} was born in {O}.', forward: 'the city where {D} was born', inverse: 'the person who was born in {D}', from: 'person', to: 'city' },
  works_for: { sentence: '{S} works for {O}.', forward: 'the organization that {D} works for', inverse: 'the person who works for {D}', from: 'person', to: 'organization' },
  mentor_of: { sentence: '{S} is the mentor of {O}.', forward: 'the person whose mentor is {D}', inverse: 'the mentor of {D}', from: 'person', to: 'person' },
  based_in: { sentence: '{S} is based in {O}.', forward: 'the city where {D} is based', inverse: 'the organization that is based in {D}', from: 'organization', to: 'city' },
  founded_by: { sentence: '{S} was founded by {O}.', forward: 'the founder of {D}', inverse: 'the organization that was founded by {D}', from: 'organization', to: 'person' },
  located_in: { sentence: '{S} lies in {O}.', forward: 'the country where {D} lies', inverse: 'the city that lies in {D}', from: 'city', to: 'country' },
  capital_of: { sentence: '{S} is the capital of {O}.', forward: 'the country whose capital is {D}', inverse: 'the capital of {D}', from: 'city', to: 'country' },
};

const ATTRIBUTES: Record<Kind, Array<{ attribute: string; unit: string; lo: number; hi: number; sentence: string }>> = {
  person: [
    { attribute: 'year of birth', unit: 'year', lo: 1900, hi: 2005, sentence: '{S} was born in the year {V}.' },
    { attribute: 'number of books', unit: 'books', lo: 1, hi: 400, sentence: '{S} owns {V} books.' },
  ],
  city: [
    { attribute: 'population', unit: 'people', lo: 2000, hi: 900000, sentence: '{S} has a population of {V} people.' },
    { attribute: 'year of founding', unit: 'year', lo: 1200, hi: 1950, sentence: '{S} was founded in the year {V}.' },
  ],
  country: [{ attribute: 'area', unit: 'square miles', lo: 1000, hi: 500000, sentence: '{S} covers {V} square miles.' }],
  organization: [
    { attribute: 'number of workers', unit: 'workers', lo: 3, hi: 50000, sentence: '{S} has {V} workers.' },
    { attribute: 'year of founding', unit: 'year', lo: 1850, hi: 2020, sentence: '{S} was started in the year {V}.' },
  ],
};

const SYLLABLES = 'ka lo mi ren tas vor bel dun fa gri hol jen kes lum nor pa quin ros sel tor ul vek wen yar zol bra cle dro fen gal'.split(' ');
const SUFFIX: Record<Kind, string[]> = { person: [''], city: ['ton', 'ford', 'vale', 'burg', 'haven'], country: ['ia', 'land', 'stan', 'ora'], organization: [' Works', ' Guild', ' Company', ' Trust', ' Society'] };
const FILLER = ['{S} likes the color {C}.', 'People often talk about {S} in the {P}.', 'Many visitors think of {S} on {D} mornings.', 'There is a small {T} near {S}.', 'A song about {S} is sung in the {P}.'];
const COLORS = ['red', 'blue', 'green', 'yellow', 'white', 'black'];
const PLACES_SMALL = ['market', 'square', 'park', 'library', 'harbor'];
const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'];
const THINGS = ['bridge', 'garden', 'tower', 'well', 'mill'];

function cap(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

function makeName(rng: Rng, kind: Kind, used: Set<string>): string {
  for (;;) {
    const word = () => cap(Array.from({ length: rng.range(2, 3) }, () => rng.pick(SYLLABLES)).join(''));
    const name = kind === 'person' ? `${word()} ${word()}` : `${word()}${rng.pick(SUFFIX[kind])}`;
    if (!used.has(name.toLowerCase())) {
      used.add(name.toLowerCase());
      return name;
    }
  }
}

/** The counts a world may have: at least 2 of each kind (0 filler sentences), at most what names and memory allow. */
export const WORLD_LIMITS = {
  people: [2, 100_000],
  cities: [2, 20_000],
  countries: [2, 20_000],
  organizations: [2, 20_000],
  filler: [0, 1_000],
} as const satisfies Record<string, readonly [number, number]>;

/** Why `value` is not a valid `key` of a world (naming the key and the rule), or null when it is. */
export function worldOptionProblem(key: string, value: unknown): string | null {
  const limits = (WORLD_LIMITS as Record<string, readonly [number, number]>)[key];
  if (!limits) return `unknown key ${JSON.stringify(key)} (keys: ${Object.keys(WORLD_LIMITS).join(', ')})`;
  const [lo, hi] = limits;
  const ok = typeof value === 'number' && Number.isInteger(value) && value >= lo && value <= hi;
  return ok ? null : `${key} must be an integer from ${lo} to ${hi} (got ${typeof value === 'string' ? JSON.stringify(value) : String(value)})`;
}

export function generateWorld(opts: WorldOptions): World {
  const o: Required<WorldOptions> = { seed: opts.seed, people: opts.people ?? 40, cities: opts.cities ?? 12, countries: opts.countries ?? 4, organizations: opts.organizations ?? 10, filler: opts.filler ?? 6 };
  for (const key of Object.keys(WORLD_LIMITS) as Array<keyof typeof WORLD_LIMITS>) {
    const problem = worldOptionProblem(key, o[key]);
    if (problem) throw new RangeError(`world: ${problem}`);
  }
  const rng = new Rng(o.seed, 'world');
  const used = new Set<string>();
  const entities: WorldEntity[] = [];
  const add = (kind: Kind, n: number) => Array.from({ length: n }, () => entities.push({ name: makeName(rng, kind, used), kind, links: [], numbers: [] }) - 1);
  const people = add('person', o.people);
  const cities = add('city', o.cities);
  const countries = add('country', o.countries);
  const orgs = add('organization', o.organizations);
  const link = (from: number, relation: string, to: number) => entities[from]!.links.push({ relation, to });
  for (const p of people) {
    link(p, 'born_in', rng.pick(cities));
    link(p, 'works_for', rng.pick(orgs));
  }
  for (let i = 1; i < people.length; i += 2) link(people[i - 1]!, 'mentor_of', people[i]!);
  for (const org of orgs) {
    link(org, 'based_in', rng.pick(cities));
    link(org, 'founded_by', rng.pick(people));
  }
  // Each country's capital lies in it; the other cities lie anywhere.
  const capitals = new Map(rng.sample(cities, countries.length).map((c, i) => [c, countries[i]!] as const));
  for (const c of cities) {
    const country = capitals.get(c);
    if (country !== undefined) link(c, 'capital_of', country);
    link(c, 'located_in', country ?? rng.pick(countries));
  }
  for (const e of entities) {
    for (const a of ATTRIBUTES[e.kind]) e.numbers.push({ attribute: a.attribute, value: rng.range(a.lo, a.hi), unit: a.unit });
  }
  return { entities, options: o };
}

const TYPE_OF: Record<Kind, string> = { person: 'person', city: 'place', country: 'place', organization: 'organization' };

interface RenderedDocument {
  id: string;
  title: string;
  text: string;
  headerEnd: number;
  extraction: Extraction;
}

/** Render the world as one document per entity, each with the facts it states and their exact spans. */
function renderWorld(world: World): RenderedDocument[] {
  const rng = new Rng(world.options.seed, 'world-render');
  const docs: RenderedDocument[] = [];
  const ref = (i: number): EntityRef => ({ name: world.entities[i]!.name, type: TYPE_OF[world.entities[i]!.kind] });
  world.entities.forEach((e, i) => {
    const id = `world-${String(i + 1).padStart(4, '0')}`;
    let text = `${e.name}\n\n`;
    const mentions: Mention[] = [];
    const relations: RelationFact[] = [];
    const numbers: NumericFact[] = [];
    const sentences: Array<() => void> = [];
    const put = (sentence: string, fill: Record<string, string>) => {
      const start = text.length;
      let s = sentence;
      const marks: Array<{ key: string; at: number; len: number }> = [];
      for (;;) {
        const m = /\{([A-Z])\}/.exec(s);
        if (!m) break;
        const v = fill[m[1]!] ?? '';
        marks.push({ key: m[1]!, at: start + m.index, len: v.length });
        s = s.slice(0, m.index) + v + s.slice(m.index + m[0].length);
      }
      text += `${s} `;
      return { span: { doc: id, start, end: start + s.length }, marks };
    };
    for (const l of e.links) {
      sentences.push(() => {
        const r = RELATIONS[l.relation]!;
        const { span, marks } = put(r.sentence, { S: e.name, O: world.entities[l.to]!.name });
        for (const m of marks) mentions.push({ ...(m.key === 'S' ? ref(i) : ref(l.to)), span: { doc: id, start: m.at, end: m.at + m.len } });
        relations.push({ subject: ref(i), object: ref(l.to), relation: l.relation, surface: l.relation.replace('_', ' '), span });
      });
    }
    for (const n of e.numbers) {
      sentences.push(() => {
        const a = ATTRIBUTES[e.kind].find((x) => x.attribute === n.attribute)!;
        const { span, marks } = put(a.sentence, { S: e.name, V: String(n.value) });
        const v = marks.find((m) => m.key === 'V')!;
        numbers.push({ subject: ref(i), label: e.name, attribute: n.attribute, value: n.value, unit: n.unit, span, valueSpan: { doc: id, start: v.at, end: v.at + v.len } });
      });
    }
    for (let k = 0; k < world.options.filler; k++) {
      const f = rng.pick(FILLER);
      sentences.push(() => void put(f, { S: e.name, C: rng.pick(COLORS), P: rng.pick(PLACES_SMALL), D: rng.pick(DAYS), T: rng.pick(THINGS) }));
    }
    for (const s of rng.shuffle(sentences)) s();
    docs.push({ id, title: e.name, text: text.trimEnd(), headerEnd: e.name.length + 2, extraction: { doc: id, mentions, relations, numbers } });
  });
  return docs;
}

/** Render the world into documents, load its facts into the graph, and return the documents. */
export function writeWorld(world: World, kg: KnowledgeGraph, counter: TokenCounter): SourceDocument[] {
  const docs: SourceDocument[] = [];
  for (const { id, title, text, headerEnd, extraction } of renderWorld(world)) {
    const passages: SourceDocument['passages'] = [{ start: 0, end: title.length, tokens: counter.count(title) }];
    let runStart = -1;
    let runEnd = -1;
    for (const [a, b] of splitSentences(text, headerEnd)) {
      if (runStart >= 0 && b - runStart > 600) {
        passages.push({ start: runStart, end: runEnd, tokens: counter.count(text.slice(runStart, runEnd)) });
        runStart = -1;
      }
      if (runStart < 0) runStart = a;
      runEnd = b;
    }
    if (runStart >= 0) passages.push({ start: runStart, end: runEnd, tokens: counter.count(text.slice(runStart, runEnd)) });
    docs.push({ id, title, source: `world:${world.options.seed}`, text, meta: {}, headerEnd, passages, tables: [] });
    kg.addExtraction(extraction);
  }
  const tpl = kg.db.prepare('INSERT OR REPLACE INTO relation_templates(relation, forward, inverse) VALUES (?,?,?)');
  for (const [k, r] of Object.entries(RELATIONS)) tpl.run(k, r.forward, r.inverse);
  kg.markStage('world', { complete: true, entities: world.entities.length });
  return docs;
}

/**
 * The closed vocabulary of a world: every token of its documents, of the contexts made from them and of every
 * question the composers can write about it, punctuation and numbers included, as the package's word-level
 * tokenizer splits text (`WordTokenizer.split`: runs of letters, digits, `_`, `'` and `-`, and single other
 * marks), plus the letters and JSON punctuation of answers. Numbers that only an answer holds (a sum, a
 * difference, an average, a ratio) are computed, not written anywhere, and are not in it.
 */
export function worldVocabulary(world: World): string[] {
  const tokens = new Set<string>();
  const add = (s: string) => WordTokenizer.split(s).forEach((t) => tokens.add(t));
  for (const d of renderWorld(world)) add(d.text);
  for (const r of Object.values(RELATIONS)) [r.forward, r.inverse].forEach((t) => add(t.replace('{D}', '')));
  for (const list of Object.values(ATTRIBUTES)) for (const a of list) add(`${a.attribute} ${a.unit}`);
  for (const kind of Object.keys(TYPE_OF) as Kind[]) add(typeNoun(TYPE_OF[kind]));
  add(CONTEXT_MARKUP + DIALOGUE_MARKUP);
  for (const t of questionTemplateText()) add(t);
  add('A B C D [ ] , "');
  return [...tokens].sort();
}
