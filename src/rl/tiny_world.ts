/**
 * Tiny synthetic worlds for the CPU-sized recipe: a few people, the things they own, where those things are and the
 * people's jobs, rendered as short facts in shuffled order, with verifiable questions over them. Four task types,
 * of different difficulty and reward density:
 * - `locate` (1 hop): where is the key? → the key's place;
 * - `owned-place` (2 hops): where is the thing ben owns? → owner → thing → place;
 * - `owner-job` (2 hops): what job has the owner of the key? → thing → owner → job;
 * - `items` (a list, scored by F1): what does ben own? → every thing ben owns.
 * The vocabulary is closed (under 100 words), so a word tokenizer covers it exactly.
 */
import { WordTokenizer } from '../tokenizer/word.js';
import { Random } from './random.js';

export const PEOPLE = ['anna', 'ben', 'cara', 'dan', 'eva', 'finn', 'gus', 'hana', 'ivy', 'jon', 'kai', 'lea'] as const;
export const THINGS = ['box', 'lamp', 'key', 'book', 'cup', 'hat', 'ring', 'coin', 'map', 'pen', 'bag', 'clock'] as const;
export const PLACES = ['kitchen', 'garden', 'attic', 'cellar', 'hall', 'study', 'barn', 'porch'] as const;
export const JOBS = ['baker', 'farmer', 'doctor', 'painter', 'sailor', 'tailor'] as const;
const GLUE = ['owns', 'the', 'is', 'in', 'a', 'where', 'thing', 'that', 'what', 'job', 'has', 'owner', 'of', 'does', 'own', 'question', 'answer', 'and', '.', '?', ':', ','];

export const WORLD_TASKS = ['locate', 'owned-place', 'owner-job', 'items'] as const;
export type WorldTask = (typeof WORLD_TASKS)[number];

export interface WorldEpisode {
  task: WorldTask;
  /** The facts and the question, ending with "answer :". */
  prompt: string;
  /** The gold answer: one word, or the list's words. */
  answer: string[];
  /** The text a perfect response is (before the end-of-sequence token). */
  target: string;
}

export interface WorldOptions {
  /** People per world (default 2–4). */
  people?: [number, number];
}

/** The tokenizer of the tiny worlds (every word they can use). */
export function worldTokenizer(): WordTokenizer {
  return new WordTokenizer([...GLUE, ...PEOPLE, ...THINGS, ...PLACES, ...JOBS]);
}

/** A world and a question over it, with the facts the answer rests on (in the order they chain). */
export interface World {
  task: WorldTask;
  owned: Map<string, string[]>;
  job: Map<string, string>;
  place: Map<string, string>;
  /** Every fact, shuffled. */
  facts: string[];
  question: string;
  answer: string[];
  /** The facts the answer needs, first hop first. */
  evidence: string[];
}

/** One world and one question of the given task. */
export function worldEpisode(rng: Random, task: WorldTask, opts: WorldOptions = {}): WorldEpisode {
  const w = makeWorld(rng, task, opts);
  return { task, prompt: `${w.facts.join(' ')} question : ${w.question} answer :`, answer: w.answer, target: w.answer.join(' , ') };
}

/** The world behind an episode (the same draws as worldEpisode, so the same seed gives the same world). */
export function makeWorld(rng: Random, task: WorldTask, opts: WorldOptions = {}): World {
  const [lo, hi] = opts.people ?? [2, 4];
  const pick = <T>(xs: readonly T[], n: number): T[] => rng.shuffle(xs.slice()).slice(0, n);
  const people: string[] = pick(PEOPLE, lo + rng.int(hi - lo + 1));
  const things = rng.shuffle(THINGS.slice());
  const owned = new Map<string, string[]>();
  let next = 0;
  for (const p of people) owned.set(p, things.slice(next, (next += 1 + rng.int(2))));
  // the 2-hop question about a thing needs an owner with exactly one thing: make the first person so
  if (task === 'owned-place') owned.set(people[0]!, owned.get(people[0]!)!.slice(0, 1));
  const job = new Map<string, string>(people.map((p) => [p, JOBS[rng.int(JOBS.length)]!]));
  const place = new Map<string, string>();
  for (const list of owned.values()) for (const t of list) place.set(t, PLACES[rng.int(PLACES.length)]!);
  const facts: string[] = [];
  for (const [p, list] of owned) {
    for (const t of list) facts.push(`${p} owns the ${t} .`, `the ${t} is in the ${place.get(t)} .`);
    facts.push(`${p} is a ${job.get(p)} .`);
  }
  rng.shuffle(facts);
  const allThings = [...place.keys()];
  let question: string, answer: string[], evidence: string[];
  if (task === 'locate') {
    const t = allThings[rng.int(allThings.length)]!;
    question = `where is the ${t} ?`;
    answer = [place.get(t)!];
    evidence = [`the ${t} is in the ${answer[0]} .`];
  } else if (task === 'owned-place') {
    const p = people[0]!;
    const t = owned.get(p)![0]!;
    question = `where is the thing that ${p} owns ?`;
    answer = [place.get(t)!];
    evidence = [`${p} owns the ${t} .`, `the ${t} is in the ${answer[0]} .`];
  } else if (task === 'owner-job') {
    const t = allThings[rng.int(allThings.length)]!;
    const owner = [...owned].find(([, l]) => l.includes(t))![0];
    question = `what job has the owner of the ${t} ?`;
    answer = [job.get(owner)!];
    evidence = [`${owner} owns the ${t} .`, `${owner} is a ${answer[0]} .`];
  } else {
    const p = people[rng.int(people.length)]!;
    question = `what does ${p} own ?`;
    answer = owned.get(p)!.slice();
    evidence = answer.map((t) => `${p} owns the ${t} .`);
  }
  return { task, owned, job, place, facts, question, answer, evidence };
}
