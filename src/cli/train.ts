/** `qwenlong train | sft | eval | report`: the recipe from the command line. */
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { evaluate, type EvalReport } from '../eval/evaluate.js';
import { writeReport } from '../eval/report.js';
import { loadModel } from '../model/index.js';
import { readHfFolder } from '../model/hf.js';
import { readLlama2c } from '../model/llama2c.js';
import { packageRoot } from '../native/addon.js';
import { usableDevice } from '../native/device.js';
import { ALGOS, makeTrainConfig, type Algo, type Stage, type TrainConfig } from '../rl/config.js';
import { readItems } from '../rl/data.js';
import { runTinyRecipe, sftTiny } from '../rl/recipe.js';
import { runSft } from '../rl/sft.js';
import { tinyHeldOut } from '../rl/tiny.js';
import { worldTokenizer } from '../rl/tiny_world.js';
import { train, type StepRecord } from '../rl/trainer.js';
import { AdamW } from '../model/optim.js';
import { copyTokenizerFiles } from '../model/merge.js';
import { sftMemory } from '../agent/train_memory.js';
import { evalMemoryCli, trainMemoryCli } from './memory.js';
import { findTokenizer, loadTokenizer, type TextTokenizer } from '../tokenizer/index.js';

function num(name: string, lo: number, hi = Infinity, integer = false) {
  return (v: string): number => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x) || x < lo || x > hi || (integer && !Number.isInteger(x))) {
      throw new InvalidArgumentError(`--${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${lo}${hi < Infinity ? ` and ≤ ${hi}` : ''} (got ${JSON.stringify(v)})`);
    }
    return x;
  };
}

/** The packaged SFT checkpoint of the tiny preset. */
export function tinyCheckpoint(): string {
  return join(packageRoot(), 'models', 'tiny-sft');
}

/** The `--tokenizer` option's help, the same for every command that loads a model. */
export const TOKENIZER_HELP = "the model's tokenizer (default: tokenizer.json or words.json in the model folder, or tokenizer.bin / tok<vocab>.bin beside a .bin model)";

