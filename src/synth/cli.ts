import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { SynthError } from './errors.js';
import { synthesize, type SynthOptions, type SynthSummary } from './pipeline.js';
import { TASKS, type Task } from './types.js';
import { generateWorld, WORLD_LIMITS, worldOptionProblem, worldVocabulary, type WorldOptions } from './world.js';
import { readQuestions } from './schema.js';
import { writeFileAtomic } from './io.js';

function intArg(name: string, min: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v.trim()) || Number(v) < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (got ${JSON.stringify(v)})`);
    return Number(v);
  };
}

function depthArg(v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !(x >= 0 && x <= 1)) throw new InvalidArgumentError(`--depth must be a number from 0 to 1 (got ${JSON.stringify(v)})`);
  return x;
}

function tasksArg(v: string): Task[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((t) => !TASKS.includes(t as Task));
  if (list.length === 0 || bad.length > 0) throw new InvalidArgumentError(`--tasks: unknown task ${bad.map((b) => `"${b}"`).join(', ') || '(empty list)'}; known: ${TASKS.join(', ')}`);
  return list as Task[];
}

/** `--world people=40,cities=12,countries=4,organizations=10,filler=6` (all optional). */
function worldArg(v: string | true): Partial<WorldOptions> {
  if (v === true || v.trim() === '') return {};
  const out: Record<string, number> = {};
  for (const part of v.split(',')) {
    const m = /^\s*([^=\s]*)\s*=\s*(.*?)\s*$/.exec(part);
    if (!m) throw new SynthError(`--world: expected key=number pairs with keys ${Object.keys(WORLD_LIMITS).join(', ')} (got ${JSON.stringify(part)})`);
    const key = m[1]!;
    const raw = m[2]!;
    const value = /^[+-]?\d+$/.test(raw) ? Number(raw) : raw;
    const problem = worldOptionProblem(key, value);
    if (problem) throw new SynthError(`--world: ${problem}`);
    out[key] = value as number;
  }
  return out;
}

interface CliOptions {
  out?: string;
  overwrite?: boolean;
  count: number;
  tasks?: Task[];
  targetTokens: number;
  seed: string;
  tokenizer?: string;
  llm?: string;
  model?: string;
  apiKey?: string;
  llmConcurrency?: number;
  llmTimeout?: number;
  llmExtract?: boolean;
  llmChecks: boolean;
  world?: string | true;
  worldVocab?: string;
  work?: string;
  maxDocs?: number;
  depth?: number;
  validate?: string;
  json?: boolean;
  progress: boolean;
}

function printSummary(s: SynthSummary, write: (line: string) => void): void {
  const row = (title: string, rec: Record<string, number>) => {
    const entries = Object.entries(rec).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    write(`  ${title}: ${entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  };
  write(`${s.finished ? 'wrote' : 'paused after'} ${s.written} questions to ${s.out} (${s.attempts} attempts; tokenizer ${s.tokenizer}${s.tokenizerExact ? '' : ', estimated counts'})`);
  row('by task', s.byTask);
  row('by hops', s.byHops);
  row('by length', s.byLength);
  row('rejected', s.rejections);
}

/** Add `qwenlong synth` to a commander program. */
export function registerSynthCommand(program: Command): void {
  program
    .command('synth')
    .description('synthesize verifiable long-context questions from documents (default: the bundled State of the Union corpus) or a synthetic world')
    .argument('[inputs...]', 'txt, md, html, json, jsonl or csv files, folders or globs')
    .option('-o, --out <file>', 'output JSONL file (an interrupted run of it resumes)')
    .option('--overwrite', 'replace an existing output file (refused otherwise)')
    .option('-n, --count <n>', 'questions to write', intArg('--count', 1), 100)
    .option('--tasks <list>', `comma-separated tasks (${TASKS.join(', ')})`, tasksArg)
    .option('--target-tokens <n>', 'context length in tokens', intArg('--target-tokens', 256), 16000)
    .option('--seed <s>', 'seed; the same seed gives the same bytes', '0')
    .option('--tokenizer <path>', "tokenizer.json to count tokens with (default: Qwen3's)")
    .option('--llm <url>', 'OpenAI-compatible endpoint for extraction and checks')
    .option('--model <name>', 'model name for --llm')
    .addOption(new Option('--api-key <key>', 'bearer token for --llm').env('QWENLONG_LLM_API_KEY'))
    .option('--llm-concurrency <n>', 'LLM requests in flight', intArg('--llm-concurrency', 1))
    .option('--llm-timeout <ms>', 'LLM request timeout in milliseconds', intArg('--llm-timeout', 1))
    .option('--llm-extract', 'extract facts with the LLM instead of the offline extractor')
    .option('--no-llm-checks', 'skip the knowledge-grounding and contextual-robustness checks')
    .option('--world [spec]', 'use a synthetic world (people=40,cities=12,countries=4,organizations=10,filler=6)')
    .option('--world-vocab <file>', "write the synthetic world's vocabulary, one word a line")
    .option('--work <dir>', 'folder for the knowledge graph and checkpoint (default <out>.work)')
    .option('--max-docs <n>', 'use at most n documents of the bundled corpus', intArg('--max-docs', 2))
    .option('--depth <x>', 'evidence depth from 0 (start) to 1 (end); random by default', depthArg)
    .option('--validate <file>', 'check a question file against the schema and exit')
    .option('--json', 'print the summary as JSON')
    .option('--no-progress', 'no progress bars')
    .action(async (inputs: string[], o: CliOptions) => {
      try {
        await runSynth(inputs, o);
      } catch (e) {
        process.stderr.write(`error: ${(e as Error).message}\n`);
        process.exitCode = e instanceof SynthError || e instanceof RangeError ? 1 : 2;
      }
    });
}

