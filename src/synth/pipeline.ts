import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { SynthError } from './errors.js';
import { expandInputs, loadBundledCorpus, loadDocuments, type SourceDocument } from './documents.js';
import { extractDocument } from './extract.js';
import { KnowledgeGraph } from './kg.js';
import { Graph } from './graph.js';
import { COMPOSERS, type Draft, type ComposeResult, type DialoguePlan } from './compose.js';
import { ContextBuilder, type BuiltContext } from './context.js';
import { buildDialogueContext } from './dialogue.js';
import { checkEvidence, checkLeak, checkLength, checkSupported, DuplicateFilter } from './checks.js';
import { Rng } from './rng.js';
import { loadTokenCounter } from './tokenizer.js';
import { acquireLock, DurableAppender, parseJsonl, renameDurable, writeFileAtomic, type FileLock } from './io.js';
import { questionLine, validateQuestion } from './schema.js';
import { TASKS, type SynthQuestion, type Task } from './types.js';
import { LlmClient, llmExtractDocument, llmVerify, type LlmOptions } from './llm.js';
import { generateWorld, worldOptionProblem, writeWorld, type WorldOptions } from './world.js';

export interface SynthOptions {
  /** Files, folders, globs; empty for the bundled corpus (or a synthetic world with `world`). */
  inputs: string[];
  /** Output JSONL file. An existing one is refused unless `overwrite` is set (an interrupted run of it resumes). */
  out: string;
  /** Replace an existing output file (the `--overwrite` flag). */
  overwrite?: boolean;
  count: number;
  tasks?: Task[];
  targetTokens: number;
  seed?: string;
  tokenizer?: string;
  llm?: LlmOptions;
  /** With `llm`: also run the knowledge-grounding and contextual-robustness checks (default true). */
  llmChecks?: boolean;
  /** Extract with the LLM instead of the offline extractor. */
  llmExtract?: boolean;
  world?: WorldOptions;
  /** Folder for the run's state (knowledge graph, checkpoint); default `<out>.work`. */
  workDir?: string;
  /** Use at most this many documents of the bundled corpus (evenly spread). */
  maxDocs?: number;
  /** Fixed evidence depth in [0, 1]; random when absent. */
  depth?: number;
  /** Give up on a task after this many rejections in a row (its material is exhausted). Default 250. */
  maxTaskFailures?: number;
  /** Stop after this many accepted questions without finishing (for tests of resume). */
  stopAfter?: number;
  log?: (line: string) => void;
  progress?: (stage: string, done: number, total: number) => void;
}

export interface SynthSummary {
  out: string;
  written: number;
  finished: boolean;
  attempts: number;
  byTask: Record<string, number>;
  byHops: Record<string, number>;
  byLength: Record<string, number>;
  rejections: Record<string, number>;
  tokenizer: string;
  tokenizerExact: boolean;
  graph: Record<string, number>;
}

interface Checkpoint {
  config: string;
  attempt: number;
  written: number;
  bytes: number;
  rejections: Record<string, number>;
  failures: Record<string, number>;
}


function validate(opts: SynthOptions): Required<Pick<SynthOptions, 'tasks' | 'seed'>> {
  if (!opts.out || typeof opts.out !== 'string') throw new SynthError('--out: an output file is required');
  if (!Number.isInteger(opts.count) || opts.count < 1) throw new SynthError(`--count: must be a positive integer (got ${opts.count})`);
  if (!Number.isInteger(opts.targetTokens) || opts.targetTokens < 256) throw new SynthError(`--target-tokens: must be an integer ≥ 256 (got ${opts.targetTokens})`);
  const tasks = opts.tasks && opts.tasks.length > 0 ? opts.tasks : [...TASKS];
  for (const t of tasks) if (!TASKS.includes(t)) throw new SynthError(`--tasks: unknown task "${t}" (known: ${TASKS.join(', ')})`);
  if (opts.depth !== undefined && !(opts.depth >= 0 && opts.depth <= 1)) throw new SynthError(`--depth: must be between 0 and 1 (got ${opts.depth})`);
  if (opts.maxDocs !== undefined && (!Number.isInteger(opts.maxDocs) || opts.maxDocs < 2)) throw new SynthError(`--max-docs: must be an integer ≥ 2 (got ${opts.maxDocs})`);
  if (opts.maxTaskFailures !== undefined && (!Number.isInteger(opts.maxTaskFailures) || opts.maxTaskFailures < 1)) throw new SynthError(`maxTaskFailures: must be a positive integer (got ${opts.maxTaskFailures})`);
  if (opts.llmExtract && !opts.llm) throw new SynthError('--llm-extract needs --llm URL and --model NAME');
  if (opts.world) {
    for (const [key, value] of Object.entries(opts.world)) {
      if (key === 'seed' || value === undefined) continue;
      const problem = worldOptionProblem(key, value);
      if (problem) throw new SynthError(`--world: ${problem}`);
    }
  }
  return { tasks: [...new Set(tasks)], seed: opts.seed ?? '0' };
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}

