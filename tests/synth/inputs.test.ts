import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledCorpusDir, expandInputs, loadDocuments } from '../../src/synth/documents.js';
import { extractDocument } from '../../src/synth/extract.js';
import { estimateTokenCounter, loadTokenCounter, loadTokenizerFile } from '../../src/synth/tokenizer.js';
import { KnowledgeGraph } from '../../src/synth/kg.js';
import { synthesize } from '../../src/synth/pipeline.js';
import { readQuestions } from '../../src/synth/schema.js';
import { SynthError } from '../../src/synth/errors.js';
import { openGraphDb, readLines, runCli, tmpDir } from './helpers.js';
import { verifyQuestion } from './verify.js';

const dir = tmpDir('inputs');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, text);
  return f;
};
const counter = estimateTokenCounter;

const MD = `# Harbor report

The Harbor Board of Kestrel met on Monday. Captain Ilsa Moreno inspected the docks.

| Port | Ships | Tonnage |
| --- | --- | --- |
| Kestrel | 42 | 1,200 |
| Varna | 17 | 830 |
| Ostend | 25 | 990 |

Governor Aldo Pike visited Varna in 1887.
`;

describe('documents', () => {
  it('reads txt, md, html, json, jsonl and csv, keeping every span exact', () => {
    write('in/a.md', MD);
    write('in/b.html', '<html><body><h1>Ledger</h1><p>The Mint &amp; Treasury paid 5 clerks.</p><table><tr><th>Item</th><th>Cost</th></tr><tr><td>Ink</td><td>12</td></tr><tr><td>Paper</td><td>30</td></tr><tr><td>Wax</td><td>7</td></tr></table></body></html>');
    write('in/c.json', JSON.stringify([{ title: 'First', year: 1901, text: 'President Ada Marsh signed the Treaty of Lund.' }, { title: 'Second', year: 1902, text: 'Nothing happened.' }]));
    write('in/d.jsonl', `${JSON.stringify({ name: 'Line one', text: 'Alpha beta.' })}\n\n${JSON.stringify({ body: 'Gamma delta.', tag: 'x' })}\n`);
    write('in/e.csv', 'city,population,area\nKestrel,1200,30.5\n"Varna, Old Town",830,12\nOstend,990,20\n');
    write('in/f.txt', 'Plain text here. Another sentence.');
    const docs = loadDocuments([path.join(dir, 'in')], counter);
    expect(docs.map((d) => d.id)).toEqual(['a', 'b', 'c#1', 'c#2', 'd#1', 'd#2', 'e', 'f']);
    const byId = new Map(docs.map((d) => [d.id, d]));
    expect(byId.get('a')!.tables[0]!.header).toEqual(['Port', 'Ships', 'Tonnage']);
    expect(byId.get('b')!.text).toContain('The Mint & Treasury paid 5 clerks.');
    expect(byId.get('b')!.tables[0]!.rows.map((r) => r.cells[0])).toEqual(['Ink', 'Paper', 'Wax']);
    expect(byId.get('c#1')!.text.startsWith('First\nYear: 1901\n\n')).toBe(true);
    expect(byId.get('e')!.tables[0]!.rows[1]!.cells).toEqual(['Varna, Old Town', '830', '12']);
    for (const d of docs) {
      for (const p of d.passages) expect(p.end).toBeGreaterThan(p.start);
      for (const t of d.tables) for (const r of t.rows) expect(d.text.slice(r.start, r.end)).toContain(r.cells[0]!.split(',')[0]!);
      const ex = extractDocument(d);
      for (const m of ex.mentions) expect(d.text.slice(m.span.start, m.span.end)).toBe(m.name);
      for (const n of ex.numbers) expect(d.text.slice(n.span.start, n.span.end)).toContain(d.text.slice(n.valueSpan.start, n.valueSpan.end));
    }
    const a = extractDocument(byId.get('a')!);
    const tonnage = a.numbers.filter((n) => n.attribute === 'Tonnage').map((n) => [n.label, n.value]);
    expect(tonnage).toEqual([['Kestrel', 1200], ['Varna', 830], ['Ostend', 990]]);
    expect(a.mentions.some((m) => m.name === 'Ilsa Moreno' && m.type === 'person')).toBe(true);
    expect(a.relations.some((r) => r.subject.name === 'Aldo Pike' && r.object.name === 'Varna')).toBe(true);
    const c1 = extractDocument(byId.get('c#1')!);
    expect(c1.numbers.some((n) => n.attribute === 'year' && n.value === 1901)).toBe(true);
  });

  it('loads document tables into SQL', () => {
    const docs = loadDocuments([path.join(dir, 'in', 'a.md'), path.join(dir, 'in', 'e.csv')], counter);
    const kg = new KnowledgeGraph(path.join(dir, 'tables.sqlite'));
    try {
      for (const d of docs) kg.addExtraction(extractDocument(d));
      kg.finalize(docs);
      const tables = kg.db.prepare('SELECT name FROM doc_tables ORDER BY name').all() as Array<{ name: string }>;
      expect(tables.length).toBe(2);
      const sum = kg.db.prepare(`SELECT SUM(CAST(c2_Ships AS INTEGER)) AS s FROM ${tables[0]!.name}`).get() as { s: number };
      expect(sum.s).toBe(84);
      const viaFacts = kg.db.prepare("SELECT SUM(value) AS s FROM numeric_facts WHERE attribute = 'Ships'").get() as { s: number };
      expect(viaFacts.s).toBe(84);
    } finally {
      kg.close();
    }
  });

  it('expands globs and rejects what it cannot read, naming the input', () => {
    expect(expandInputs([path.join(dir, 'in', '*.md')])).toEqual([path.join(dir, 'in', 'a.md')]);
    expect(() => expandInputs([path.join(dir, 'nope.txt')])).toThrow(/input .*nope.txt.*no such file/);
    expect(() => expandInputs([path.join(dir, 'in', '*.xyz')])).toThrow(/matches no supported file/);
    write('bad/x.pdf', '%PDF');
    expect(() => expandInputs([path.join(dir, 'bad', 'x.pdf')])).toThrow(/unsupported file type/);
    write('bad/corrupt.jsonl', '{"text":"ok"}\n{"text": "trunc');
    expect(() => loadDocuments([path.join(dir, 'bad', 'corrupt.jsonl')], counter)).toThrow(/corrupt.jsonl:2: not valid JSON/);
    write('bad/notext.json', '{"title":"x"}');
    expect(() => loadDocuments([path.join(dir, 'bad', 'notext.json')], counter)).toThrow(/no string field text/);
    write('bad/empty.txt', '   ');
    expect(() => loadDocuments([path.join(dir, 'bad', 'empty.txt')], counter)).toThrow(SynthError);
  });
});

