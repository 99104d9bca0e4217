/**
 * The benchmark runner behind `qwenlong bench` and `npm run bench`: finds the suites (`bench/<name>.bench.ts`,
 * compiled into `dist/bench/`), runs them with warm-up and medians, prints a machine line and a table, and
 * appends the records to `bench/results/<suite>.jsonl` with the machine, date and commit.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { Bench } from 'tinybench';

import { packageRoot } from '../native/addon.js';
import { info } from '../native/runtime.js';
import type { BenchContext, BenchRecord, BenchSuite, TimeOptions } from './types.js';

export interface RunOptions {
  names: string[];
  quick: boolean;
  save: boolean;
  /** Folder for the JSONL results. Default `bench/results` under the current directory. */
  resultsDir: string;
  log: (line: string) => void;
}

export interface Machine {
  cpu: string;
  cores: number;
  threads: number;
  isa: string;
  memoryGiB: number;
  gpu: string | null;
  node: string;
}

export function machine(): Machine {
  const i = info();
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    threads: i.cpu.threads,
    isa: i.cpu.isa,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    gpu: i.cuda.available ? (i.cuda.devices[0]?.name ?? null) : null,
    node: process.versions.node,
  };
}

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.threads} threads, ${m.isa}, ${m.memoryGiB} GiB, GPU: ${m.gpu ?? 'none'}, node ${m.node}`;
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return null;
  }
}

/**
 * Median of the timed iterations after warm-up, measured with tinybench (a maintained harness with warm-up,
 * iteration and time limits and timer-overhead correction). Iterations continue until both minimums are met.
 */
export async function timeIt(fn: () => unknown, opts: TimeOptions = {}, quick = false): Promise<{ medianMs: number; samples: number }> {
  const bench = new Bench({
    warmupIterations: opts.warmup ?? 3,
    warmupTime: 0,
    iterations: quick ? Math.min(opts.minSamples ?? 10, 5) : (opts.minSamples ?? 10),
    time: quick ? Math.min(opts.minTimeMs ?? 500, 100) : (opts.minTimeMs ?? 500),
    throws: true,
  });
  bench.add('case', fn);
  await bench.run();
  const result = bench.tasks[0]!.result;
  if (!('latency' in result)) throw new Error(`bench: the case did not complete (${result.state})`);
  return { medianMs: result.latency.p50, samples: result.latency.samplesCount };
}

/** The suites that exist, by name. */
export function suiteFiles(): Map<string, string> {
  const dir = join(packageRoot(), 'dist', 'bench');
  const files = new Map<string, string>();
  if (!existsSync(dir)) return files;
  for (const f of readdirSync(dir)) {
    const m = /^(.*)\.bench\.js$/.exec(f);
    if (m) files.set(m[1]!, join(dir, f));
  }
  return files;
}

function formatFigures(figures: Record<string, number | string>): string {
  return Object.entries(figures)
    .map(([k, v]) => `${typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(3)) : v} ${k}`)
    .join(', ');
}

export async function runBenchmarks(opts: RunOptions): Promise<BenchRecord[]> {
  const available = suiteFiles();
  // Suites are named after their files (policy_loss); the dashed spelling (policy-loss) works too.
  const names = opts.names.length ? opts.names.map((n) => n.replace(/-/g, '_')) : [...available.keys()].sort();
  for (const name of names) {
    if (!available.has(name)) throw new RangeError(`bench: no suite named '${name}' (have: ${[...available.keys()].sort().join(', ') || 'none'})`);
  }
  // a results folder that cannot be one is refused before any suite runs, not after
  if (opts.save) {
    if (existsSync(opts.resultsDir) && !statSync(opts.resultsDir).isDirectory()) throw new Error(`bench: --results-dir ${opts.resultsDir} is a file, not a folder`);
    mkdirSync(opts.resultsDir, { recursive: true });
  }
  const m = machine();
  opts.log(`machine: ${machineLine(m)}`);
  const ctx: BenchContext = {
    quick: opts.quick,
    log: opts.log,
    time: (fn, t) => timeIt(fn, t, opts.quick),
    resultsDir: opts.resultsDir,
    writeReport(file, text) {
      const path = join(opts.resultsDir, file);
      if (!opts.save) {
        opts.log(`(report not written: --save writes it to ${path})`);
        return;
      }
      mkdirSync(opts.resultsDir, { recursive: true });
      writeFileSync(path, text);
      opts.log(`report: ${path}`);
    },
  };
  const all: BenchRecord[] = [];
  const date = new Date().toISOString();
  const commit = gitCommit();
  for (const name of names) {
    const mod = (await import(pathToFileURL(available.get(name)!).href)) as { default: BenchSuite };
    opts.log(`\n# ${name}: ${mod.default.description}`);
    const records = await mod.default.run(ctx);
    for (const r of records) {
      const perCall = r.medianMs >= 1 ? `${r.medianMs.toFixed(3)} ms` : `${(r.medianMs * 1000).toFixed(3)} µs`;
      opts.log(`${r.case.padEnd(44)} ${perCall.padStart(12)}  ${formatFigures(r.figures)}`);
    }
    if (opts.save && records.length) {
      mkdirSync(opts.resultsDir, { recursive: true });
      const lines = records.map((r) => JSON.stringify({ date, commit, machine: m, quick: opts.quick, ...r })).join('\n') + '\n';
      appendFileSync(join(opts.resultsDir, `${name}.jsonl`), lines);
    }
    all.push(...records);
  }
  return all;
}
