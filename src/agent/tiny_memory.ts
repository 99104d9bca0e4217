/**
 * The tiny worlds stretched past the window, for the memory agent at CPU scale: a world's facts scattered through a
 * long document of consistent filler facts about people and things the question never asks about, the facts the
 * answer rests on placed first hop first. Because the world knows its evidence, the ideal memory after every chunk
 * can be written (the evidence read so far): the oracle traces memory-agent SFT learns from.
 */
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ModelConfig } from '../model/config.js';
import type { RecipeItem } from '../rl/data.js';
import { Random } from '../rl/random.js';
import { tinyModelConfig } from '../rl/tiny.js';
import { JOBS, PEOPLE, PLACES, THINGS, WORLD_TASKS, makeWorld, worldTokenizer, type World, type WorldTask } from '../rl/tiny_world.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { chunkText, type DocumentSource } from './chunks.js';
import { PLAIN_MEMORY_PROMPTS } from './memory_agent.js';

/** The world vocabulary plus the plain memory prompts' words (the world ids stay as they are). */
export function memoryTokenizer(): WordTokenizer {
  return new WordTokenizer([...worldTokenizer().words.slice(4), 'memory', 'text']);
}

/** The tiny model over the memory vocabulary. */
export function memoryModelConfig(): ModelConfig {
  return { ...tinyModelConfig(), vocabSize: memoryTokenizer().vocabSize };
}

/** Tokens per chunk and per memory update of the tiny memory agent (prompt, memory and chunk fit the 256 window). */
export const TINY_MEMORY = { chunkTokens: 128, memoryTokens: 24, answerTokens: 8 } as const;

export interface MemoryWorld {
  world: World;
  /** The long document's text, sentence by sentence (lazy: a 4M-token document is never whole in memory). */
  sentences(): Generator<string>;
  /** About how many tokens the document has. */
  tokens: number;
}

/** About `tokens` tokens of document around one world and its question. */
export function memoryWorld(rng: Random, task: WorldTask, tokens: number): MemoryWorld {
  const world = makeWorld(rng, task);
  const people = PEOPLE.filter((p) => !world.owned.has(p));
  const things = THINGS.filter((t) => !world.place.has(t));
  const others = world.facts.filter((f) => !world.evidence.includes(f));
  // about 5.3 tokens a filler sentence; the world's facts sit at random slots, the evidence in chain order
  const slots = Math.max(world.facts.length, Math.round((tokens - world.facts.length * 5.3) / 5.3) + world.facts.length);
  const seed = rng.int(2 ** 31);
  const at = new Map<number, string>();
  const draw = (): number => {
    for (;;) {
      const s = rng.int(slots);
      if (!at.has(s)) return s;
    }
  };
  const evidenceSlots = world.evidence.map(draw).sort((a, b) => a - b);
  evidenceSlots.forEach((s, i) => at.set(s, world.evidence[i]!));
  for (const f of others) at.set(draw(), f);
  function* sentences(): Generator<string> {
    const r = new Random(seed);
    const pick = <T>(xs: readonly T[]): T => xs[r.int(xs.length)]!;
    for (let s = 0; s < slots; s++) {
      const fact = at.get(s);
      if (fact !== undefined) yield fact;
      else {
        const kind = r.int(3);
        yield kind === 0 ? `${pick(people)} owns the ${pick(things)} .` : kind === 1 ? `the ${pick(things)} is in the ${pick(PLACES)} .` : `${pick(people)} is a ${pick(JOBS)} .`;
      }
    }
  }
  return { world, sentences, tokens };
}

/** The document as a stream of text pieces (a few KiB each). */
export function* memoryWorldText(w: MemoryWorld): Generator<string> {
  let piece = '';
  for (const s of w.sentences()) {
    piece += `${s} `;
    if (piece.length > 4096) {
      yield piece;
      piece = '';
    }
  }
  if (piece) yield piece;
}

/** Streams the document to a file (UTF-8), never whole in memory. */
export async function writeMemoryWorld(file: string, w: MemoryWorld): Promise<void> {
  await pipeline(Readable.from(memoryWorldText(w)), createWriteStream(file));
}

/**
 * An evaluation item: `context` + `question` for the memory agent, and `prompt` (the whole document, then the
 * question, the single-pass format of the tiny worlds) for the single-pass baseline.
 */
export function memoryWorldItem(w: MemoryWorld, id: string): RecipeItem {
  const doc = [...w.sentences()].join(' ');
  const answer = w.world.task === 'items' ? w.world.answer : w.world.answer[0]!;
  return { id, task: w.world.task, context: doc, question: w.world.question, prompt: `${doc} question : ${w.world.question} answer :`, answer };
}

/** `perTask` items of every task at each document length (tokens), one seed. */
export function memoryWorldItems(seed: number, lengths: readonly number[], perTask: number): RecipeItem[] {
  const rng = new Random(seed);
  const items: RecipeItem[] = [];
  for (const len of lengths) for (const task of WORLD_TASKS) for (let i = 0; i < perTask; i++) items.push(memoryWorldItem(memoryWorld(rng, task, len), `m${len}-${task}-${i}`));
  return items;
}

export interface OracleStep {
  /** The prompt's text (PLAIN_MEMORY_PROMPTS) and the ideal response: the new memory, or the answer. */
  prompt: string;
  target: string;
}

/**
 * The ideal trace of the memory agent over a document: after each chunk, the evidence read so far (in document
 * order); then the answer from the full memory. Chunks are cut as the agent cuts them.
 */
export async function oracleTrace(w: MemoryWorld, countTokens: (text: string) => number, chunkTokens: number): Promise<OracleStep[]> {
  const p = PLAIN_MEMORY_PROMPTS;
  const prefix = p.updatePrefix(w.world.question);
  const steps: OracleStep[] = [];
  const seen: string[] = [];
  const source: DocumentSource = memoryWorldText(w);
  for await (const chunk of chunkText(source, countTokens, chunkTokens)) {
    const before = seen.join(' ');
    for (const e of w.world.evidence) if (!seen.includes(e) && chunk.text.includes(e)) seen.push(e);
    steps.push({ prompt: prefix + p.updateText(before, '', chunk.text), target: seen.join(' ') });
  }
  const f = p.final(w.world.question, seen.join(' '), undefined);
  steps.push({ prompt: f.prefix + f.text, target: w.world.answer.join(' , ') });
  return steps;
}

/** Bucket bounds that put each target length in its own bucket: geometric midpoints, then twice the longest. */
export function lengthBuckets(lengths: readonly number[]): number[] {
  const l = [...lengths].sort((a, b) => a - b);
  return l.map((x, i) => Math.round(i + 1 < l.length ? Math.sqrt(x * l[i + 1]!) : 2 * x));
}