/** Whether two existing paths are the same file (through links too). */
function sameFile(a: string, sa: fs.Stats, b: string): boolean {
  const sb = statOrNull(b);
  if (!sb) return false;
  if (sa.ino !== 0 && sa.dev === sb.dev && sa.ino === sb.ino) return true;
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Checks on the output and work paths made before any work: an output that is a folder, lies under a file or
 * is one of the inputs is refused, as is a work folder that is a file. (An existing output file is checked
 * once its lock is held.)
 */
function checkPaths(opts: SynthOptions, out: string, workDir: string): void {
  const outStat = statOrNull(out);
  if (outStat?.isDirectory()) throw new SynthError(`--out ${opts.out}: is a folder; give the name of a file to write (e.g. ${path.join(opts.out, 'questions.jsonl')})`);
  let dir = path.dirname(out);
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  if (!statOrNull(dir)?.isDirectory()) throw new SynthError(`--out ${opts.out}: ${dir} is a file, not a folder`);
  const partialStat = statOrNull(`${out}.partial`);
  if (partialStat && !partialStat.isFile()) throw new SynthError(`--out ${opts.out}: ${out}.partial (where the output is written until it is complete) exists and is not a file`);
  if (outStat) {
    const inputs = [...(opts.world || opts.inputs.length === 0 ? [] : expandInputs(opts.inputs)), ...(opts.tokenizer ? [opts.tokenizer] : [])];
    const same = inputs.find((f) => sameFile(out, outStat, f));
    if (same !== undefined) throw new SynthError(`--out ${opts.out}: is one of the inputs (${same}); choose another output file`);
  }
  const workStat = statOrNull(workDir);
  if (workStat && !workStat.isDirectory()) throw new SynthError(`--work ${opts.workDir ?? workDir}: exists and is not a folder`);
  if (workDir === out) throw new SynthError(`--work ${opts.workDir ?? workDir}: must not be the output file`);
}

/** Remove `dir` and its parents up to `top` (the first folder this run created) while they are empty. */
function removeEmptyDirs(dir: string, top: string): void {
  for (let d = dir; d.startsWith(top); d = path.dirname(d)) {
    try {
      fs.rmdirSync(d);
    } catch {
      return;
    }
    if (d === top) return;
  }
}

/**
 * Let the event loop turn. Without LLM calls the work is synchronous from end to end, and signals (Ctrl-C, whose
 * handler releases the run's locks) and progress bars are only served when the loop turns.
 */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

const isCorruptDatabase = (e: unknown): boolean => /^SQLITE_(CORRUPT|NOTADB)/.test(String((e as { code?: unknown })?.code ?? ''));

/**
 * Run the whole pipeline, resuming from the work folder when it holds a run with the same configuration.
 * The output and the work folder are locked for the run (`<out>.lock`, `<work>/run.lock`), so a second run on
 * either is refused while the first is alive. A run that fails before its documents are stored removes what
 * it created; later, the work folder is kept so that a rerun resumes.
 */
export async function synthesize(opts: SynthOptions): Promise<SynthSummary> {
  const { tasks, seed } = validate(opts);
  const out = path.resolve(opts.out);
  const workDir = path.resolve(opts.workDir ?? `${out}.work`);
  checkPaths(opts, out, workDir);
  const outDir = path.dirname(out);
  const createdOutDir = fs.mkdirSync(outDir, { recursive: true });
  const locks: FileLock[] = [];
  const state = { workCreated: false, resumable: false };
  try {
    locks.push(acquireLock(`${out}.lock`, `--out ${opts.out}`));
    if (fs.existsSync(out) && !opts.overwrite) {
      throw new SynthError(`--out ${opts.out}: the file exists (the output of an earlier run?); pass --overwrite to replace it, or choose another output file`);
    }
    state.workCreated = !fs.existsSync(workDir);
    fs.mkdirSync(workDir, { recursive: true });
    locks.push(acquireLock(path.join(workDir, 'run.lock'), `--work ${opts.workDir ?? workDir}`));
    return await run(opts, { tasks, seed, out, workDir, locks, state });
  } catch (e) {
    for (const l of locks) l.release();
    if (state.workCreated && !state.resumable) fs.rmSync(workDir, { recursive: true, force: true });
    if (createdOutDir !== undefined) removeEmptyDirs(outDir, createdOutDir);
    if (isCorruptDatabase(e)) {
      const db = path.join(workDir, 'kg.sqlite');
      throw new SynthError(`${db}: the knowledge graph is damaged (${(e as Error).message}); delete it (or the folder ${workDir}) to start over, or choose another work folder with --work`);
    }
    throw e;
  } finally {
    for (const l of locks) l.release();
  }
}

interface RunContext {
  tasks: Task[];
  seed: string;
  out: string;
  workDir: string;
  locks: FileLock[];
  /** `resumable`: the work folder holds progress worth keeping should the run fail from here on. */
  state: { workCreated: boolean; resumable: boolean };
}

async function run(opts: SynthOptions, { tasks, seed, out, workDir, locks, state }: RunContext): Promise<SynthSummary> {
  const log = opts.log ?? (() => {});
  const progress = opts.progress ?? (() => {});
  const maxFailures = opts.maxTaskFailures ?? 250;
  const interrupted = () => locks.some((l) => l.interrupted);
  const counter = loadTokenCounter(opts.tokenizer, (why) => log(`warning: ${why}`));

  // Everything that changes the knowledge graph; a work folder made with another configuration starts over.
  const graphConfig = JSON.stringify({
    inputs: opts.inputs.map((i) => path.resolve(i)),
    world: opts.world ?? null,
    maxDocs: opts.maxDocs ?? null,
    tokenizer: counter.name,
    extractor: opts.llmExtract ? `llm:${opts.llm?.model}` : 'offline-1',
  });
  const dbFile = path.join(workDir, 'kg.sqlite');
  let kg = new KnowledgeGraph(dbFile);
  if (kg.stageInfo<string>('config') !== graphConfig) {
    if (kg.stageDone('config')) log('the work folder holds another configuration: starting over');
    kg.close();
    for (const f of [dbFile, `${dbFile}-wal`, `${dbFile}-shm`]) fs.rmSync(f, { force: true });
    kg = new KnowledgeGraph(dbFile);
    kg.markStage('config', graphConfig);
  }
  const llm = opts.llm ? new LlmClient(opts.llm, kg.db) : null;
  const partial = `${out}.partial`;
  let appender: DurableAppender | null = null;

  try {
    // 1. Documents (or a synthetic world, which comes with its facts).
    if (!kg.stageDone('documents')) {
      let docs: SourceDocument[];
      if (opts.world) {
        const world = generateWorld(opts.world);
        docs = writeWorld(world, kg, counter);
      } else if (opts.inputs.length === 0) {
        docs = loadBundledCorpus(counter, opts.maxDocs);
      } else {
        docs = loadDocuments(opts.inputs, counter);
      }
      kg.saveDocuments(docs);
      kg.markStage('documents', { count: docs.length });
      log(`documents: ${docs.length}`);
    }
    state.resumable = true;
    const docs = kg.documents();

    // 2. Facts, one document at a time, each marked when done so a crash loses one document's work.
    if (!opts.world && !kg.stageDone('extract')) {
      let done = 0;
      for (const d of docs) {
        await yieldToEventLoop();
        if (interrupted()) throw new SynthError('interrupted: run the same command again to resume');
        progress('extract', done, docs.length);
        if (!kg.stageDone(`extract:${d.id}`)) {
          const ex = opts.llmExtract && llm ? await llmExtractDocument(llm, d) : extractDocument(d);
          kg.addExtraction(ex);
          kg.markStage(`extract:${d.id}`);
        }
        done++;
      }
      progress('extract', docs.length, docs.length);
      kg.markStage('extract');
    }

    // 3. Graph: types, aliases, tables.
    if (!kg.stageDone('graph')) {
      kg.finalize(docs);
      kg.markStage('graph', kg.counts());
    }
    const graph = Graph.load(kg);
    const graphCounts = kg.counts();
    log(`graph: ${Object.entries(graphCounts).map(([k, v]) => `${v} ${k}`).join(', ')}`);

    // 4. Questions, with a checkpoint after each one written.
    const runConfig = sha(JSON.stringify({ graphConfig, tasks, seed, target: opts.targetTokens, depth: opts.depth ?? null, maxFailures, llm: opts.llm ? [opts.llm.model, opts.llmChecks !== false] : null }));
    const ckptFile = path.join(workDir, 'checkpoint.json');
    let ckpt: Checkpoint = { config: runConfig, attempt: 0, written: 0, bytes: 0, rejections: {}, failures: {} };
    if (fs.existsSync(ckptFile) && fs.existsSync(partial)) {
      try {
        const saved = JSON.parse(fs.readFileSync(ckptFile, 'utf8')) as Checkpoint;
        if (saved.config === runConfig) ckpt = saved;
      } catch {
        log('warning: the checkpoint is unreadable: starting the questions over');
      }
    }
    appender = new DurableAppender(partial, ckpt.bytes);
    const dedup = new DuplicateFilter();
    const byTask: Record<string, number> = Object.fromEntries(tasks.map((t) => [t, 0]));
    const byHops: Record<string, number> = {};
    const byLength: Record<string, number> = {};
    const tally = (q: SynthQuestion) => {
      byTask[q.task] = (byTask[q.task] ?? 0) + 1;
      byHops[q.hops] = (byHops[q.hops] ?? 0) + 1;
      const bucket = `${Math.round(q.tokens / 1000)}K`;
      byLength[bucket] = (byLength[bucket] ?? 0) + 1;
    };
    if (ckpt.bytes > 0) {
      const lines = parseJsonl<SynthQuestion>(fs.readFileSync(partial, 'utf8').slice(0, ckpt.bytes), validateQuestion);
      for (const l of lines) {
        if ('error' in l) throw new SynthError(`${partial}:${l.line}: ${l.error} (delete ${workDir} to start over)`);
        dedup.add(l.value);
        tally(l.value);
      }
      log(`resuming after ${ckpt.written} questions`);
    }
    const builder = new ContextBuilder(graph.docs, counter);
    const hardNegatives = new Map<string, string[]>();
    const docsOfType = (type: string) => {
      let list = hardNegatives.get(type);
      if (!list) {
        const set = new Set<string>();
        for (const id of graph.byType.get(type) ?? []) for (const d of graph.entity(id).mentions.keys()) set.add(d);
        list = [...set].sort();
        hardNegatives.set(type, list);
      }
      return list;
    };
    const reject = (task: Task, reason: string) => {
      ckpt.rejections[reason] = (ckpt.rejections[reason] ?? 0) + 1;
      ckpt.failures[task] = (ckpt.failures[task] ?? 0) + 1;
    };

    let stoppedEarly = false;
    while (ckpt.written < opts.count) {
      await yieldToEventLoop();
      if (interrupted()) {
        log(`interrupted after ${ckpt.written} questions: run the same command again to resume`);
        stoppedEarly = true;
        break;
      }
      const open = tasks.filter((t) => (ckpt.failures[t] ?? 0) < maxFailures);
      if (open.length === 0) break;
      // The task furthest behind its share goes next; ties by the order given.
      const task = open.reduce((best, t) => ((byTask[t] ?? 0) < (byTask[best] ?? 0) ? t : best), open[0]!);
      const attempt = ckpt.attempt++;
      const rng = new Rng(seed, `attempt:${attempt}`);
      const q = await makeQuestion(task, rng, attempt);
      if ('reject' in q) {
        reject(task, q.reject);
        // The material has nothing for this task at all: stop trying it.
        if (q.reject === 'no-material') ckpt.failures[task] = maxFailures;
        continue;
      }
      ckpt.failures[task] = 0;
      dedup.add(q);
      tally(q);
      appender.append(questionLine(q));
      ckpt.written++;
      ckpt.bytes = appender.position;
      writeFileAtomic(ckptFile, JSON.stringify(ckpt));
      progress('questions', ckpt.written, opts.count);
      if (opts.stopAfter !== undefined && ckpt.written >= opts.stopAfter && ckpt.written < opts.count) {
        stoppedEarly = true;
        break;
      }
    }
    appender.close();
    const finished = !stoppedEarly;
    const exhausted = tasks.filter((t) => (ckpt.failures[t] ?? 0) >= maxFailures);
    if (exhausted.length > 0) log(`note: no more questions could be made for ${exhausted.join(', ')} from this material`);
    if (finished) {
      if (ckpt.written < opts.count) log(`warning: only ${ckpt.written} of ${opts.count} questions could be made from this material`);
      renameDurable(partial, out);
      fs.rmSync(ckptFile, { force: true });
    }
    return { out, written: ckpt.written, finished, attempts: ckpt.attempt, byTask, byHops, byLength, rejections: ckpt.rejections, tokenizer: counter.name, tokenizerExact: counter.exact, graph: graphCounts };

    async function makeQuestion(task: Task, rng: Rng, attempt: number): Promise<SynthQuestion | { reject: string }> {
      const drafted: ComposeResult & { dialogue?: DialoguePlan } = COMPOSERS[task]({ graph, db: kg.db, rng });
      if ('reject' in drafted) return drafted;
      const draft: Draft & { dialogue?: DialoguePlan } = drafted;
      const built: BuiltContext | { reject: string } = draft.dialogue
        ? buildDialogueContext(draft.dialogue, graph.docs, counter, opts.targetTokens, rng)
        : builder.build({ evidence: draft.evidence, targetTokens: opts.targetTokens, avoid: draft.avoid, hardNegatives: draft.hardNegativeType ? docsOfType(draft.hardNegativeType) : [], depth: opts.depth }, rng);
      if ('reject' in built) return built;
      const q: SynthQuestion = {
        id: `${task}-${sha(`${seed}:${attempt}`).slice(0, 12)}`,
        task,
        question: draft.question,
        answer: draft.answer,
        aliases: draft.aliases,
        options: draft.options,
        context: built.context,
        evidence: built.evidence,
        hops: draft.hops,
        tokens: built.tokens,
        seed: `${seed}:${attempt}`,
        meta: { ...draft.meta, depth: built.depth, documents_in_context: built.docs.length, blocks: built.blocks, source_spans: draft.evidence, tokenizer: counter.name },
      };
      // Operand offsets become context offsets.
      const ops = q.meta.operands as Array<{ doc: string; start: number; end: number }> | undefined;
      if (ops) {
        const mapped = ops.map((o) => mapSpan(o, draft.evidence, built.evidence));
        if (mapped.some((m) => m === null)) return { reject: 'operand-outside-evidence' };
        q.meta.operands = ops.map((o, i) => ({ ...o, ...mapped[i]! }));
      }
      const reason = checkLength(q.tokens, opts.targetTokens) ?? checkEvidence(q, graph.docs) ?? checkSupported(q) ?? checkLeak(q) ?? (dedup.isDuplicate(q) ? 'near-duplicate' : null);
      if (reason) return { reject: reason };
      if (llm && opts.llmChecks !== false) {
        const v = await llmVerify(llm, q, draft.dialogue ? null : () => builder.build({ evidence: draft.evidence, targetTokens: Math.round(opts.targetTokens * 1.5), avoid: draft.avoid, hardNegatives: [], depth: opts.depth }, rng));
        if (v) return { reject: v };
      }
      return q;
    }
  } finally {
    if (appender && !appender.closed) {
      appender.close();
      // Nothing was written: an empty .partial is no progress, so it does not outlive a failed run.
      if (appender.position === 0) fs.rmSync(partial, { force: true });
    }
    kg.close();
  }
}

/** Map a source span inside one of `sources` to the matching place among `placed` (same order). */
function mapSpan(s: { doc: string; start: number; end: number }, sources: Array<{ doc: string; start: number; end: number }>, placed: Array<{ start: number; end: number }>): { start: number; end: number } | null {
  for (let i = 0; i < sources.length; i++) {
    const src = sources[i]!;
    if (src.doc === s.doc && src.start <= s.start && s.end <= src.end) {
      const at = placed[i]!.start + (s.start - src.start);
      return { start: at, end: at + (s.end - s.start) };
    }
  }
  return null;
}
