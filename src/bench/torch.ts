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
  samples: number;
  version: string;
}

export function torchBench(cases: TorchCase[], threads: number, quick: boolean): (TorchResult | null)[] | null {
  const script = join(packageRoot(), 'scripts', 'bench_torch.py');
  const run = spawnSync(process.env.QWENLONG_PYTHON ?? 'python3', [script], {
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
