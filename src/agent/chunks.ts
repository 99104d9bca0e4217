/**
 * Streaming input for the memory agent: files read piece by piece and cut into chunks of at most about
 * `chunkTokens` tokens at word boundaries. Only the chunk being filled and one read buffer are ever in memory, so
 * the input's size is bounded by the disk, not by RAM.
 */
import { createReadStream } from 'node:fs';

export type DocumentSource = string | Iterable<string> | AsyncIterable<string>;

export interface Chunk {
  index: number;
  text: string;
  /** Tokens counted in the chunk. */
  tokens: number;
  /** Characters of the input consumed so far (this chunk included). */
  chars: number;
}

/** The text of files, in order, streamed (UTF-8), a blank line between two files. */
export async function* readFiles(paths: readonly string[]): AsyncGenerator<string> {
  for (const [i, path] of paths.entries()) {
    if (i > 0) yield '\n\n';
    const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 16 });
    for await (const piece of stream) yield piece as string;
  }
}

async function* pieces(source: DocumentSource): AsyncGenerator<string> {
  if (typeof source === 'string') {
    for (let at = 0; at < source.length; at += 1 << 16) yield source.slice(at, at + (1 << 16));
    return;
  }
  for await (const piece of source as AsyncIterable<string>) {
    if (typeof piece !== 'string') throw new TypeError(`chunkText: the document source yielded ${typeof piece}, not text`);
    yield piece;
  }
}

const isSpace = (c: string): boolean => c === ' ' || c === '\n' || c === '\t' || c === '\r' || c === '\f' || c === '\v';
const isEnd = (c: string): boolean => c === '.' || c === '!' || c === '?' || c === '\n';

/**
 * Where to cut text read so far (a backwards scan, linear in the text): just after the last sentence end that is
 * followed by whitespace, else at the last whitespace; 0 for none. What follows stays for the next read.
 */
function lastCut(text: string): number {
  let space = -1;
  for (let i = text.length - 1; i > 0; i--) {
    if (isSpace(text[i]!)) {
      if (space < 0) space = i;
      if (isEnd(text[i - 1]!)) return i;
      if (text[i] === '\n') return i + 1;
    }
  }
  return Math.max(0, space);
}

/**
 * The text in counted groups, in order and without loss (linear scans: no regex backtracking on long runs): each
 * sentence (up to and with its end marks and the whitespace after them), cut into groups of GROUP words when longer.
 */
function* groups(text: string): Generator<string> {
  let start = 0, words = 0, inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (isSpace(c)) {
      inWord = false;
      continue;
    }
    if (!inWord) {
      inWord = true;
      if (words === GROUP) {
        yield text.slice(start, i);
        start = i;
        words = 0;
      }
      words++;
    }
    if (isEnd(c)) {
      let j = i + 1;
      while (j < text.length && (isEnd(text[j]!) || isSpace(text[j]!))) j++;
      yield text.slice(start, j);
      start = j;
      words = 0;
      inWord = false;
      i = j - 1;
    }
  }
  if (start < text.length) yield text.slice(start);
}

/** Words per counted group of a long sentence (a chunk may hold a few tokens fewer than the cap). */
const GROUP = 8;

/**
 * Cuts streamed text into chunks of at most `chunkTokens` tokens, at sentence ends where a sentence fits (tokens
 * counted by `countTokens` per sentence or per few words; a run of text longer than a chunk without whitespace is
 * cut by characters).
 */
export async function* chunkText(source: DocumentSource, countTokens: (text: string) => number, chunkTokens: number): AsyncGenerator<Chunk> {
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new RangeError(`chunkText: 'chunkTokens' must be a positive integer, not ${String(chunkTokens)}`);
  let pending = '';
  let chunk: string[] = [], tokens = 0, index = 0, chars = 0;
  const emit = (): Chunk => {
    const c = { index: index++, text: chunk.join(''), tokens, chars };
    chunk = [];
    tokens = 0;
    return c;
  };
  // adds one group of text, cutting it when alone it is over a chunk; yields the chunks it completes
  function* add(group: string): Generator<Chunk> {
    const n = countTokens(group);
    if (n > chunkTokens) {
      if (group.length === 1) throw new RangeError(`chunkText: one character counts ${n} tokens, over a chunk of ${chunkTokens}`);
      const half = Math.ceil(group.length / 2);
      yield* add(group.slice(0, half));
      yield* add(group.slice(half));
      return;
    }
    if (tokens + n > chunkTokens && chunk.length > 0) yield emit();
    chunk.push(group);
    tokens += n;
    chars += group.length;
  }
  // chunks end at sentence ends where they can: a group is a sentence, or GROUP words of a long one
  function* consume(text: string): Generator<Chunk> {
    for (const group of groups(text)) yield* add(group);
  }
  for await (const piece of pieces(source)) {
    pending += piece;
    // keep the last (maybe unfinished) sentence for the next read; else the last word; cut anyway past 64 KiB
    let cut = lastCut(pending);
    if (pending.length > 1 << 16 && cut <= 0) cut = pending.length;
    if (cut <= 0) continue;
    yield* consume(pending.slice(0, cut));
    pending = pending.slice(cut);
  }
  if (pending.length > 0) yield* consume(pending);
  if (chunk.length > 0) yield emit();
}
