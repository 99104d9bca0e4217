import winkNLP from 'wink-nlp';
import model from 'wink-eng-lite-web-model';
import type { SourceDocument } from './documents.js';
import type { EntityRef, Extraction, Mention, NumericFact, RelationFact } from './types.js';
import { parseCellNumber } from './tables.js';
import { isDistinctive } from './graph.js';

/**
 * Offline extractor on wink-nlp with its English "lite" model: sentence and token boundaries (lossless, so
 * every token maps back to exact character offsets), part-of-speech tags, lemmas and its numeric and date
 * entities. On top of them: proper-noun chunks typed by cue words (titles, organization heads, a small place
 * gazetteer), subject–verb–object facts between two names in a sentence, and numeric facts.
 */

type Nlp = ReturnType<typeof winkNLP>;
let nlpInstance: Nlp | null = null;
function nlp(): Nlp {
  nlpInstance ??= winkNLP(model);
  return nlpInstance;
}

const PERSON_TITLES = new Set(
  'mr mr. mrs mrs. miss ms ms. dr dr. sir lady lord president governor senator general colonel captain admiral secretary king queen prince princess emperor pope judge justice rev. reverend major lieutenant sergeant commodore chancellor premier ambassador'.split(' '),
);
const ORG_HEADS = new Set(
  'department agency council company corporation corps committee commission union party court bureau institute university college administration congress senate house army navy bank board office service association society league alliance organization academy ministry parliament assembly government republic'.split(' '),
);
const PLACE_WORDS = new Set(
  'america europe asia africa china japan russia mexico canada cuba panama france england britain germany spain italy india korea vietnam iraq iran israel egypt poland prussia austria brazil chile peru texas california virginia ohio york kansas oregon alaska hawaii louisiana florida georgia carolina massachusetts pennsylvania illinois kentucky tennessee missouri mississippi alabama michigan indiana washington philadelphia boston chicago london paris berlin moscow tokyo rome vienna madrid afghanistan philippines nicaragua haiti hawaii atlantic pacific'.split(' '),
);
const PLACE_HEADS = new Set('river lake mount mountains island islands ocean sea bay gulf canal city county state territory valley coast'.split(' '));
const PLACE_PREPS = new Set(['in', 'at', 'from', 'to', 'into', 'across', 'toward', 'towards']);
const NOT_NAMES = new Set(
  'i god almighty heaven providence sir madam mr mrs miss lady nation government people country world administration state states republic federal national department chamber east west north south january february march april may june july august september october november december monday tuesday wednesday thursday friday saturday sunday'.split(' '),
);
const OPENERS = new Set('much many each every our this these those such all any some no a an the my your their its his her we you they it'.split(' '));
/** Verbs whose subject–object pairs are rarely facts (speech, wishes, requests). */
const WEAK_VERBS = new Set('call say tell ask thank urge let make give take see know want need hope believe think welcome wish request recommend'.split(' '));
const MODALS = new Set('must should can could will would may might shall'.split(' '));
const NOUN_PHRASE_POS = new Set(['NOUN', 'PROPN', 'ADJ', 'NUM', 'DET', 'PRON', 'X']);
const RELATION_SKIP_POS = new Set(['DET', 'ADJ', 'ADV', 'AUX', 'PART', 'PRON', 'SCONJ', 'CCONJ', 'NUM']);
const RELATION_CLUSTERS: Record<string, string> = {
  say: 'state', declare: 'state', announce: 'state', state: 'state', tell: 'state',
  visit: 'visit', tour: 'visit',
  defeat: 'defeat', beat: 'defeat', conquer: 'defeat',
  sign: 'sign', ratify: 'sign',
  attack: 'attack', invade: 'attack', strike: 'attack',
  join: 'join', enter: 'join',
  lead: 'lead', head: 'lead', command: 'lead', govern: 'lead', rule: 'lead',
  meet: 'meet', receive: 'meet',
  support: 'support', help: 'support', aid: 'support', assist: 'support',
};

/** Cluster of a relation key: its head verb mapped through a small synonym table. */
export function relationCluster(relation: string): string {
  const head = relation.split(' ')[0] ?? relation;
  const c = RELATION_CLUSTERS[head];
  return c ? relation.replace(head, c) : relation;
}