async function runSynth(inputs: string[], o: CliOptions): Promise<void> {
  if (o.validate) {
    const { questions, errors } = readQuestions(o.validate, false);
    for (const e of errors.slice(0, 20)) process.stderr.write(`${o.validate}:${e.line}: ${e.error}\n`);
    const msg = `${questions.length} valid, ${errors.length} invalid lines in ${o.validate}`;
    if (o.json) process.stdout.write(`${JSON.stringify({ valid: questions.length, invalid: errors.length, errors })}\n`);
    else process.stdout.write(`${msg}\n`);
    if (errors.length > 0) process.exitCode = 1;
    return;
  }
  if (!o.out) throw new SynthError('--out: an output file is required (e.g. --out questions.jsonl)');
  if ((o.llm && !o.model) || (!o.llm && o.model)) throw new SynthError('--llm and --model go together');
  const world = o.world !== undefined ? { seed: o.seed, ...worldArg(o.world) } : undefined;
  if (world && inputs.length > 0) throw new SynthError('--world: give either input files or --world, not both');
  if (o.worldVocab) {
    if (!world) throw new SynthError('--world-vocab needs --world');
    const vocab = path.resolve(o.worldVocab);
    const out = path.resolve(o.out);
    if ([out, `${out}.partial`, `${out}.lock`].includes(vocab)) throw new SynthError(`--world-vocab ${o.worldVocab}: must not be the output file`);
    if (fs.existsSync(vocab) && fs.statSync(vocab).isDirectory()) throw new SynthError(`--world-vocab ${o.worldVocab}: is a folder; give the name of a file to write`);
  }
  for (const i of inputs) if (!fs.existsSync(i) && !/[*?[{]/.test(i)) throw new SynthError(`input ${JSON.stringify(i)}: no such file or folder`);

  const useBars = o.progress && !o.json && process.stderr.isTTY === true;
  const bars = useBars ? new cliProgress.MultiBar({ format: ' {stage} [{bar}] {value}/{total} {eta_formatted}', hideCursor: true, clearOnComplete: false, stream: process.stderr }, cliProgress.Presets.shades_classic) : null;
  const stageBars = new Map<string, cliProgress.SingleBar>();
  const opts: SynthOptions = {
    inputs,
    out: o.out,
    overwrite: o.overwrite,
    count: o.count,
    tasks: o.tasks,
    targetTokens: o.targetTokens,
    seed: o.seed,
    tokenizer: o.tokenizer,
    llm: o.llm ? { url: o.llm, model: o.model ?? '', apiKey: o.apiKey, concurrency: o.llmConcurrency, timeoutMs: o.llmTimeout } : undefined,
    llmChecks: o.llmChecks,
    llmExtract: o.llmExtract,
    world,
    workDir: o.work,
    maxDocs: o.maxDocs,
    depth: o.depth,
    log: (line) => (bars ? bars.log(`${line}\n`) : o.json ? undefined : process.stderr.write(`${line}\n`)),
    progress: (stage, done, total) => {
      if (!bars || total === 0) return;
      let bar = stageBars.get(stage);
      if (!bar) {
        bar = bars.create(total, 0, { stage: stage.padEnd(9) });
        stageBars.set(stage, bar);
      }
      bar.update(done);
    },
  };
  let summary: SynthSummary;
  try {
    summary = await synthesize(opts);
  } finally {
    bars?.stop();
  }
  // Written once the run is done, so that a refused or failed run leaves no file behind.
  if (o.worldVocab && world) writeFileAtomic(o.worldVocab, `${worldVocabulary(generateWorld(world)).join('\n')}\n`);
  if (o.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else printSummary(summary, (l) => process.stdout.write(`${l}\n`));
  if (summary.written < o.count) process.exitCode = 1;
}
