import fs from 'node:fs';
import { SynthError } from './errors.js';
import { parseJsonl, type JsonlLine } from './io.js';
import { TASKS, type SynthQuestion } from './types.js';

/** Validate one output record; returns the first problem found, or null. */
export function validateQuestion(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'a question must be a JSON object';
  const q = v as Record<string, unknown>;
  const str = (k: string) => (typeof q[k] === 'string' ? null : `"${k}" must be a string`);
  const int = (k: string) => (Number.isInteger(q[k]) && (q[k] as number) >= 0 ? null : `"${k}" must be a non-negative integer`);
  const err = str('id') ?? str('question') ?? str('context') ?? str('seed') ?? int('hops') ?? int('tokens');
  if (err) return err;
  if (!TASKS.includes(q.task as never)) return `"task" must be one of ${TASKS.join(', ')}`;
  const a = q.answer;
  const answerOk = typeof a === 'string' || (typeof a === 'number' && Number.isFinite(a)) || (Array.isArray(a) && a.every((x) => typeof x === 'string'));
  if (!answerOk) return '"answer" must be a string, a finite number or an array of strings';
  for (const k of ['aliases', 'options']) {
    if (q[k] !== undefined && !(Array.isArray(q[k]) && (q[k] as unknown[]).every((x) => typeof x === 'string'))) return `"${k}" must be an array of strings`;
  }
  if (q.task === 'multiple-choice' && !Array.isArray(q.options)) return '"options" is required for multiple-choice';
  if (!Array.isArray(q.evidence) || q.evidence.length === 0) return '"evidence" must be a non-empty array';
  const ctxLen = (q.context as string).length;
  for (const [i, e] of (q.evidence as unknown[]).entries()) {
    const s = e as Record<string, unknown>;
    if (typeof s !== 'object' || s === null || typeof s.doc !== 'string' || !Number.isInteger(s.start) || !Number.isInteger(s.end)) return `"evidence[${i}]" must be {doc, start, end}`;
    if ((s.start as number) < 0 || (s.end as number) > ctxLen || (s.start as number) >= (s.end as number)) return `"evidence[${i}]" is outside the context`;
  }
  if (typeof q.meta !== 'object' || q.meta === null || Array.isArray(q.meta)) return '"meta" must be an object';
  return null;
}

/** Read a question file; with `strict`, any bad line is an error naming the file and line. */
export function readQuestions(file: string, strict = true): { questions: SynthQuestion[]; errors: Array<{ line: number; error: string }> } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SynthError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines: JsonlLine<SynthQuestion>[] = parseJsonl<SynthQuestion>(text, validateQuestion);
  const questions: SynthQuestion[] = [];
  const errors: Array<{ line: number; error: string }> = [];
  for (const l of lines) {
    if ('error' in l) errors.push(l);
    else questions.push(l.value);
  }
  if (strict && errors.length > 0) {
    const first = errors[0]!;
    throw new SynthError(`${file}:${first.line}: ${first.error}${errors.length > 1 ? ` (and ${errors.length - 1} more bad lines)` : ''}`);
  }
  return { questions, errors };
}

/** Serialize with a fixed key order, so equal questions are equal bytes. */
export function questionLine(q: SynthQuestion): string {
  const o: Record<string, unknown> = { id: q.id, task: q.task, question: q.question, answer: q.answer };
  if (q.aliases) o.aliases = q.aliases;
  if (q.options) o.options = q.options;
  Object.assign(o, { context: q.context, evidence: q.evidence, hops: q.hops, tokens: q.tokens, seed: q.seed, meta: q.meta });
  return `${JSON.stringify(o)}\n`;
}
