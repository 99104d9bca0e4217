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
    const merged = this.#merge(ids);
    if (opts.eos) merged.push(EOS);
    return merged;
  }

  /**
   * run.c's merge rule — merge the adjacent pair whose merged piece scores highest, the leftmost on ties, until no
   * pair merges (BOS takes part, as in run.c) — in O(n log n): the symbols form a linked list, candidate pairs wait
   * in a heap ordered by (score desc, left position asc), and a popped pair is skipped when either side has changed
   * since it was pushed. A symbol keeps its first position when it absorbs its right neighbour, so positions keep the
   * sequence's order and "leftmost" means the same as in the quadratic loop.
   */
  #merge(ids: number[]): number[] {
    const n = ids.length;
    if (n < 2) return ids;
    const tok = Int32Array.from(ids);
    const next = new Int32Array(n), prev = new Int32Array(n), version = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // Candidate pairs: entry e is (score, left position, merged id, the versions of both sides when pushed); the heap
    // orders entry indices. At most n - 1 pairs at the start and two per merge: 3n entries never run out.
    const cap = 3 * n;
    const eScore = new Float64Array(cap), eLeft = new Int32Array(cap), eId = new Int32Array(cap), eVl = new Int32Array(cap), eVr = new Int32Array(cap);
    const heap = new Int32Array(cap);
    let entries = 0, size = 0;
    const before = (a: number, b: number) => {
      const x = heap[a]!, y = heap[b]!;
      return eScore[x]! > eScore[y]! || (eScore[x] === eScore[y] && eLeft[x]! < eLeft[y]!);
    };
    const swap = (a: number, b: number) => {
      const t = heap[a]!;
      heap[a] = heap[b]!;
      heap[b] = t;
    };
    const push = (left: number) => {
      const right = next[left]!;
      if (right < 0) return;
      const id = this.#lookup.get(this.#text[tok[left]!]! + this.#text[tok[right]!]!);
      if (id === undefined) return;
      const e = entries++;
      eScore[e] = this.scores[id]!;
      eLeft[e] = left;
      eId[e] = id;
      eVl[e] = version[left]!;
      eVr[e] = version[right]!;
      let at = size++;
      heap[at] = e;
      while (at > 0) {
        const up = (at - 1) >> 1;
        if (!before(at, up)) break;
        swap(at, up);
        at = up;
      }
    };
    const pop = () => {
      swap(0, --size);
      let at = 0;
      for (;;) {
        const l = 2 * at + 1, r = l + 1;
        let top = at;
        if (l < size && before(l, top)) top = l;
        if (r < size && before(r, top)) top = r;
        if (top === at) break;
        swap(at, top);
        at = top;
      }
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    while (size > 0) {
      const e = heap[0]!, left = eLeft[e]!;
      pop();
      const right = next[left]!;
      // Stale: the left symbol was absorbed or changed, or its right neighbour is another symbol now.
      if (right < 0 || version[left] !== eVl[e] || version[right] !== eVr[e]) continue;
      const id = eId[e]!;
      tok[left] = id;
      version[left]!++;
      version[right] = -1; // absorbed: never valid again
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      if (prev[left]! >= 0) push(prev[left]!);
      push(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(tok[i]!);
    return out;
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
