/**
 * PyTorch in the same run: `scripts/bench_torch.py` times the same op on the same sizes and thread count, so a
 * suite can print the ratio. Returns null when python3 or torch is missing (the suite then reports ours alone).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { packageRoot } from '../native/addon.js';

export interface TorchCase {
  /** An op name known to bench_torch.py, e.g. 'add', 'memcpy'. */
  op: string;
  [param: string]: unknown;
}

export interface TorchResult {
  medianMs: number;
  /** Process CPU time per iteration over all threads, milliseconds. */
  cpuMs?: number;
  samples: number;
  version: string;
  /** Peak extra memory of the case, where the case measures it. */
  extraBytes?: number;
}

let python: string | null | undefined;

/** The first Python that imports torch: QWENLONG_PYTHON, python3 on the PATH, or the system's (Debian's python3-torch). */
export function torchPython(): string | null {
  if (python !== undefined) return python;
  const candidates = [process.env.QWENLONG_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  python = candidates.find((c) => spawnSync(c, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0) ?? null;
  return python;
}

export function torchBench(cases: TorchCase[], threads: number, quick: boolean): (TorchResult | null)[] | null {
  const script = join(packageRoot(), 'scripts', 'bench_torch.py');
  const py = torchPython();
  if (!py) return null;
  const run = spawnSync(py, [script], {
    input: JSON.stringify({ cases, threads, quick }),
    encoding: 'utf8',
    maxBuffer: 16 << 20,
    timeout: 600_000,
  });
  if (run.status !== 0 || !run.stdout) return null;
  try {
    const parsed = JSON.parse(run.stdout) as { results: (TorchResult | null)[] };
    return parsed.results;
  } catch {
    return null;
  }
}
