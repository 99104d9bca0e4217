/** `qwenlong generate`: text from a model, as llama2.c's run.c prints it (stdout: the text only; stderr: speed). */
import type { Command } from 'commander';
import { loadModel } from '../model/index.js';
import { usableDevice } from '../native/device.js';
import { TOKENIZER_HELP, tokenizerFor } from './train.js';

function number(name: string, lo: number, hi: number, integer = false) {
  return (v: string): number => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < lo || x > hi || (integer && !Number.isInteger(x))) throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], not '${v}'`);
    return x;
  };
}

export function registerGenerateCommand(program: Command): void {
  program
    .command('generate')
    .description('generate text with a model (a llama2.c checkpoint or a Hugging Face folder)')
    .requiredOption('--model <path>', 'llama2.c model.bin, or a Hugging Face model folder')
    .option('--tokenizer <path>', TOKENIZER_HELP)
    .option('--prompt <text>', 'text to continue (default: start from BOS alone)')
    .option('--steps <n>', 'positions in all, prompt included', number('steps', 1, 1 << 20, true), 256)
    .option('--temperature <t>', '0 is greedy', number('temperature', 0, 100), 1)
    .option('--top-p <p>', 'nucleus sampling', number('top-p', 0.000001, 1), 0.9)
    .option('--seed <s>', 'sampling seed', number('seed', 0, 2 ** 32 - 1, true))
    .option('--device <d>', 'cpu or cuda (default: the runtime default)')
    .action((opts: { model: string; tokenizer?: string; prompt?: string; steps: number; temperature: number; topP: number; seed?: number; device?: string }) => {
      const device = usableDevice(opts.device, '--device');
      const tokenizer = tokenizerFor(opts.model, opts.tokenizer);
      const { model } = loadModel(opts.model, { tokenizer: false, device });
      try {
        const prompt = tokenizer.encode(opts.prompt ?? '', { bos: true });
        if (prompt.length >= opts.steps) throw new Error(`the prompt has ${prompt.length} tokens, --steps is ${opts.steps}`);
        const start = performance.now();
        const [g] = model.generate([prompt], {
          maxTokens: opts.steps - prompt.length,
          temperature: opts.temperature,
          topP: opts.topP,
          seed: opts.seed ?? Date.now() % 2 ** 32,
        });
        const seconds = (performance.now() - start) / 1000;
        const stopped = g!.finishReason === 'stop' ? g!.tokens.slice(0, -1) : g!.tokens;
        process.stdout.write(`${tokenizer.decode([...prompt, ...stopped])}\n`);
        process.stderr.write(`achieved tok/s: ${((prompt.length + g!.tokens.length - 1) / seconds).toFixed(1)}\n`);
      } finally {
        model.dispose();
      }
    });
}
