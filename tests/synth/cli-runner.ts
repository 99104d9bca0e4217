// Local stand-in for the package's `qwenlong` binary: `npx tsx tests/synth/cli-runner.ts synth …`.
import { Command } from 'commander';
import { registerSynthCommand } from '../../src/synth/cli.js';

const program = new Command().name('qwenlong');
registerSynthCommand(program);
await program.parseAsync(process.argv);
