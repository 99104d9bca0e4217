import { createRequire } from 'node:module';

import type Database from 'better-sqlite3';
import type { SourceDocument } from './documents.js';
import type { EntityRef, Extraction } from './types.js';
import { relationCluster } from './extract.js';
import { normalize } from './text.js';
import { SynthError } from './errors.js';

// better-sqlite3 is an optional dependency (it compiles from source where no prebuilt binary matches): load it
// when a graph is opened, and say what to do when it is missing.
function openDatabase(file: string): Database.Database {
  let Sqlite: typeof Database;
  try {
    Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
  } catch (err) {
    throw new SynthError(
      `synthesis needs the optional dependency better-sqlite3, which is not installed or did not build (${(err as Error).message.split('\n')[0]}). ` +
        'Install a C++ toolchain and python3, then run `npm install better-sqlite3@12`.',
    );
  }
  try {
    return new Sqlite(file);
  } catch (err) {
    throw new SynthError(`${file}: cannot open the knowledge graph (${(err as Error).message}); check the work folder (--work), or choose another`);
  }
}

/**
 * The knowledge graph, in SQLite. Entities are merged across documents by normalized name (a person's bare
 * surname becomes an alias of the one full name that ends with it); entity–entity facts carry a relation key
 * and its cluster; numeric facts (numbers in text, table cells, header fields) form the table `numeric_facts`
 * that the numerical composer queries; each table found in a document is also loaded as its own table
 * `doc_table_<n>`. Every fact keeps its evidence span. The same file holds the pipeline's stage marks and the
 * LLM cache, so one file is a run's whole state.
 */
export class KnowledgeGraph {
  readonly db: Database.Database;

  constructor(file: string) {
    const db = openDatabase(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
    } catch (e) {
      db.close();
      throw new SynthError(
        `${file}: cannot be used as a knowledge graph (${(e as Error).message}); delete it (or its work folder) to start over, or choose another work folder with --work`,
      );
    }
    this.db = db;
  }

  close(): void {
    this.db.close();
  }

  stageDone(name: string): boolean {
    return this.db.prepare('SELECT 1 FROM stages WHERE name = ?').get(name) !== undefined;
  }

  markStage(name: string, info: unknown = null): void {
    this.db.prepare('INSERT OR REPLACE INTO stages(name, info) VALUES (?, ?)').run(name, JSON.stringify(info));
  }

  stageInfo<T>(name: string): T | null {
    const r = this.db.prepare('SELECT info FROM stages WHERE name = ?').get(name) as { info: string } | undefined;
    return r ? (JSON.parse(r.info) as T) : null;
  }

  // ---- documents ----

  saveDocuments(docs: readonly SourceDocument[]): void {
    const ins = this.db.prepare('INSERT OR REPLACE INTO documents(id, ord, title, source, text, meta, header_end, passages, tables) VALUES (?,?,?,?,?,?,?,?,?)');
    this.db.transaction(() => {
      this.db.exec('DELETE FROM documents');
      docs.forEach((d, i) => ins.run(d.id, i, d.title, d.source, d.text, JSON.stringify(d.meta), d.headerEnd, JSON.stringify(d.passages), JSON.stringify(d.tables)));
    })();
  }

  documents(): SourceDocument[] {
    const rows = this.db.prepare('SELECT * FROM documents ORDER BY ord').all() as Array<Record<string, string | number>>;
    return rows.map((r) => ({
      id: String(r.id),
      title: String(r.title),
      source: String(r.source),
      text: String(r.text),
      meta: JSON.parse(String(r.meta)) as Record<string, string | number>,
      headerEnd: Number(r.header_end),
      passages: JSON.parse(String(r.passages)) as SourceDocument['passages'],
      tables: JSON.parse(String(r.tables)) as SourceDocument['tables'],
    }));
  }

  // ---- facts ----

  private statements: Record<'find' | 'insert' | 'type' | 'alias', Database.Statement> | null = null;

