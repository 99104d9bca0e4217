/**
 * llama2.c's tokenizer format (`tokenizer.bin`, `tok512.bin`): an int32 max token length, then per token an f32
 * merge score, an int32 byte length and the piece's bytes. Encoding follows run.c: optional BOS, a dummy space
 * prefix before non-empty text, one token per UTF-8 character (unknown characters as byte tokens `<0xXX>`, ids
 * 3 + byte), then repeatedly merge the adjacent pair whose merged piece has the highest score. Decoding strips the
 * space after BOS and turns `<0xXX>` pieces back into bytes.
 */
import { readFileSync } from 'node:fs';
import { PLAIN_CHAT_TEMPLATE, renderChat, type ChatMessage, type TextTokenizer } from './hf.js';

export const BOS = 1;
export const EOS = 2;

export class Llama2cTokenizer implements TextTokenizer {
  readonly bosId = BOS;
  readonly eosIds: readonly number[] = [EOS];
  readonly pieces: readonly Uint8Array[];
  readonly scores: Float32Array;
  readonly maxTokenLength: number;
  readonly #lookup = new Map<string, number>();
  readonly #text: readonly string[];

  /** Parses the bytes of a tokenizer file; `vocabSize` (the model's) limits the entries read when given. */
  constructor(bytes: Uint8Array, vocabSize?: number) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (why: string) => new RangeError(`Llama2cTokenizer: ${why}`);
    if (bytes.byteLength < 4) throw fail('the file is shorter than its header');
    this.maxTokenLength = view.getInt32(0, true);
    if (!(this.maxTokenLength > 0 && this.maxTokenLength < 1 << 16)) throw fail(`implausible max token length ${this.maxTokenLength}`);
    const pieces: Uint8Array[] = [], scores: number[] = [];
    let at = 4;
    while (at < bytes.byteLength && (vocabSize === undefined || pieces.length < vocabSize)) {
      if (at + 8 > bytes.byteLength) throw fail(`entry ${pieces.length} is truncated`);
      const score = view.getFloat32(at, true), len = view.getInt32(at + 4, true);
      if (!Number.isFinite(score) || len < 0 || len > this.maxTokenLength || at + 8 + len > bytes.byteLength) throw fail(`entry ${pieces.length} is corrupt`);
      pieces.push(bytes.slice(at + 8, at + 8 + len));
      scores.push(score);
      at += 8 + len;
    }
    if (vocabSize !== undefined && pieces.length < vocabSize) throw fail(`the file holds ${pieces.length} tokens, the model has ${vocabSize}`);
    if (pieces.length < 259) throw fail(`${pieces.length} tokens is too few (the 3 specials and 256 byte tokens come first)`);
    this.pieces = pieces;
    this.scores = Float32Array.from(scores);
    const decoder = new TextDecoder('utf-8', { fatal: false });
    this.#text = pieces.map((p) => decoder.decode(p));
    // The first id wins when two entries hold the same piece (run.c's sorted lookup finds one of them).
    pieces.forEach((_, id) => {
      const key = this.#text[id]!;
      if (!this.#lookup.has(key)) this.#lookup.set(key, id);
    });
  }

  static fromFile(path: string, vocabSize?: number): Llama2cTokenizer {
    return new Llama2cTokenizer(readFileSync(path), vocabSize);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError('Llama2cTokenizer.encode: text must be a string');
    const ids: number[] = [];
    if (opts.bos ?? true) ids.push(BOS);
    if (text.length > 0) {
      const space = this.#lookup.get(' ');
      if (space !== undefined) ids.push(space);
    }
    const encoder = new TextEncoder();
    for (const ch of text) {
      const id = this.#lookup.get(ch);
      if (id !== undefined) ids.push(id);
      else for (const byte of encoder.encode(ch)) ids.push(byte + 3);
    }
    // Merge the best-scoring adjacent pair (the leftmost on ties) until none merges; as run.c, BOS takes part.
    for (;;) {
      let best = -Infinity, bestAt = -1, bestId = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const merged = this.#lookup.get(this.#text[ids[i]!]! + this.#text[ids[i + 1]!]!);
        if (merged !== undefined && this.scores[merged]! > best) {
          best = this.scores[merged]!;
          bestAt = i;
          bestId = merged;
        }
      }
      if (bestAt < 0) break;
      ids.splice(bestAt, 2, bestId);
    }
    if (opts.eos) ids.push(EOS);
    return ids;
  }

  /** llama2.c models have no chat format: the plain fallback template. */
  applyChatTemplate(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    return renderChat(PLAIN_CHAT_TEMPLATE, messages, opts.addGenerationPrompt ?? true);
  }

  /** The bytes of `token` as it prints after `prev` (run.c's decode). */
  pieceBytes(prev: number, token: number): Uint8Array {
    const piece = this.pieces[token];
    if (piece === undefined) throw new RangeError(`Llama2cTokenizer.decode: token ${token} is outside [0, ${this.vocabSize})`);
    let bytes = piece;
    if (prev === BOS && bytes[0] === 0x20) bytes = bytes.subarray(1);
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(this.#text[token]!);
    if (m) return Uint8Array.of(parseInt(m[1]!, 16));
    return bytes;
  }

  /** Text of a token sequence (specials print nothing; a leading BOS only affects the next piece's space). */
  decode(ids: readonly number[]): string {
    const chunks: Uint8Array[] = [];
    let prev = -1;
    for (const id of ids) {
      if (id !== BOS && id !== EOS) chunks.push(this.pieceBytes(prev, id));
      prev = id;
    }
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(out);
  }
}
