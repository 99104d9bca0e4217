#!/usr/bin/env node
/** The qwenlong command line. */
import { Command } from 'commander';

import { runBenchmarks, suiteFiles } from '../bench/runner.js';
import { info, packageVersion } from '../native/runtime.js';
import { registerSynthCommand } from '../synth/cli.js';
import { registerGenerateCommand } from './generate.js';
import { registerTrainCommands } from './train.js';
import { registerAgentCommand } from './agent.js';
import { registerMergeCommand } from './merge.js';
import { registerServeCommand } from './serve.js';

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}

export function buildProgram(): Command {
  const program = new Command();
  program.name('qwenlong').description('QwenLong-L1.5 long-context post-training on a native CPU/CUDA runtime').version(packageVersion());

  program
    .command('info')
    .description('show the version, the device in use and why, CUDA and CPU facts')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      const i = info();
      if (opts.json) {
        console.log(JSON.stringify(i, null, 2));
        return;
      }
      console.log(`qwenlong ${i.version}`);
      console.log(`device: ${i.device} (${i.deviceReason})`);
      console.log(`cuda: compiled ${i.cuda.compiled}${i.cuda.compiled ? ` [${i.cuda.archs}]` : ''}, available ${i.cuda.available}`);
      if (!i.deviceReason.includes(i.cuda.reason)) console.log(`  ${i.cuda.reason}`);
      // CUDA encodes versions as 1000 * major + 10 * minor
      const version = (v: number) => (v ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : 'none');
      if (i.cuda.compiled) console.log(`  runtime ${version(i.cuda.runtimeVersion)}, driver ${version(i.cuda.driverVersion)}`);
      for (const d of i.cuda.devices) console.log(`  ${d.name}: sm_${d.computeCapability.replace('.', '')}, ${d.smCount} SMs, ${formatBytes(d.memoryBytes)}`);
      console.log(`cpu: ${i.cpu.isa} (supported: ${i.cpu.supportedIsas.join(', ')}${i.cpu.bf16Dot ? '; bf16 dot products' : ''}), ${i.cpu.threads} threads`);
      console.log(`addon: ${i.addon}`);
    });

  program
    .command('bench')
    .description('run kernel benchmarks (all suites, or the ones named)')
    .argument('[names...]', 'suite names')
    .option('--quick', 'smaller sizes and fewer samples')
    .option('--save', 'append results to bench/results/<suite>.jsonl')
    .option('--results-dir <dir>', 'where --save writes', 'bench/results')
    .option('--json', 'print the records as JSON')
    .option('--list', 'list the suites')
    .action(async (names: string[], opts: { quick?: boolean; save?: boolean; resultsDir: string; json?: boolean; list?: boolean }) => {
      if (opts.list) {
        for (const name of [...suiteFiles().keys()].sort()) console.log(name.replace(/_/g, '-')); // as the docs spell them
        return;
      }
      const log = opts.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
      const records = await runBenchmarks({ names, quick: !!opts.quick, save: !!opts.save, resultsDir: opts.resultsDir, log });
      if (opts.json) console.log(JSON.stringify(records, null, 2));
    });

  registerSynthCommand(program);
  registerGenerateCommand(program);
  registerTrainCommands(program);
  registerAgentCommand(program);
  registerMergeCommand(program);
  registerServeCommand(program);

  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    console.error(`qwenlong: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