/** A model's vocabulary size from its config.json or its llama2.c header alone (no weights read). */
function modelVocabSize(modelPath: string): number {
  if (statSync(modelPath).isDirectory()) {
    const v = (JSON.parse(readFileSync(join(modelPath, 'config.json'), 'utf8')) as { vocab_size?: unknown }).vocab_size;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${join(modelPath, 'config.json')}: no valid vocab_size`);
    return v;
  }
  const fd = openSync(modelPath, 'r');
  try {
    const head = Buffer.alloc(28);
    if (readSync(fd, head, 0, 28, 0) < 28) throw new Error(`${modelPath}: shorter than a llama2.c header`);
    return Math.abs(head.readInt32LE(20));
  } finally {
    closeSync(fd);
  }
}

/**
 * The tokenizer given, else the one in or beside the model (findTokenizer); either way one whose vocabulary fits the
 * model's (a tokenizer with more ids than the model's embedding would index past it).
 */
export function tokenizerFor(modelPath: string, explicit?: string): TextTokenizer {
  if (!existsSync(modelPath)) throw new Error(`no model at ${modelPath}`);
  const vocab = modelVocabSize(modelPath);
  const path = explicit ?? findTokenizer(modelPath, vocab);
  if (!path) throw new Error(`no tokenizer in or beside ${modelPath} (tokenizer.json, words.json, tokenizer.bin or tok<vocab>.bin): give --tokenizer`);
  const tok = loadTokenizer(path, explicit ? undefined : vocab);
  if (tok.vocabSize > vocab) throw new Error(`${explicit ? '--tokenizer ' : ''}${path}: the tokenizer has ${tok.vocabSize} tokens, more than the model's vocabulary of ${vocab}`);
  return tok;
}

/**
 * Puts the tokenizer a command used beside the model folder it wrote (the starting model's tokenizer files, or those of
 * an explicit --tokenizer folder or tokenizer.json / words.json), so the output loads alone in every command.
 */
function keepTokenizer(o: { model?: string; tokenizer?: string }, dest: string): void {
  if (o.model) copyTokenizerFiles(o.model, dest);
  if (!o.tokenizer || !existsSync(o.tokenizer)) return;
  if (statSync(o.tokenizer).isDirectory()) copyTokenizerFiles(o.tokenizer, dest);
  else if (['tokenizer.json', 'words.json'].includes(basename(o.tokenizer))) cpSync(o.tokenizer, join(dest, basename(o.tokenizer)));
}

/**
 * Checks an output file before any work: not a folder, not one of the command's inputs (it would be replaced by
 * the output); its folder is created when missing. Returns the path.
 */
export function outputFile(path: string, flag: string, inputs: readonly (string | undefined)[]): string {
  if (existsSync(path) && statSync(path).isDirectory()) throw new Error(`${flag}: ${path} is a folder; give a file path`);
  const real = (p: string) => (existsSync(p) ? realpathSync(p) : resolve(p));
  for (const input of inputs) {
    if (input !== undefined && existsSync(input) && real(input) === real(path)) throw new Error(`${flag}: ${path} is also an input of this command; writing it would replace that input`);
  }
  mkdirSync(dirname(resolve(path)), { recursive: true });
  return path;
}

/** For presets that bring their own tokenizer: refuses a --tokenizer it would not use. */
export function refuseTokenizer(o: { tokenizer?: string }, what: string): void {
  if (o.tokenizer !== undefined) throw new Error(`--tokenizer: ${what} brings its own tokenizer; leave out --tokenizer`);
}

/** A step's figures as the progress bar and the progress lines print them. */
function stepFields(r: StepRecord) {
  return { reward: r.rewardMean.toFixed(3), entropy: r.batchEntropy?.toFixed(3) ?? '–', aepo: r.aepoOn ? 'on' : 'off', sps: r.stepSeconds.toFixed(2) };
}

function progress(enabled: boolean) {
  if (!enabled) return { update: (_r: StepRecord, _t: number) => {}, stop: () => {} };
  if (!process.stderr.isTTY) {
    // a log rather than a terminal: a line about every tenth of the run (and the last step)
    return {
      update(r: StepRecord, total: number) {
        if (r.step % Math.max(1, Math.ceil(total / 10)) !== 0 && r.step !== total) return;
        const f = stepFields(r);
        process.stderr.write(`train step ${r.step}/${total}: reward ${f.reward}, entropy ${f.entropy}, aepo ${f.aepo}, ${f.sps} s/step\n`);
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar({ format: 'train {bar} {value}/{total} steps | reward {reward} | entropy {entropy} | aepo {aepo} | {sps} s/step', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(r: StepRecord, total: number) {
      const payload = stepFields(r);
      if (!started) {
        bar.start(total, r.step, payload);
        started = true;
      } else bar.update(r.step, payload);
    },
    stop: () => started && bar.stop(),
  };
}

export interface TrainCli {
  preset?: string;
  agent?: 'memory';
  model?: string;
  tokenizer?: string;
  data?: string;
  out?: string;
  algo: Algo;
  balance?: 'none' | 'task';
  advStd?: TrainConfig['advStd'];
  entropyLow?: number;
  entropyHigh?: number;
  group?: number;
  batch?: number;
  lr?: number;
  minibatches?: number;
  maxInput?: number;
  maxOutput?: number;
  steps?: number;
  stages?: string;
  seed?: number;
  checkpointEvery?: number;
  retrospective?: number;
  resume?: boolean;
  overwrite?: boolean;
  maxSeconds?: number;
  device?: string;
  progress: boolean;
  report: boolean;
}

function overrides(o: TrainCli, stagesBase: Stage[]): Partial<TrainConfig> {
  const out: Partial<TrainConfig> = { algo: o.algo };
  const set = <K extends keyof TrainConfig>(k: K, v: TrainConfig[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('balance', o.balance);
  set('advStd', o.advStd);
  set('entropyLow', o.entropyLow);
  set('entropyHigh', o.entropyHigh);
  set('group', o.group);
  set('batch', o.batch);
  set('lr', o.lr);
  set('minibatches', o.minibatches);
  set('seed', o.seed);
  set('checkpointEvery', o.checkpointEvery);
  set('retrospective', o.retrospective);
  if (o.stages) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(o.stages, 'utf8'));
    } catch (e) {
      throw new Error(`--stages ${o.stages}: ${(e as Error).message}`);
    }
    if (!Array.isArray(raw)) throw new Error(`--stages ${o.stages}: expected a JSON list of { maxInput, maxOutput, steps, tasks? }`);
    out.stages = raw as Stage[];
  } else if (o.maxInput !== undefined || o.maxOutput !== undefined || o.steps !== undefined) {
    if (stagesBase.length !== 1 && (o.maxInput !== undefined || o.maxOutput !== undefined)) throw new Error('--max-input/--max-output set a single stage; use --stages for several');
    out.stages = stagesBase.map((s) => ({ ...s, maxInput: o.maxInput ?? s.maxInput, maxOutput: o.maxOutput ?? s.maxOutput, steps: o.steps ?? s.steps }));
  }
  return out;
}

export interface EvalCli {
  data?: string;
  preset?: string;
  mode: 'single' | 'memory';
  lengths: string;
  perTask: number;
  chunkTokens?: number;
  memoryTokens?: number;
  prompts?: 'chat' | 'plain';
  model?: string;
  tokenizer?: string;
  out?: string;
  maxTokens: number;
  window?: number;
  json?: boolean;
  device?: string;
}

export function scoreLine(r: EvalReport): string {
  return Object.entries(r.byTask).map(([t, s]) => `${t} ${s.score.toFixed(3)} (n=${s.n})`).join(', ');
}

export function registerTrainCommands(program: Command): void {
  program
    .command('train')
    .description('RL with the QwenLong-L1.5 recipe (grpo / aepo / dapo arms); --preset tiny runs the whole recipe on a CPU')
    .option('--preset <name>', "'tiny': the packaged SFT checkpoint, tiny synthetic worlds, held-out evaluation before and after")
    .addOption(new Option('--agent <kind>', "'memory': RL of the memory agent on tiny-world documents (trajectory rewards)").choices(['memory']))
    .option('--model <path>', 'the starting model (Hugging Face folder or llama2.c .bin)')
    .option('--tokenizer <path>', TOKENIZER_HELP)
    .option('--data <file>', 'training items (JSONL: task, prompt or question [+ context], answer)')
    .option('--out <dir>', 'the run folder (metrics.jsonl, checkpoint/, report.html)')
    .addOption(new Option('--algo <algo>', 'the arm').choices(ALGOS as string[]).default('aepo'))
    .addOption(new Option('--balance <how>', 'task-balanced sampling').choices(['none', 'task']))
    .addOption(new Option('--adv-std <how>', 'advantage normalization').choices(['group', 'batch', 'task', 'none']))
    .option('--entropy-low <h>', 'AEPO: negative gradients return below this batch entropy', num('entropy-low', 0))
    .option('--entropy-high <h>', 'AEPO: negative gradients are dropped above this batch entropy', num('entropy-high', 0))
    .option('--group <G>', 'responses per prompt', num('group', 1, 1024, true))
    .option('--batch <B>', 'prompts per step', num('batch', 1, 1 << 16, true))
    .option('--lr <lr>', 'learning rate', num('lr', 0))
    .option('--minibatches <n>', 'updates per batch (clipping acts from the second)', num('minibatches', 1, 1024, true))
    .option('--max-input <n>', 'prompt tokens at most (single stage)', num('max-input', 1, 2 ** 31, true))
    .option('--max-output <n>', 'response tokens at most (single stage)', num('max-output', 1, 2 ** 31, true))
    .option('--steps <n>', 'steps (single stage)', num('steps', 1, 2 ** 31, true))
    .option('--stages <file>', 'JSON list of stages { maxInput, maxOutput, steps, tasks? }, run in order')
    .option('--retrospective <r>', 'keep prompts whose mean reward was at most r for the next stage', num('retrospective', 0, 1))
    .option('--seed <n>', 'seed', num('seed', 0, 2 ** 31, true))
    .option('--checkpoint-every <n>', 'steps between checkpoints', num('checkpoint-every', 1, 2 ** 31, true))
    .option('--resume', 'continue from the run folder\'s checkpoint')
    .option('--overwrite', 'start afresh in a run folder that holds an earlier run, replacing its files (else such a folder is refused)')
    .option('--max-seconds <s>', 'stop this sitting after s seconds (resumable)', num('max-seconds', 1))
    .option('--device <d>', 'cpu or cuda')
    .option('--no-progress', 'no progress bar')
    .option('--no-report', 'do not write report.html at the end')
    .action(async (o: TrainCli) => {
      const log = (line: string) => console.error(line);
      if (o.agent === 'memory') return trainMemoryCli(o);
      const bar = progress(o.progress);
      const onStep = (r: StepRecord, total: number) => bar.update(r, total);
      const device = usableDevice(o.device, '--device');
      if (o.preset !== undefined) {
        if (o.preset !== 'tiny') throw new Error(`--preset: unknown preset '${o.preset}' (known: tiny)`);
        if (o.model || o.data) throw new Error('--preset tiny brings its own model and data: leave out --model and --data');
        refuseTokenizer(o, '--preset tiny');
        const config = overrides(o, makeTrainConfig({ algo: o.algo }, (await import('../rl/tiny.js')).TINY_TRAIN).stages);
        // the default folder: a repeated command starts a new one beside the last (base, base-2, ...) rather than
        // refusing; --resume and --overwrite mean the base folder itself
        const base = join('runs', `tiny-${o.algo}-seed${config.seed ?? 0}`);
        let runDir = o.out ?? base;
        for (let n = 2; o.out === undefined && !o.resume && !o.overwrite && existsSync(join(runDir, 'metrics.jsonl')); n++) runDir = `${base}-${n}`;
        const ckpt = tinyCheckpoint();
        if (!existsSync(join(ckpt, 'config.json'))) throw new Error(`the tiny preset's checkpoint is missing (${ckpt}); make it with: qwenlong sft --preset tiny --out ${ckpt}`);
        log(`tiny recipe: ${o.algo}, run folder ${runDir}`);
        const res = await runTinyRecipe({ runDir, checkpoint: ckpt, overrides: config, resume: o.resume, overwrite: o.overwrite, maxSeconds: o.maxSeconds, log: (l) => { bar.stop(); log(l); }, onStep });
        bar.stop();
        if (o.report) log(`report: ${writeReport(runDir)}`);
        if (!res.after) {
          log(`stopped after ${res.records.length} steps this sitting; continue with --resume`);
          return;
        }
        console.log(`held-out accuracy: before=${res.before.macro.toFixed(3)} after=${res.after.macro.toFixed(3)}`);
        return;
      }
      if (!o.model || !o.data) throw new Error('train needs --model and --data (or --preset tiny)');
      if (!o.out) throw new Error('train needs --out RUN_DIR');
      const tokenizer = tokenizerFor(o.model, o.tokenizer);
      const items = readItems(o.data);
      const config = makeTrainConfig(overrides(o, makeTrainConfig({ algo: o.algo }).stages));
      const host = statSync(o.model).isDirectory() ? readHfFolder(o.model) : readLlama2c(o.model);
      const res = await train({ runDir: o.out, model: host, tokenizer, items, config, resume: o.resume, overwrite: o.overwrite, tokenizerFrom: o.model, maxSeconds: o.maxSeconds, device, log: (l) => { bar.stop(); log(l); }, onStep });
      bar.stop();
      try {
        if (res.finished) {
          await res.model.save(join(o.out, 'final'));
          keepTokenizer(o, join(o.out, 'final'));
          log(`final model: ${join(o.out, 'final')}`);
        } else log(`stopped at step ${res.step}/${res.totalSteps}; continue with --resume`);
      } finally {
        res.model.dispose();
      }
      if (o.report) log(`report: ${writeReport(o.out)}`);
    });

  program
    .command('sft')
    .description('supervised warm-start (answer-only targets); --preset tiny trains the tiny model from scratch')
    .option('--preset <name>', "'tiny'")
    .addOption(new Option('--agent <kind>', "'memory': memory-agent SFT on oracle traces of tiny-world documents, from --model (default the tiny checkpoint)").choices(['memory']))
    .option('--model <path>', 'the starting model')
    .option('--tokenizer <path>', TOKENIZER_HELP)
    .option('--data <file>', 'items (JSONL); the answer is the target')
    .requiredOption('--out <dir>', 'where the model folder goes')
    .option('--steps <n>', 'steps', num('steps', 1, 2 ** 31, true))
    .option('--batch <n>', 'examples per step', num('batch', 1, 1 << 16, true), 64)
    .option('--lr <lr>', 'peak learning rate', num('lr', 0), 1e-3)
    .option('--seed <n>', 'seed', num('seed', 0, 2 ** 31, true), 1)
    .option('--stop-at <p>', 'tiny: stop once macro pass@1 ≥ p and pass@8 ≥ 2·pass@1 (0: run every step)', num('stop-at', 0, 1), 0)
    .option('--device <d>', 'cpu or cuda')
    .action(async (o: { preset?: string; agent?: 'memory'; model?: string; tokenizer?: string; data?: string; out: string; steps?: number; batch: number; lr: number; seed: number; stopAt: number; device?: string }) => {
      const log = (line: string) => console.error(line);
      if (o.agent === 'memory') {
        refuseTokenizer(o, '--agent memory');
        if (o.data) throw new Error('--data: sft --agent memory trains on oracle traces of tiny-world documents; leave out --data');
        const r = await sftMemory({ from: o.model ?? tinyCheckpoint(), outDir: o.out, steps: o.steps ?? 2000, batch: Math.min(o.batch, 32), lr: o.lr, seed: o.seed, log });
        console.log(`memory sft: ${r.steps} steps, last nll ${r.nll.toFixed(4)}; model in ${o.out}`);
        return;
      }
      if (o.preset !== undefined) {
        if (o.preset !== 'tiny') throw new Error(`--preset: unknown preset '${o.preset}' (known: tiny)`);
        if (o.model || o.data) throw new Error('--preset tiny trains the tiny model from scratch on its own data: leave out --model and --data');
        refuseTokenizer(o, '--preset tiny');
        const r = await sftTiny({ outDir: o.out, steps: o.steps ?? 800, batch: o.batch, lr: o.lr, seed: o.seed, stopAt: o.stopAt, log });
        console.log(`sft: ${r.steps} steps, pass@1 ${r.pass1.toFixed(3)}, pass@8 ${r.passK.toFixed(3)}; model in ${o.out}`);
        return;
      }
      if (!o.model || !o.data) throw new Error('sft needs --model and --data (or --preset tiny)');
      const { model } = loadModel(o.model, { device: usableDevice(o.device, '--device'), dtype: 'f32' });
      const tokenizer = tokenizerFor(o.model, o.tokenizer);
      const items = readItems(o.data);
      const eos = tokenizer.eosIds[0];
      if (eos === undefined) throw new Error('sft: the tokenizer has no end-of-sequence token');
      const examples = items.map((it) => {
        const answer = Array.isArray(it.answer) ? it.answer.join(', ') : String(it.answer);
        const prompt = (it.prompt !== undefined ? tokenizer.encode(it.prompt, { bos: true }) : tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: `${it.context ? `${it.context}\n\n` : ''}${it.question}` }]), { bos: tokenizer.bosId !== undefined }));
        return { prompt, response: [...tokenizer.encode(` ${answer}`), eos] };
      }).filter((e) => e.prompt.length + e.response.length <= model.config.maxSeqLen);
      if (examples.length === 0) throw new Error(`sft: no item of ${o.data} fits the model's window (${model.config.maxSeqLen})`);
      const opt = new AdamW(model.parameters(), { lr: o.lr, weightDecay: 0.01 });
      try {
        let next = 0;
        await runSft({
          model, optimizer: opt, steps: o.steps ?? Math.ceil((3 * examples.length) / o.batch), lr: o.lr,
          batch: () => Array.from({ length: Math.min(o.batch, examples.length) }, () => examples[next++ % examples.length]!),
          onStep: (s, m) => s % 10 === 0 && log(`sft step ${s}: nll ${m.nll.toFixed(4)}`),
        });
        mkdirSync(o.out, { recursive: true });
        await model.save(o.out);
        keepTokenizer(o, o.out);
        console.log(`sft: model in ${o.out}`);
      } finally {
        opt.dispose();
        model.dispose();
      }
    });

  program
    .command('eval')
    .description('single-pass evaluation: greedy answers, scores per task and prompt-length bucket, predictions as JSONL')
    .option('--data <file>', 'items (JSONL)')
    .option('--preset <name>', "'tiny': the tiny held-out set (300 questions per task); with --mode memory, 'tiny-memory': tiny-world documents of --lengths tokens")
    .addOption(new Option('--mode <mode>', "'single' (one pass, middle truncation) or 'memory' (the memory agent reads the item's context chunk by chunk)").choices(['single', 'memory']).default('single'))
    .option('--lengths <list>', 'tiny-memory: document lengths in tokens', '4000,16000,64000')
    .option('--per-task <n>', 'tiny-memory: questions per task and length', num('per-task', 1, 1 << 20, true), 8)
    .option('--chunk-tokens <n>', 'memory mode: tokens per chunk', num('chunk-tokens', 1, 2 ** 31, true))
    .option('--memory-tokens <n>', 'memory mode: tokens per memory update', num('memory-tokens', 1, 2 ** 31, true))
    .addOption(new Option('--prompts <kind>', 'memory mode: prompt style (default plain for word/llama2.c tokenizers, chat otherwise)').choices(['chat', 'plain']))
    .option('--model <path>', 'the model (default: the tiny preset\'s checkpoint)')
    .option('--tokenizer <path>', TOKENIZER_HELP)
    .option('--out <file>', 'predictions (JSONL)')
    .option('--max-tokens <n>', 'answer tokens at most', num('max-tokens', 1, 2 ** 31, true), 32)
    .option('--window <n>', 'prompt + answer tokens at most (longer prompts are middle-truncated; default the model\'s)', num('window', 2, 2 ** 31, true))
    .option('--json', 'print the scores as JSON')
    .option('--device <d>', 'cpu or cuda')
    .action(async (o: EvalCli) => {
      if (o.mode === 'memory') return evalMemoryCli(o);
      if (o.preset !== undefined && o.preset !== 'tiny') throw new Error(`--preset: unknown preset '${o.preset}' (known: tiny; with --mode memory: tiny-memory)`);
      if (o.preset && o.data) throw new Error('--preset tiny brings its own questions: give --preset or --data, not both');
      if (!o.data && o.preset !== 'tiny') throw new Error("eval needs --data FILE (or --preset tiny)");
      const modelPath = o.model ?? tinyCheckpoint();
      if (!existsSync(modelPath)) throw new Error(`no model at ${modelPath}`);
      if (o.out) outputFile(o.out, '--out', [o.data]);
      const items = o.data ? readItems(o.data) : tinyHeldOut();
      // the tiny held-out set is in the tiny worlds' words: a model that brings no tokenizer of its own reads it with those
      const tokenizer = o.preset === 'tiny' && !o.tokenizer && !findTokenizer(modelPath) ? worldTokenizer() : tokenizerFor(modelPath, o.tokenizer);
      const { model } = loadModel(modelPath, { device: usableDevice(o.device, '--device') });
      try {
        const r = evaluate(model, tokenizer, items, { maxTokens: o.maxTokens, window: o.window });
        if (o.out) writeFileSync(o.out, r.predictions.map((p) => `${JSON.stringify(p)}\n`).join(''));
        if (o.json) console.log(JSON.stringify({ macro: r.macro, byTask: r.byTask, byLength: r.byLength }, null, 2));
        else {
          console.log(`macro ${r.macro.toFixed(4)} over ${items.length} items`);
          console.log(`by task: ${scoreLine(r)}`);
          console.log(`by prompt length (tasks pooled): ${Object.entries(r.byLength).map(([b, s]) => `${b} ${s.score.toFixed(3)} (n=${s.n})`).join(', ')}`);
        }
      } finally {
        model.dispose();
      }
    });

  program
    .command('report')
    .description('a self-contained HTML report of a run (reward and entropy curves, AEPO switches, per-task accuracy)')
    .argument('<run-dir>', 'the run folder')
    .option('--out <file>', 'where to write (default RUN_DIR/report.html)')
    .action((runDir: string, o: { out?: string }) => {
      console.log(writeReport(runDir, o.out));
    });
}
