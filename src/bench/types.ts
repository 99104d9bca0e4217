/**
 * The contract between the benchmark runner (`qwenlong bench`, `npm run bench`) and a benchmark file.
 * A file `bench/<name>.bench.ts` default-exports a `BenchSuite`; the runner finds it by `name`.
 */

/** One measured case: what ran, its median time, and the figures derived from it. */
export interface BenchRecord {
  /** Suite name, e.g. `core`. */
  suite: string;
  /** Case name, unique in the suite, e.g. `add f32 64 MiB`. */
  case: string;
  /** Median wall time of one iteration, milliseconds. */
  medianMs: number;
  /** Number of timed iterations the median is taken over. */
  samples: number;
  /** Derived figures with units in their keys, e.g. `{ 'GB/s': 31.2, 'vs memcpy': 0.93 }`. */
  figures: Record<string, number | string>;
}

export interface TimeOptions {
  /** Untimed runs before timing. Default 3. */
  warmup?: number;
  /** Minimum timed iterations. Default 10. */
  minSamples?: number;
  /** Keep sampling until this much time has passed, milliseconds. Default 500. */
  minTimeMs?: number;
}

export interface BenchContext {
  /** Quick mode (`--quick`): fewer samples and smaller sizes, for smoke runs. */
  quick: boolean;
  /** Print a progress or result line. */
  log(line: string): void;
  /** Time `fn` (sync or async) with warm-up and return the median of the timed iterations. */
  time(fn: () => unknown, opts?: TimeOptions): Promise<{ medianMs: number; samples: number }>;
  /** The results folder (`--results-dir`, default bench/results under the working directory). */
  resultsDir: string;
  /** Writes a suite's report (Markdown) into the results folder with `--save`; without it, says where it would go. */
  writeReport(file: string, text: string): void;
}

export interface BenchSuite {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<BenchRecord[]>;
}
