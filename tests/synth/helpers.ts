import fs from 'node:fs';
import { afterAll } from 'vitest';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { registerSynthCommand } from '../../src/synth/cli.js';
import type { SynthQuestion } from '../../src/synth/types.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const austenDir = path.resolve(repoRoot, '../shared/corpora/austen');

export function tmpDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `qwenlong-synth-${name}-`));
}

/** A `fresh(name)` that makes temporary folders and removes them all after the file's tests. */
export function tempFolders(): (name: string) => string {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  return (name) => {
    const d = tmpDir(name);
    dirs.push(d);
    return d;
  };
}

export function readLines(file: string): SynthQuestion[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as SynthQuestion);
}

/** Open a run's knowledge graph read-only, for re-deriving answers by a second path. */
export function openGraphDb(workDir: string): Database.Database {
  return new Database(path.join(workDir, 'kg.sqlite'), { readonly: true });
}

/** Run `qwenlong synth …` in-process through commander; returns exit code and captured output. */
export async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command().name('qwenlong').exitOverride();
  program.configureOutput({ writeOut: (s) => void out.push(s), writeErr: (s) => void err.push(s) });
  registerSynthCommand(program);
  const out: string[] = [];
  const err: string[] = [];
  const origOut = process.stdout.write.bind(process.stdout);
  const origErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  const saved = process.exitCode;
  process.exitCode = 0;
  let code = 0;
  try {
    await program.parseAsync(['node', 'qwenlong', 'synth', ...args]);
    code = Number(process.exitCode ?? 0);
  } catch (e) {
    code = (e as { exitCode?: number }).exitCode ?? 99;
  } finally {
    process.stdout.write = origOut;
    process.stderr.write = origErr;
    process.exitCode = saved;
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}