const SCALE: Record<string, number> = { thousand: 1e3, million: 1e6, billion: 1e9, trillion: 1e12 };

/** Parse `$2.5 million`, `12 percent`, `1,200` into a value; null when no digits are written. */
export function parseQuantity(s: string): number | null {
  const m = /(-?\d[\d,]*(?:\.\d+)?)/.exec(s);
  if (!m) return parseNumberWords(s);
  let v = Number(m[1]!.replace(/,/g, ''));
  if (!Number.isFinite(v)) return null;
  const scale = /\b(thousand|million|billion|trillion)\b/i.exec(s.slice(m.index + m[0].length));
  if (scale) v *= SCALE[scale[1]!.toLowerCase()] ?? 1;
  return v;
}

const UNITS: Record<string, number> = {
  zero: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, eleven: 11, twelve: 12,
  thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19,
  twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90,
};

/** "two thousand five hundred", "forty-two", "a hundred" → the number; null when it is not all number words. */
export function parseNumberWords(s: string): number | null {
  const words = s.toLowerCase().replace(/-/g, ' ').split(/\s+/).filter((w) => w && w !== 'and');
  if (words.length === 0) return null;
  let total = 0;
  let current = 0;
  let seen = false;
  for (const [i, w] of words.entries()) {
    if (w === 'a' && i === 0) {
      current = 1;
      continue;
    }
    if (w in UNITS) {
      current += UNITS[w]!;
      seen = true;
    } else if (w === 'hundred') {
      current = (current || 1) * 100;
      seen = true;
    } else if (w in SCALE) {
      total += (current || 1) * SCALE[w]!;
      current = 0;
      seen = true;
    } else return null;
  }
  return seen ? total + current : null;
}

/** Suffixes of ordinals: 1st, 2nd, 3rd, 4th, and the older 2d, 3d, 22d. */
const ORDINAL_SUFFIX = /^(?:st|nd|rd|th|d)\.?$/i;
const ORDINAL_WRITTEN = /\d(?:st|nd|rd|th|d)\.?$/i;

/**
 * wink's tokenizer splits words at letters outside Latin-1 ("Nguyễn" → "Nguy", "ễ", "n"). It is given a copy
 * of the text in which every such letter or combining mark is an `X` (upper case) or `x` of the same length,
 * so words stay whole, capitals stay capitals, and every offset still points into the real text.
 */
function latinShadow(text: string): string {
  return text.replace(/[\p{L}\p{M}]/gu, (ch) => (ch.charCodeAt(0) <= 0xff ? ch : (/[\p{Lu}\p{Lt}]/u.test(ch) ? 'X' : 'x').repeat(ch.length)));
}

interface Tok {
  value: string;
  start: number;
  end: number;
  pos: string;
  lemma: string;
}

