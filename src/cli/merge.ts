/** `qwenlong merge`: fuse fine-tuned models that share a base (SCE, as QwenLong-L1.5 fuses its memory expert). */
import { existsSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { mergeFolders } from '../model/merge.js';

interface MergeCli {
  method: 'sce';
  base: string;
  models: string[];
  out: string;
  selectTopK: number;
  verbose?: boolean;
  json?: boolean;
}

function fraction(v: string): number {
  const x = Number(v);
  if (!(x > 0 && x <= 1)) throw new InvalidArgumentError(`--select-top-k must be a number in (0, 1] (got ${JSON.stringify(v)})`);
  return x;
}

export function registerMergeCommand(program: Command): void {
  program
    .command('merge')
    .description('merge fine-tuned models of one architecture onto their common base model (SCE: select, calculate, erase)')
    .addOption(new Option('--method <name>', 'merge method').choices(['sce']).default('sce'))
    .requiredOption('--base <path>', 'the base (pivot) model: a Hugging Face folder or a llama2.c model.bin')
    .requiredOption('--models <paths...>', 'the fine-tuned models to merge onto the base (one or more)')
    .requiredOption('--out <dir>', 'the merged Hugging Face folder to write (must not exist)')
    .option('--select-top-k <f>', 'fraction of elements, highest variance across the models first, whose changes are kept (1 = all)', fraction, 1)
    .option('--verbose', 'one line per tensor: model weights, elements selected and kept')
    .option('--json', 'print a summary as JSON')
    .action((o: MergeCli) => {
      if (!existsSync(o.base)) throw new Error(`--base: no model at ${o.base}`);
      for (const m of o.models) if (!existsSync(m)) throw new Error(`--models: no model at ${m}`);
      if (existsSync(o.out)) throw new Error(`--out: ${o.out} already exists; remove it or choose another folder`);
      const t0 = performance.now();
      const pct = (a: number, b: number) => `${((100 * a) / Math.max(b, 1)).toFixed(1)}%`;
      const result = mergeFolders({
        method: o.method, base: o.base, models: o.models, out: o.out, selectTopK: o.selectTopK,
        onTensor: o.verbose
          ? (name, s) => console.error(`${name}: weights ${s.weights.map((w) => w.toFixed(3)).join(' ')} | selected ${pct(s.selected, s.numel)} | kept ${s.kept.map((k) => pct(k, s.numel)).join(' ')}`)
          : undefined,
      });
      const seconds = (performance.now() - t0) / 1000;
      if (o.json) {
        console.log(JSON.stringify({ method: o.method, selectTopK: o.selectTopK, models: o.models.length, ...result, seconds }, null, 2));
        return;
      }
      console.log(`merged ${o.models.length} model${o.models.length === 1 ? '' : 's'} onto the base with ${o.method} (select-top-k ${o.selectTopK}): ${result.tensors} tensors, ${result.parameters} parameters, ${seconds.toFixed(1)} s`);
      console.log(`wrote ${result.out}${result.copied.length ? ` (tokenizer files: ${result.copied.join(', ')})` : ' (no tokenizer files in the base folder to copy)'}`);
    });
}
