/**
 * Training and evaluation items: one JSONL line each, either a raw prompt or a question (with its context) that the
 * tokenizer's chat template renders. `qwenlong synth` output reads as is. Rewards are chosen by the answer's shape
 * and the task: list answers by list F1, numbers by relative tolerance, multiple choice by the letter, dialogue
 * memory by the sequence ratio, anything else by exact match (of the whole response, or of the answer it states).
 */
import { readFileSync } from 'node:fs';
import type { TextTokenizer } from '../tokenizer/hf.js';
import { choiceMatch, exactMatch, extractAnswer, listF1, numericMatch, similarityRatio } from './rewards.js';

export interface RecipeItem {
  id: string;
  task: string;
  /** The whole prompt text, used as is (BOS added); else `question` (after `context`) goes through the chat template. */
  prompt?: string;
  question?: string;
  context?: string;
  answer: string | number | string[];
  aliases?: string[];
  options?: string[];
}

export class DataError extends Error {
  override name = 'DataError';
}

/** The first problem with an item, or null. */
export function checkItem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'an item must be a JSON object';
  const o = v as Record<string, unknown>;
  if (typeof o.task !== 'string' || o.task === '') return '"task" must be a non-empty string';
  if (o.prompt === undefined && typeof o.question !== 'string') return 'an item needs a "prompt" or a "question" string';
  for (const k of ['prompt', 'question', 'context', 'id']) if (o[k] !== undefined && typeof o[k] !== 'string') return `"${k}" must be a string`;
  const a = o.answer;
  if (!(typeof a === 'string' || (typeof a === 'number' && Number.isFinite(a)) || (Array.isArray(a) && a.length > 0 && a.every((x) => typeof x === 'string')))) {
    return '"answer" must be a string, a finite number or a non-empty array of strings';
  }
  for (const k of ['aliases', 'options']) if (o[k] !== undefined && !(Array.isArray(o[k]) && (o[k] as unknown[]).every((x) => typeof x === 'string'))) return `"${k}" must be an array of strings`;
  return null;
}

/** Reads a JSONL file of items; a bad line is an error naming the file and line. Ids default to the line number. */
export function readItems(file: string): RecipeItem[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const items: RecipeItem[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new DataError(`${file}:${i + 1}: not JSON`);
    }
    const problem = checkItem(v);
    if (problem) throw new DataError(`${file}:${i + 1}: ${problem}`);
    const item = v as RecipeItem;
    items.push({ ...item, id: item.id ?? String(i + 1) });
  });
  if (items.length === 0) throw new DataError(`${file}: no items`);
  return items;
}

/** A response's text: its tokens decoded without the stop token that ended it. */
export function responseText(tokenizer: TextTokenizer, tokens: ArrayLike<number>): string {
  const all = Array.from(tokens);
  return tokenizer.decode(all.length > 0 && tokenizer.eosIds.includes(all[all.length - 1]!) ? all.slice(0, -1) : all);
}

/** The reward of a response text for an item, in [0, 1]. */
export function scoreResponse(item: RecipeItem, response: string): number {
  const gold = item.answer;
  if (Array.isArray(gold)) return listF1(response, gold);
  if (typeof gold === 'number') return numericMatch(extractAnswer(response), gold);
  if (item.task === 'multiple-choice') return choiceMatch(response, gold);
  if (item.task === 'dialogue-memory') return similarityRatio(extractAnswer(response), gold);
  const golds = [gold, ...(item.aliases ?? [])];
  return Math.max(exactMatch(response, golds), exactMatch(extractAnswer(response), golds));
}

/**
 * The prompt's token ids, middle-truncated so that it and `maxTokens` new tokens fit in `window`: the head and the
 * tail of the prompt are kept (the question sits at the end), the middle of the context goes.
 */
export function promptIds(item: RecipeItem, tokenizer: TextTokenizer, opts: { window: number; maxTokens: number }): { ids: number[]; truncated: number } {
  let ids: number[];
  if (item.prompt !== undefined) ids = tokenizer.encode(item.prompt, { bos: true });
  else {
    const options = item.options?.length ? `\n${item.options.map((o, i) => `${String.fromCharCode(65 + i)}. ${o}`).join('\n')}` : '';
    const content = `${item.context ? `${item.context}\n\n` : ''}${item.question}${options}`;
    ids = tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content }]), { bos: tokenizer.bosId !== undefined });
  }
  const room = opts.window - opts.maxTokens;
  if (room < 2) throw new RangeError(`promptIds: the window (${opts.window}) leaves no room for a prompt after ${opts.maxTokens} new tokens`);
  if (ids.length <= room) return { ids, truncated: 0 };
  const head = Math.floor(room / 2), tail = room - head;
  return { ids: [...ids.slice(0, head), ...ids.slice(ids.length - tail)], truncated: ids.length - room };
}