/** Offline extraction of one document. */
export function extractDocument(d: SourceDocument): Extraction {
  const mentions: Mention[] = [];
  const relations: RelationFact[] = [];
  const numbers: NumericFact[] = [];
  const docEntity: EntityRef = { name: d.title, type: 'document', key: `doc:${d.id}` };

  // 1. The header: one fact per `Key: value` line, evidence the line itself.
  let pos = 0;
  for (const line of d.text.slice(0, d.headerEnd).split('\n')) {
    const m = /^(\p{L}[\p{L}\p{M}\p{N}_ -]{0,40}):\s+(.+)$/u.exec(line);
    if (m) {
      const key = m[1]!.toLowerCase();
      const value = m[2]!.trim();
      const vStart = pos + line.indexOf(value, m[1]!.length + 1);
      const span = { doc: d.id, start: pos, end: pos + line.length };
      if (/^-?\d+(\.\d+)?$/.test(value)) {
        numbers.push({ subject: docEntity, label: d.title, attribute: key, value: Number(value), unit: key === 'year' ? 'year' : '', span, valueSpan: { doc: d.id, start: vStart, end: vStart + value.length } });
      } else {
        const obj = { name: value, type: key };
        relations.push({ subject: docEntity, object: obj, relation: key, surface: key, span });
        mentions.push({ ...obj, span: { doc: d.id, start: vStart, end: vStart + value.length } });
      }
    }
    pos += line.length + 1;
  }

  // 2. The body through wink-nlp; token offsets rebuilt from values and preceding spaces.
  const body = d.text.slice(d.headerEnd);
  tableNumbers(d, numbers);
  if (body.trim().length === 0 || d.source.toLowerCase().endsWith('.csv')) return { doc: d.id, mentions, relations, numbers };
  const its = nlp().its;
  const doc = nlp().readDoc(latinShadow(body));
  const values = doc.tokens().out(its.value) as string[];
  const spaces = doc.tokens().out(its.precedingSpaces) as string[];
  const posTags = doc.tokens().out(its.pos) as string[];
  const lemmas = doc.tokens().out(its.lemma as Parameters<ReturnType<typeof doc.tokens>['out']>[0]) as string[];
  const toks: Tok[] = [];
  let off = d.headerEnd;
  for (let i = 0; i < values.length; i++) {
    off += (spaces[i] ?? '').length;
    const shadow = values[i] ?? '';
    // The real text at the token's place; a word whose letters were shadowed is its own lemma.
    const v = d.text.slice(off, off + shadow.length);
    toks.push({ value: v, start: off, end: off + v.length, pos: posTags[i] ?? 'X', lemma: (v === shadow ? (lemmas[i] ?? v) : v).toLowerCase() });
    off += v.length;
  }
  const sentences = doc.sentences().out(its.span) as unknown as Array<[number, number]>;
  const sentenceOf = new Int32Array(toks.length);
  sentences.forEach(([a, b], si) => {
    for (let t = a; t <= b; t++) sentenceOf[t] = si;
  });
  const sentSpan = (si: number) => {
    const [a, b] = sentences[si]!;
    return { doc: d.id, start: toks[a]!.start, end: toks[b]!.end };
  };

  // 3. Names: runs of proper nouns, joined by a single "of" (Department of War), typed by cue words.
  interface Chunk { from: number; to: number; ref: EntityRef }
  const chunksBySentence = new Map<number, Chunk[]>();
  for (let i = 0; i < toks.length; i++) {
    if (toks[i]!.pos !== 'PROPN') continue;
    let j = i;
    // A capitalized word tagged as an article right after a name, mid-sentence and not opening a noun phrase,
    // is part of the name ("Nguyễn Văn An met …"), not an article ("… Assistance A bill").
    const nameArticle = (k: number) =>
      toks[k]!.pos === 'DET' && /^\p{Lu}/u.test(toks[k]!.value) && d.text[toks[k]!.start - 1] === ' ' && toks[k]!.start === toks[k - 1]!.end + 1 && sentenceOf[k] === sentenceOf[k - 1] &&
      !(toks[k + 1] && sentenceOf[k + 1] === sentenceOf[k] && NOUN_PHRASE_POS.has(toks[k + 1]!.pos));
    while (j + 1 < toks.length && (toks[j + 1]!.pos === 'PROPN' || (toks[j]!.pos === 'PROPN' && nameArticle(j + 1)) || (toks[j + 1]!.lemma === 'of' && toks[j + 2]?.pos === 'PROPN' && sentenceOf[j + 2] === sentenceOf[i]))) j++;
    let from = i;
    // Sentence openers and list numerals that the tagger took for names ("Much", "I.") are not part of them.
    while (from <= j && (OPENERS.has(toks[from]!.lemma) || /^[IVX]+\.$/.test(toks[from]!.value))) from++;
    let title = false;
    while (from <= j && PERSON_TITLES.has(toks[from]!.lemma)) {
      title = true;
      from++;
    }
    // A possessive ending ("Green's") is not part of the name.
    let chunkEnd = j;
    if (chunkEnd > from && /^['’]s$/.test(toks[chunkEnd]!.value)) chunkEnd--;
    i = j;
    if (from > chunkEnd) continue;
    const words = toks.slice(from, chunkEnd + 1);
    const lastWord = words[words.length - 1]!;
    const nameEnd = /\p{L}['’]s$/u.test(lastWord.value) ? lastWord.end - 2 : lastWord.end;
    const surface = d.text.slice(words[0]!.start, nameEnd);
    const lower = words.map((w) => w.lemma);
    if (words.length === 1 && (NOT_NAMES.has(lower[0]!) || surface.length < 3 || surface === surface.toUpperCase())) continue;
    if (!/^\p{Lu}/u.test(surface) || /[^\p{L}\p{M}\p{N} .'&-]/u.test(surface)) continue;
    // Headings in capitals ("ECONOMIC STRENGTH") are not names.
    if (/(?<![\p{L}\p{M}])(?:\p{Lu}\p{M}*){4,}(?![\p{L}\p{M}])/u.test(surface)) continue;
    const last = lower[lower.length - 1]!;
    let type = 'name';
    if (title) type = 'person';
    else if (lower.some((w) => ORG_HEADS.has(w))) type = 'organization';
    else if (PLACE_HEADS.has(last) || lower.some((w) => PLACE_WORDS.has(w)) || (words.length === 1 && PLACE_PREPS.has(toks[from - 1]?.lemma ?? ''))) type = 'place';
    const ref = { name: surface, type };
    mentions.push({ ...ref, span: { doc: d.id, start: words[0]!.start, end: nameEnd } });
    const si = sentenceOf[from]!;
    const list = chunksBySentence.get(si) ?? [];
    list.push({ from, to: chunkEnd, ref });
    chunksBySentence.set(si, list);
  }

  // 4. Subject–verb–object: two names in one sentence with 1–6 words between them, a verb first among them,
  //    and no punctuation: "Lincoln signed a treaty with Mexico" → (Lincoln, sign treaty with, Mexico).
  for (const [si, chunks] of chunksBySentence) {
    for (let k = 0; k + 1 < chunks.length; k++) {
      const a = chunks[k]!;
      const b = chunks[k + 1]!;
      // The subject must not itself be the object of a preposition ("of the Treasury will …").
      // A lone capitalized word of unknown type as subject is often just a sentence opening.
      if (!isDistinctive(a.ref) || b.ref.name.length < 3) continue;
      const before = toks[a.from - 1];
      if (before && (before.pos === 'ADP' || before.pos === 'DET' || before.pos === 'PART')) continue;
      let between = toks.slice(a.to + 1, b.from);
      while (between.length > 0 && between[between.length - 1]!.pos === 'DET') between = between.slice(0, -1);
      if (between.length < 1 || between.length > 5) continue;
      if (between.some((t) => t.pos === 'PUNCT' || t.pos === 'PROPN' || t.pos === 'SPACE' || t.pos === 'PRON' || t.pos === 'SCONJ' || t.pos === 'CCONJ' || t.pos === 'DET' && t !== between[between.length - 1])) continue;
      if (!(between[0]!.pos === 'VERB' || between[0]!.pos === 'AUX' || between[0]!.pos === 'ADV')) continue;
      const firstContent = between.find((t) => t.pos !== 'AUX' && t.pos !== 'ADV');
      if (!firstContent || firstContent.pos !== 'VERB' || !/(ed|s)$/.test(firstContent.value) && between[0]!.pos !== 'AUX') continue;
      if (between.some((t) => t.lemma === 'not' || t.lemma === "n't" || MODALS.has(t.lemma.replace(/'ll$/, 'will')))) continue;
      if (WEAK_VERBS.has(firstContent.lemma)) continue;
      const key = between.filter((t) => !RELATION_SKIP_POS.has(t.pos)).map((t) => t.lemma).join(' ');
      if (key.length === 0) continue;
      const surface = d.text.slice(between[0]!.start, between[between.length - 1]!.end);
      relations.push({ subject: a.ref, object: b.ref, relation: key, surface, span: sentSpan(si) });
    }
  }

  // 5. Numbers and years from wink's entities, each with its sentence as evidence and a cloze label.
  const ents = doc.entities().out(its.detail) as unknown as Array<{ value: string; type: string }>;
  const entSpans = doc.entities().out(its.span) as unknown as Array<[number, number]>;
  ents.forEach((e, k) => {
    const [a, b] = entSpans[k]!;
    const vs = toks[a]!.start;
    const ve = toks[b]!.end;
    const written = d.text.slice(vs, ve);
    // An ordinal ("the 3d of March", "22d", "2nd session") is a day or a rank, never a quantity; the tokenizer
    // may keep its suffix on the number or split it off as the next word.
    const suffix = toks[b + 1];
    if (ORDINAL_WRITTEN.test(written) || (suffix && suffix.start === ve && ORDINAL_SUFFIX.test(suffix.value))) return;
    if (!/\d/.test(written) && (e.type !== 'CARDINAL' && e.type !== 'MONEY' || (parseNumberWords(written) ?? 0) < 2)) return;
    const si = sentenceOf[a]!;
    const span = sentSpan(si);
    if (span.end - span.start > 600) return;
    let attribute: string;
    let unit: string;
    let value: number | null;
    if (e.type === 'DATE') {
      const y = /\b(1[0-9]{3}|20[0-9]{2})\b/.exec(written);
      if (!y || written.trim() !== y[1]) return;
      attribute = 'year';
      unit = 'year';
      value = Number(y[1]);
    } else if (e.type === 'MONEY') {
      attribute = 'amount of money';
      unit = /\$|dollar/i.test(written) ? 'dollars' : /£|pound/i.test(written) ? 'pounds' : 'money';
      value = parseQuantity(written);
    } else if (e.type === 'PERCENT') {
      attribute = 'percentage';
      unit = 'percent';
      value = parseQuantity(written);
    } else if (e.type === 'CARDINAL') {
      // "Section 8", "Article IV 12": a number after a capitalized word is a label, not a quantity.
      const prev = toks[a - 1];
      if (prev && /^\p{Lu}/u.test(prev.value) && (prev.pos === 'PROPN' || prev.pos === 'NOUN')) return;
      const next = toks[b + 1];
      // A unit is a word: a single letter ("5 d", "3 m") is too ambiguous to count.
      if (!next || next.pos !== 'NOUN' || /\d/.test(next.value) || next.lemma.replace(/[^\p{L}]/gu, '').length < 2) return;
      attribute = `number of ${next.lemma}s`.replace(/ss$/, 's');
      unit = next.lemma;
      value = parseQuantity(written);
      if (value !== null && value >= 1000 && value <= 2100 && /^\d{4}$/.test(written)) return;
    } else return;
    if (value === null) return;
    const sentence = d.text.slice(span.start, span.end);
    const rel = vs - span.start;
    // The cloze: up to ~140 characters either side of the number, cut at word boundaries.
    let from = Math.max(0, rel - 140);
    if (from > 0) from = sentence.indexOf(' ', from) + 1;
    let to = Math.min(sentence.length, rel + written.length + 140);
    if (to < sentence.length) to = Math.max(rel + written.length, sentence.lastIndexOf(' ', to));
    const label = `${from > 0 ? '…' : ''}${sentence.slice(from, rel)}___${sentence.slice(rel + written.length, to)}${to < sentence.length ? '…' : ''}`.replace(/\s+/g, ' ');
    numbers.push({ label, attribute, value, unit, span, valueSpan: { doc: d.id, start: vs, end: ve } });
  });

  return { doc: d.id, mentions, relations, numbers };
}

/** Numeric cells of the document's tables as facts: subject the row's label cell, attribute the column header. */
function tableNumbers(d: SourceDocument, out: NumericFact[]): void {
  for (const t of d.tables) {
    const numericCols = t.header.map((_, c) => t.rows.filter((r) => parseCellNumber(r.cells[c] ?? '') !== null).length >= Math.ceil(t.rows.length * 0.8));
    const labelCol = numericCols.findIndex((isNum) => !isNum);
    if (labelCol < 0) continue;
    for (const r of t.rows) {
      const label = r.cells[labelCol] ?? '';
      if (label.length === 0) continue;
      const rowText = d.text.slice(r.start, r.end);
      let searchFrom = 0;
      r.cells.forEach((cell, c) => {
        const at = rowText.indexOf(cell, searchFrom);
        if (at >= 0) searchFrom = at + cell.length;
        const v = parseCellNumber(cell);
        if (!numericCols[c] || v === null || at < 0 || cell.length === 0) return;
        out.push({
          subject: { name: label, type: 'row' },
          label,
          attribute: t.header[c] ?? `column ${c + 1}`,
          value: v,
          unit: '',
          span: { doc: d.id, start: r.start, end: r.end },
          valueSpan: { doc: d.id, start: r.start + at, end: r.start + at + cell.length },
        });
      });
    }
  }
}
