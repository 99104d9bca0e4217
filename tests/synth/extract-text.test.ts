// The offline extractor on names written outside Latin-1 and on old-style ordinals ("the 3d of March").
import { describe, expect, it } from 'vitest';
import { extractDocument } from '../../src/synth/extract.js';
import { loadDocuments } from '../../src/synth/documents.js';
import { estimateTokenCounter } from '../../src/synth/tokenizer.js';
import { normalize, findWord } from '../../src/synth/text.js';
import type { SourceDocument } from '../../src/synth/documents.js';
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir } from './helpers.js';

/** A document: a title line, then `body`. */
function doc(body: string, header = ''): SourceDocument {
  const text = `Report\n${header}\n${body}`;
  return { id: 'r', title: 'Report', source: 'r.txt', text, meta: {}, headerEnd: text.indexOf(body), passages: [], tables: [] };
}

describe('names outside Latin-1', () => {
  it('keeps every letter of Vietnamese, Polish, Cyrillic and decomposed names, with exact spans', () => {
    const d = doc('President Nguyễn Văn An met Đặng Thị Ngọc in Hà Nội. Łukasz Wójcik visited Kraków with Zoë Müller. Governor Иван Петров visited Москва in 1901. Mr. Jose\u0301 Marti\u0301 arrived in Zürich.');
    const ex = extractDocument(d);
    const names = ex.mentions.map((m) => m.name);
    expect(names).toEqual(['Nguyễn Văn An', 'Đặng Thị Ngọc', 'Hà Nội', 'Łukasz Wójcik', 'Kraków', 'Zoë Müller', 'Иван Петров', 'Москва', 'Jose\u0301 Marti\u0301', 'Zürich']);
    for (const m of ex.mentions) expect(d.text.slice(m.span.start, m.span.end)).toBe(m.name);
    const types = new Map(ex.mentions.map((m) => [m.name, m.type]));
    expect(types.get('Иван Петров')).toBe('person');
    expect(types.get('Jose\u0301 Marti\u0301')).toBe('person');
    expect(ex.relations.map((r) => [r.subject.name, r.relation, r.object.name])).toContainEqual(['Иван Петров', 'visit', 'Москва']);
    expect(ex.numbers.map((n) => [n.attribute, n.value])).toEqual([['year', 1901]]);
  });

  it('reads header fields whose keys are not ASCII, and skips headings in capitals of any script', () => {
    const d = doc('Tác giả Lê Văn Hưu wrote it. The report of CÔNG ĐOÀN was read by Captain Ilsa Moreno.', 'Năm: 1272\nTác giả: Lê Văn Hưu\n');
    const ex = extractDocument(d);
    expect(ex.numbers.filter((n) => n.attribute === 'năm').map((n) => n.value)).toEqual([1272]);
    expect(ex.relations.filter((r) => r.relation === 'tác giả').map((r) => r.object.name)).toEqual(['Lê Văn Hưu']);
    const names = ex.mentions.map((m) => m.name);
    expect(names).toContain('Ilsa Moreno');
    expect(names.some((n) => n.includes('CÔNG') || n.includes('ĐOÀN'))).toBe(false);
  });

  it('loads a record file in Vietnamese and finds its names', () => {
    const dir = tmpDir('unicode');
    try {
      const f = path.join(dir, 'sử.jsonl');
      fs.writeFileSync(f, `${JSON.stringify({ title: 'Biên niên', năm: 1010, text: 'In that year Emperor Lý Thái Tổ moved the capital to Thăng Long. Later General Trần Hưng Đạo defeated the fleet.' })}\n`);
      const [d] = loadDocuments([f], estimateTokenCounter);
      const ex = extractDocument(d!);
      const names = ex.mentions.map((m) => m.name);
      expect(names).toEqual(expect.arrayContaining(['Lý Thái Tổ', 'Thăng Long', 'Trần Hưng Đạo']));
      expect(names.filter((n) => /Lý|Thăng|Trần/.test(n))).toEqual(['Lý Thái Tổ', 'Thăng Long', 'Trần Hưng Đạo']);
      for (const m of ex.mentions) expect(d!.text.slice(m.span.start, m.span.end)).toBe(m.name);
      expect(ex.numbers.some((n) => n.attribute === 'năm' && n.value === 1010)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('matches whole words with combining marks', () => {
    // "Jose" is not a whole word of "José" written with a combining accent.
    expect(findWord('Mr. Jose\u0301 Marti\u0301 came', 'Jose')).toBe(-1);
    expect(findWord('Mr. Jose\u0301 Marti\u0301 came', 'Jose\u0301')).toBe(4);
    expect(normalize('Đặng Thị Ngọc’s')).toBe('đặng thị ngọc');
  });
});

describe('ordinals are not quantities', () => {
  it('takes no quantity from old-style day ordinals and other ordinals, keeping the years and real counts', () => {
    const d = doc(
      'The treaty was ratified on the 3d of March, 1859, by the Senate. So early as the 22d March, 1794, the 2d session met. ' +
        'On March 3d the House sat. The 92d Congress and the 21st of June passed. On the 2d. Then Congress sent 300 rifles. ' +
        'The mill saved 5 d. A 401k plan holds 12 percent. The army bought 40 horses.',
    );
    const ex = extractDocument(d);
    const found = ex.numbers.map((n) => [n.attribute, n.value, n.unit, d.text.slice(n.valueSpan.start, n.valueSpan.end)]);
    expect(found).toEqual([
      ['year', 1859, 'year', '1859'],
      ['year', 1794, 'year', '1794'],
      ['number of rifles', 300, 'rifle', '300'],
      ['percentage', 12, 'percent', '12 percent'],
      ['number of horses', 40, 'horse', '40'],
    ]);
  });
});