describe('tokenizers', () => {
  it('loads a tokenizer.json and reports a broken one clearly', () => {
    const qwen = loadTokenCounter();
    if (qwen.exact) {
      // English prose within 5%; the estimate is only a fallback for when no tokenizer is installed.
      const sample = fs.readFileSync(path.join(bundledCorpusDir()!, '1990_george_bush_r.txt'), 'utf8');
      const est = estimateTokenCounter.count(sample);
      const exact = qwen.count(sample);
      expect(Math.abs(est - exact) / exact).toBeLessThan(0.05);
    }
    write('tok/tokenizer.json', '{"version": "1.0", "trunc');
    expect(() => loadTokenizerFile(path.join(dir, 'tok', 'tokenizer.json'))).toThrow(/--tokenizer: .* not a valid tokenizer JSON/);
    expect(() => loadTokenizerFile(path.join(dir, 'missing.json'))).toThrow(/--tokenizer: cannot read/);
  });
});

describe('CLI', () => {
  it('answers bad arguments with errors that name them and writes nothing', async () => {
    const out = path.join(dir, 'cli', 'q.jsonl');
    const cases: Array<[string[], RegExp]> = [
      [['--count', '0', '--out', out], /--count/],
      [['--count', 'ten', '--out', out], /--count/],
      [['--tasks', 'multihop,bogus', '--out', out], /--tasks: unknown task "bogus"/],
      [['--target-tokens', '12', '--out', out], /--target-tokens/],
      [['--depth', '2', '--out', out], /--depth/],
      [['--count', '3'], /--out/],
      [[path.join(dir, 'nothing-here'), '--out', out], /no such file/],
      [['--llm', 'http://127.0.0.1:9', '--out', out], /--llm and --model/],
      [['--world', 'people=x', '--out', out], /--world/],
      [['--tokenizer', path.join(dir, 'missing.json'), '--out', out, '--world'], /--tokenizer/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(re);
    }
    expect(fs.existsSync(out)).toBe(false);
  });

  it('synthesizes a world, writes its vocabulary, prints a summary and validates the file', async () => {
    const out = path.join(dir, 'cli', 'world.jsonl');
    const vocab = path.join(dir, 'cli', 'vocab.txt');
    const r = await runCli(['--world', 'people=20,cities=6,countries=3,organizations=5', '--world-vocab', vocab, '--out', out, '--count', '14', '--target-tokens', '1200', '--seed', '3', '--no-progress']);
    expect(r.stderr).not.toMatch(/error|warning/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote 14 questions/);
    expect(r.stdout).toMatch(/by task: aggregation 2, comparison 2/);
    const words = fs.readFileSync(vocab, 'utf8').trim().split('\n');
    const qs = readLines(out);
    // The closed vocabulary covers every word of the documents and questions.
    const vocabSet = new Set(words);
    for (const q of qs) {
      const missing = `${q.context} ${q.question}`.split(/[^A-Za-z0-9']+/).filter((w) => w && !/^\d+$/.test(w) && !vocabSet.has(w));
      expect(missing).toEqual([]);
    }
    const db = openGraphDb(`${out}.work`);
    for (const q of qs) verifyQuestion(q, db, 1200);
    db.close();
    const v = await runCli(['--validate', out]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/14 valid, 0 invalid/);
    const lines = fs.readFileSync(out, 'utf8').split('\n');
    fs.writeFileSync(path.join(dir, 'cli', 'broken.jsonl'), `${lines[0]}\n{"id": 3}\n${lines[1]!.slice(0, 50)}\n`);
    const b = await runCli(['--validate', path.join(dir, 'cli', 'broken.jsonl')]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/broken.jsonl:2: "id" must be a string/);
    expect(b.stderr).toMatch(/broken.jsonl:3: not valid JSON/);
    expect(() => readQuestions(path.join(dir, 'cli', 'broken.jsonl'))).toThrow(/broken.jsonl:2/);
  });

  it('synthesizes from user files (tables become numerical questions)', async () => {
    const files = Array.from({ length: 6 }, (_, i) =>
      write(`user/r${i}.md`, `# Region ${i}\n\nGovernor Aldo Pike${i} visited Varna${i} in ${1880 + i}. The Harbor Board of Kestrel${i} met on Monday.\n\n| Port | Ships | Tonnage |\n| --- | --- | --- |\n| Kestrel${i} | ${10 + i} | ${100 * (i + 1)} |\n| Varna${i} | ${20 + 2 * i} | ${55 + i} |\n| Ostend${i} | ${5 + 3 * i} | ${70 + 7 * i} |\n\n${'Filler sentence about the sea and its weather. '.repeat(60)}\n`),
    );
    const out = path.join(dir, 'user', 'q.jsonl');
    const s = await synthesize({ inputs: files, out, count: 4, tasks: ['numerical', 'comparison'], targetTokens: 1200, seed: 'u' });
    expect(s.written).toBe(4);
    const db = openGraphDb(`${out}.work`);
    for (const q of readLines(out)) verifyQuestion(q, db, 1200);
    db.close();
  });
});