  private entityId(ref: EntityRef): number {
    this.statements ??= {
      find: this.db.prepare('SELECT id FROM entities WHERE key = ?'),
      insert: this.db.prepare('INSERT INTO entities(key, name, type) VALUES (?, ?, ?)'),
      type: this.db.prepare('INSERT INTO entity_types(entity, type, n) VALUES (?, ?, 1) ON CONFLICT(entity, type) DO UPDATE SET n = n + 1'),
      alias: this.db.prepare('INSERT OR IGNORE INTO aliases(entity, alias) VALUES (?, ?)'),
    };
    const st = this.statements;
    const key = ref.key ?? normalize(ref.name);
    const found = st.find.get(key) as { id: number } | undefined;
    const id = found ? found.id : Number(st.insert.run(key, ref.name, ref.type).lastInsertRowid);
    st.type.run(id, ref.type);
    st.alias.run(id, ref.name);
    return id;
  }

  /** Add one document's extraction; a document already added is replaced (so a re-run after a crash is safe). */
  addExtraction(ex: Extraction): void {
    this.db.transaction(() => {
      for (const t of ['mentions', 'facts', 'numeric_facts']) this.db.prepare(`DELETE FROM ${t} WHERE doc = ?`).run(ex.doc);
      const insMention = this.db.prepare('INSERT INTO mentions(entity, doc, start, end) VALUES (?,?,?,?)');
      for (const m of ex.mentions) insMention.run(this.entityId(m), m.span.doc, m.span.start, m.span.end);
      const insFact = this.db.prepare('INSERT INTO facts(subject, relation, cluster, surface, object, doc, start, end) VALUES (?,?,?,?,?,?,?,?)');
      for (const f of ex.relations) {
        const s = this.entityId(f.subject);
        const o = this.entityId(f.object);
        if (s !== o) insFact.run(s, f.relation, relationCluster(f.relation), f.surface, o, f.span.doc, f.span.start, f.span.end);
      }
      const insNum = this.db.prepare('INSERT INTO numeric_facts(subject, label, attribute, value, unit, doc, start, end, vstart, vend) VALUES (?,?,?,?,?,?,?,?,?,?)');
      for (const n of ex.numbers) {
        insNum.run(n.subject ? this.entityId(n.subject) : null, n.label, n.attribute, n.value, n.unit, n.span.doc, n.span.start, n.span.end, n.valueSpan.start, n.valueSpan.end);
      }
    })();
  }

  /**
   * After all documents: give each entity its most frequent specific type, fold a person's bare surname into
   * the single full name ending with it, and load document tables as SQL tables.
   */
  finalize(docs: readonly SourceDocument[]): void {
    this.db.transaction(() => {
      this.db.exec(`
        UPDATE entities SET type = (
          SELECT type FROM entity_types t WHERE t.entity = entities.id
          ORDER BY (type = 'name'), n DESC, type LIMIT 1)`);
      const persons = this.db.prepare("SELECT id, name FROM entities WHERE type = 'person' AND name LIKE '% %'").all() as Array<{ id: number; name: string }>;
      const bySurname = new Map<string, number[]>();
      for (const p of persons) {
        const surname = normalize(p.name.split(' ').pop() ?? '');
        (bySurname.get(surname) ?? bySurname.set(surname, []).get(surname)!).push(p.id);
      }
      const singles = this.db.prepare("SELECT id, key FROM entities WHERE type IN ('person', 'name') AND key NOT LIKE '% %'").all() as Array<{ id: number; key: string }>;
      for (const s of singles) {
        const full = bySurname.get(s.key);
        if (!full || full.length !== 1 || full[0] === s.id) continue;
        this.mergeInto(s.id, full[0]!);
      }
      this.db.exec("DELETE FROM doc_tables; ");
      let n = 0;
      for (const d of docs) {
        for (const t of d.tables) {
          const name = `doc_table_${++n}`;
          const cols = t.header.map((h, i) => `"c${i + 1}_${h.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 40)}"`);
          this.db.exec(`DROP TABLE IF EXISTS ${name}; CREATE TABLE ${name}(row_start INTEGER, row_end INTEGER, ${cols.map((c) => `${c}`).join(', ')})`);
          const ins = this.db.prepare(`INSERT INTO ${name} VALUES (${['?', '?', ...cols.map(() => '?')].join(',')})`);
          for (const r of t.rows) ins.run(r.start, r.end, ...r.cells);
          this.db.prepare('INSERT INTO doc_tables(name, doc, header) VALUES (?,?,?)').run(name, d.id, JSON.stringify(t.header));
        }
      }
    })();
  }

