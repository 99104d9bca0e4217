/** `qwenlong serve`: an OpenAI-compatible HTTP server over a local model. */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { loadModel } from '../model/index.js';
import { usableDevice } from '../native/device.js';
import { createServer } from '../serve/server.js';
import { TOKENIZER_HELP, tokenizerFor } from './train.js';

function int(name: string, lo: number, hi: number) {
  return (v: string): number => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < lo || x > hi) throw new InvalidArgumentError(`--${name} must be an integer in [${lo}, ${hi}] (got ${JSON.stringify(v)})`);
    return x;
  };
}

interface ServeCli {
  model: string;
  tokenizer?: string;
  port: number;
  host: string;
  name?: string;
  device?: string;
  maxRunning?: number;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions, /v1/completions), batching concurrent requests')
    .requiredOption('--model <path>', 'a llama2.c model.bin or a Hugging Face model folder')
    .option('--tokenizer <path>', TOKENIZER_HELP)
    .option('--port <n>', 'port (0: any free one)', int('port', 0, 65535), 8000)
    .option('--host <h>', 'address to listen on', '127.0.0.1')
    .option('--name <name>', 'the model name clients ask for (default: the model file or folder name)')
    .option('--device <d>', 'cpu or cuda (default: the runtime default)')
    .option('--max-running <n>', 'requests decoding at once at most (engine default 64)', int('max-running', 1, 1 << 16))
    .action(async (o: ServeCli) => {
      if (!existsSync(o.model)) throw new Error(`--model: no model at ${o.model}`);
      const tokenizer = tokenizerFor(o.model, o.tokenizer);
      const { model } = loadModel(o.model, { device: usableDevice(o.device, '--device') });
      const modelName = o.name ?? (basename(o.model.replace(/[/\\]+$/, '')) || 'qwenlong');
      const served = createServer({ model, tokenizer, modelName, engineOptions: { maxRunning: o.maxRunning }, log: (line) => console.error(line) });
      let url: string;
      try {
        ({ url } = await served.listen(o.port, o.host));
      } catch (e) {
        await served.close();
        model.dispose();
        throw e;
      }
      process.stderr.write(`serving ${modelName} at ${url}\n`);
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.stderr.write(`${signal}: closing\n`);
          void served.close().finally(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      model.dispose();
    });
}
