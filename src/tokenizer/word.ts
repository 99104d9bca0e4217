/**
 * A word-level tokenizer from a vocabulary list, for models trained from scratch on synthetic worlds: text is split
 * into words and single punctuation marks (whitespace dropped), each looked up exactly; words outside the vocabulary
 * map to `<unk>`. Decoding joins words with spaces and attaches punctuation to the word before it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { PLAIN_CHAT_TEMPLATE, renderChat, type ChatMessage, type TextTokenizer } from './hf.js';

export const WORD_SPECIALS = ['<pad>', '<s>', '</s>', '<unk>'] as const;

export class WordTokenizer implements TextTokenizer {
  readonly words: readonly string[];
  readonly #ids = new Map<string, number>();
  readonly bosId = 1;
  readonly eosIds = [2];

  /** `vocabulary`: the words (the four specials <pad> <s> </s> <unk> come first, added when absent). */
  constructor(vocabulary: readonly string[]) {
    if (!Array.isArray(vocabulary)) throw new TypeError('WordTokenizer: vocabulary must be an array of strings');
    const words: string[] = [...WORD_SPECIALS];
    words.forEach((w, i) => this.#ids.set(w, i));
    for (const w of vocabulary) {
      if (typeof w !== 'string' || w.length === 0 || /\s/.test(w)) throw new RangeError(`WordTokenizer: ${JSON.stringify(w)} is not a word (non-empty, no whitespace)`);
      // duplicates found through the map (a search of the list made a corpus vocabulary quadratic)
      if (!this.#ids.has(w)) this.#ids.set(w, words.push(w) - 1);
    }
    this.words = words;
  }

  /** The vocabulary of a corpus: every word and punctuation mark in it, most frequent first. */
  static fromCorpus(texts: readonly string[], maxWords = Infinity): WordTokenizer {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of WordTokenizer.split(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const words = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([w]) => w);
    return new WordTokenizer(words.slice(0, maxWords));
  }

  /** Writes the vocabulary as `words.json` ({ "type": "word", "words": [...] }), which loadTokenizer reads. */
  save(path: string): void {
    writeFileSync(path, `${JSON.stringify({ type: 'word', words: this.words }, null, 0)}\n`);
  }

  /** Reads a `words.json` file written by save(). */
  static fromFile(path: string): WordTokenizer {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new RangeError(`${path}: not a word-tokenizer file (${(e as Error).message})`);
    }
    const o = raw as { type?: unknown; words?: unknown };
    if (o?.type !== 'word' || !Array.isArray(o.words)) throw new RangeError(`${path}: not a word-tokenizer file (expected { "type": "word", "words": [...] })`);
    const words = o.words as unknown[];
    WORD_SPECIALS.forEach((w, i) => {
      if (words[i] !== w) throw new RangeError(`${path}: word ${i} must be ${w}`);
    });
    return new WordTokenizer(words.slice(WORD_SPECIALS.length) as string[]);
  }

  static split(text: string): string[] {
    return text.match(/[\p{L}\p{N}_'-]+|[^\s\p{L}\p{N}_'-]/gu) ?? [];
  }

  get vocabSize(): number {
    return this.words.length;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError('WordTokenizer.encode: text must be a string');
    const ids = WordTokenizer.split(text).map((w) => this.#ids.get(w) ?? 3);
    if (opts.bos) ids.unshift(this.bosId);
    if (opts.eos) ids.push(this.eosIds[0]!);
    return ids;
  }

  decode(ids: readonly number[]): string {
    let out = '';
    for (const id of ids) {
      if (id === 0 || id === 1 || id === 2) continue;
      const w = this.words[id];
      if (w === undefined) throw new RangeError(`WordTokenizer.decode: token ${id} is outside [0, ${this.vocabSize})`);
      out += out.length === 0 || /^[^\p{L}\p{N}_'-]$/u.test(w) ? w : ` ${w}`;
    }
    return out;
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    return renderChat(PLAIN_CHAT_TEMPLATE, messages, opts.addGenerationPrompt ?? true);
  }
}
