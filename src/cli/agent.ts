/** `qwenlong agent`: answer a question over documents of any length with the memory agent. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { hasOwnChatTemplate, LocalBackend, OpenAIBackend, type AgentBackend } from '../agent/backend.js';
import { readFiles } from '../agent/chunks.js';
import { MemoryAgent } from '../agent/memory_agent.js';
import { loadModel } from '../model/index.js';
import { usableDevice } from '../native/device.js';
import { TOKENIZER_HELP, tokenizerFor } from './train.js';
import { loadTokenizer } from '../tokenizer/index.js';

function int(name: string, lo: number) {
  return (v: string): number => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < lo) throw new InvalidArgumentError(`--${name} must be an integer ≥ ${lo} (got ${JSON.stringify(v)})`);
    return x;
  };
}

/**
 * This process's peak resident set, bytes: VmHWM of /proc/self/status where there is one (per address space, so it
 * starts afresh at exec; getrusage's maxRSS keeps the forking parent's resident size for a spawned child on Linux).
 */
export function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

interface AgentCli {
  doc: string[];
  question: string;
  format?: string;
  model?: string;
  tokenizer?: string;
  llm?: string;
  apiKey?: string;
  chunkTokens?: number;
  memoryTokens?: number;
  answerTokens?: number;
  prompts?: 'chat' | 'plain';
  temperature: number;
  device?: string;
  showMemory?: boolean;
  json?: boolean;
  progress: boolean;
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('answer a question over documents far longer than the context window: read them chunk by chunk, keeping a bounded memory')
    .requiredOption('--doc <files...>', 'the documents (text files, read as streams, in order)')
    .requiredOption('--question <text>', 'the core question (asked at every chunk)')
    .option('--format <text>', 'answer-format instructions (given only to the final answer call)')
    .option('--model <path|name>', 'a llama2.c model.bin or Hugging Face folder; with --llm, the served model name')
    .option('--tokenizer <path>', `${TOKENIZER_HELP}; with --llm, the tokenizer that counts chunk tokens`)
    .option('--llm <url>', 'an OpenAI-compatible endpoint (http://host:port/v1) instead of a local model')
    .option('--api-key <key>', 'bearer key for --llm (default $OPENAI_API_KEY)')
    .option('--chunk-tokens <n>', "input tokens per chunk (default 1024, at most half a local model's window)", int('chunk-tokens', 1))
    .option('--memory-tokens <n>', "tokens generated per memory update at most (default 256, at most an eighth of a local model's window)", int('memory-tokens', 1))
    .option('--answer-tokens <n>', "tokens of the final answer at most (default 256, at most an eighth of a local model's window)", int('answer-tokens', 1))
    .addOption(new Option('--prompts <kind>', "'chat' for instruction models, 'plain' for small base models (default: chat when the tokenizer has a chat template)").choices(['chat', 'plain']))
    .option('--temperature <t>', '0 is greedy', (v) => {
      const x = Number(v);
      if (!(x >= 0) || !Number.isFinite(x)) throw new InvalidArgumentError(`--temperature must be a number ≥ 0 (got ${JSON.stringify(v)})`);
      return x;
    }, 0)
    .option('--device <d>', 'cpu or cuda (local model)')
    .option('--show-memory', 'print the memory after every chunk (stderr)')
    .option('--json', 'print the run as JSON: answer, memory, chunks, tokens, seconds, peak RSS')
    .option('--no-progress', 'no progress bar')
    .action(async (o: AgentCli) => {
      for (const f of o.doc) if (!existsSync(f) || !statSync(f).isFile()) throw new Error(`--doc: no file at ${f}`);
      if (!o.model) throw new Error(o.llm ? '--model: the served model name is required with --llm' : '--model: a model path is required (or --llm URL)');
      let backend: AgentBackend;
      let chat: boolean;
      let dispose = () => {};
      let window = Infinity;
      if (o.llm) {
        backend = new OpenAIBackend({ url: o.llm, model: o.model, apiKey: o.apiKey ?? process.env.OPENAI_API_KEY, tokenizer: o.tokenizer ? loadTokenizer(o.tokenizer) : undefined });
        chat = true;
      } else {
        if (!existsSync(o.model)) throw new Error(`--model: no model at ${o.model}`);
        const tokenizer = tokenizerFor(o.model, o.tokenizer);
        const { model } = loadModel(o.model, { device: usableDevice(o.device, '--device') });
        window = model.config.maxSeqLen;
        chat = hasOwnChatTemplate(tokenizer);
        const local = new LocalBackend(model, tokenizer, { chat: (o.prompts ?? (chat ? 'chat' : 'plain')) === 'chat' && chat });
        backend = local;
        dispose = () => {
          local.close();
          model.dispose();
        };
      }
      // defaults that leave room in a small local model's window for the instructions, the question and the memory
      const chunkTokens = o.chunkTokens ?? Math.min(1024, Math.floor(window / 2));
      const memoryTokens = o.memoryTokens ?? Math.min(256, Math.floor(window / 8));
      const answerTokens = o.answerTokens ?? Math.min(256, Math.floor(window / 8));
      const agent = new MemoryAgent({ backend, chunkTokens, memoryTokens, answerTokens, prompts: o.prompts ?? (chat ? 'chat' : 'plain'), temperature: o.temperature });
      const total = o.doc.reduce((n, f) => n + statSync(f).size, 0);
      const bar = o.progress && process.stderr.isTTY && !o.showMemory
        ? new cliProgress.SingleBar({ format: 'reading {bar} {percentage}% | chunk {chunk} | {rate} chunks/s', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
        : undefined;
      bar?.start(total, 0, { chunk: 0, rate: '–' });
      const start = performance.now();
      try {
        const run = await agent.run({ question: o.question, format: o.format, document: readFiles(o.doc) }, {
          onChunk: (p) => {
            bar?.update(Math.min(total, p.chars), { chunk: p.chunk + 1, rate: ((p.chunk + 1) / ((performance.now() - start) / 1000)).toFixed(1) });
            if (o.showMemory) process.stderr.write(`[chunk ${p.chunk + 1}, ${p.chunkTokens} tokens] memory: ${p.memory}${p.plan ? `\n  plan: ${p.plan}` : ''}\n`);
          },
        });
        bar?.stop();
        const peakRssMB = peakRss() / 2 ** 20;
        if (o.json) console.log(JSON.stringify({ answer: run.answer, memory: run.memory, plan: run.plan, chunks: run.chunks, tokensRead: run.tokensRead, seconds: run.seconds, chunksPerSecond: run.chunks / run.seconds, tokensPerSecond: run.tokensRead / run.seconds, peakRssMB }));
        else {
          console.log(run.answer);
          process.stderr.write(`${run.chunks} chunks, ${run.tokensRead} tokens in ${run.seconds.toFixed(1)} s (${(run.chunks / run.seconds).toFixed(1)} chunks/s), peak RSS ${peakRssMB.toFixed(0)} MB\n`);
        }
      } catch (e) {
        // a prompt that outgrew the window: say which flags size it
        if (e instanceof RangeError && /the model takes \d+/.test(e.message)) {
          throw new Error(`${e.message} (this run: --chunk-tokens ${chunkTokens}, --memory-tokens ${memoryTokens}, --answer-tokens ${answerTokens}; the question and instructions share the window too)`);
        }
        throw e;
      } finally {
        bar?.stop();
        dispose();
      }
    });
}
