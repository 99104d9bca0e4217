import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { synthesize } from '../../src/synth/pipeline.js';
import { austenDir, openGraphDb, readLines, tmpDir } from './helpers.js';
import { verifyQuestion } from './verify.js';

const LONG = Boolean(process.env.QWENLONG_TEST_LONG);
const NOVELS = LONG ? ['emma', 'persuasion', 'northangerabbey', 'prideprejudice'] : ['persuasion', 'northangerabbey'];
const present = fs.existsSync(austenDir) && NOVELS.every((n) => fs.existsSync(path.join(austenDir, `${n}.txt`)));
if (!present) console.log(`skipping the Austen tests: ${austenDir} is absent`);

/** Cut each novel into parts of ~20,000 characters at paragraph breaks, so a context holds several. */
function splitNovels(dir: string): string[] {
  const files: string[] = [];
  for (const n of NOVELS) {
    const text = fs.readFileSync(path.join(austenDir, `${n}.txt`), 'utf8').replace(/\r\n?/g, '\n');
    const paras = text.split(/\n\s*\n/);
    let part = '';
    let k = 0;
    const flush = () => {
      if (part.trim().length === 0) return;
      const f = path.join(dir, `${n}-${String(++k).padStart(2, '0')}.txt`);
      fs.writeFileSync(f, `${n} part ${k}\n\n${part.trim()}\n`);
      files.push(f);
      part = '';
    };
    for (const p of paras) {
      part += `${p}\n\n`;
      if (part.length > 20_000) flush();
    }
    flush();
  }
  return files;
}

describe.skipIf(!present)('synth on Austen novels', () => {
  const dir = present ? tmpDir('austen') : '';
  afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('makes questions whose answers re-derive from the text', async () => {
    const files = splitNovels(dir);
    const out = path.join(dir, 'q.jsonl');
    const target = LONG ? 16000 : 6000;
    const s = await synthesize({ inputs: files, out, count: LONG ? 70 : 14, targetTokens: target, seed: 'austen' });
    const qs = readLines(out);
    expect(qs.length).toBe(s.written);
    expect(qs.length).toBeGreaterThanOrEqual(LONG ? 70 : 14);
    expect(new Set(qs.map((q) => q.task)).size).toBeGreaterThanOrEqual(5);
    const db = openGraphDb(`${out}.work`);
    try {
      for (const q of qs) verifyQuestion(q, db, target);
    } finally {
      db.close();
    }
  }, LONG ? 900_000 : 120_000);
});