  private mergeInto(from: number, to: number): void {
    for (const sql of [
      'UPDATE mentions SET entity = :to WHERE entity = :from',
      'UPDATE facts SET subject = :to WHERE subject = :from',
      'UPDATE facts SET object = :to WHERE object = :from',
      'UPDATE numeric_facts SET subject = :to WHERE subject = :from',
      'INSERT OR IGNORE INTO aliases(entity, alias) SELECT :to, alias FROM aliases WHERE entity = :from',
      'DELETE FROM aliases WHERE entity = :from',
      'DELETE FROM entity_types WHERE entity = :from',
      'DELETE FROM entities WHERE id = :from',
    ]) this.db.prepare(sql).run({ from, to });
    this.db.prepare('DELETE FROM facts WHERE subject = object').run();
  }

  counts(): Record<string, number> {
    const c = (t: string) => (this.db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
    return { documents: c('documents'), entities: c('entities'), mentions: c('mentions'), facts: c('facts'), numeric_facts: c('numeric_facts'), doc_tables: c('doc_tables') };
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS stages(name TEXT PRIMARY KEY, info TEXT);
CREATE TABLE IF NOT EXISTS documents(id TEXT PRIMARY KEY, ord INTEGER, title TEXT, source TEXT, text TEXT, meta TEXT,
  header_end INTEGER, passages TEXT, tables TEXT);
CREATE TABLE IF NOT EXISTS entities(id INTEGER PRIMARY KEY, key TEXT UNIQUE, name TEXT, type TEXT);
CREATE TABLE IF NOT EXISTS entity_types(entity INTEGER, type TEXT, n INTEGER, PRIMARY KEY(entity, type));
CREATE TABLE IF NOT EXISTS aliases(entity INTEGER, alias TEXT, PRIMARY KEY(entity, alias));
CREATE TABLE IF NOT EXISTS mentions(entity INTEGER, doc TEXT, start INTEGER, end INTEGER);
CREATE INDEX IF NOT EXISTS mentions_entity ON mentions(entity);
CREATE INDEX IF NOT EXISTS mentions_doc ON mentions(doc);
CREATE TABLE IF NOT EXISTS facts(id INTEGER PRIMARY KEY, subject INTEGER, relation TEXT, cluster TEXT, surface TEXT,
  object INTEGER, doc TEXT, start INTEGER, end INTEGER);
CREATE INDEX IF NOT EXISTS facts_doc ON facts(doc);
CREATE TABLE IF NOT EXISTS relation_templates(relation TEXT PRIMARY KEY, forward TEXT, inverse TEXT);
CREATE TABLE IF NOT EXISTS numeric_facts(id INTEGER PRIMARY KEY, subject INTEGER, label TEXT, attribute TEXT, value REAL,
  unit TEXT, doc TEXT, start INTEGER, end INTEGER, vstart INTEGER, vend INTEGER);
CREATE INDEX IF NOT EXISTS numeric_facts_doc ON numeric_facts(doc);
CREATE TABLE IF NOT EXISTS doc_tables(name TEXT PRIMARY KEY, doc TEXT, header TEXT);
CREATE TABLE IF NOT EXISTS llm_cache(key TEXT PRIMARY KEY, response TEXT);
`;
