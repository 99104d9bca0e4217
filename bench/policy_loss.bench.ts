/**
 * The fused policy loss (forward + backward, 6·T·H·V flops) at T=4096, H=1024, V=32768 on the CPU, beside PyTorch
 * doing the same with materialized logits (log_softmax, gather, entropy, autograd). Each side runs in a fresh
 * process, which also measures its peak extra memory (max-RSS growth beyond inputs and gradients).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { packageRoot } from '../src/native/addon.js';
import { info } from '../src/native/runtime.js';
import { torchBench } from '../src/bench/torch.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';

const CHILD = `
import { Tensor, ops } from './dist/src/index.js';
const [T, H, V, reps] = process.argv.slice(1).map(Number);
const rand = (n, s) => { const a = new Float32Array(n); let x = s; for (let i = 0; i < n; i++) { x = (x * 1664525 + 1013904223) >>> 0; a[i] = (x / 4294967296 - 0.5) * 0.1; } return a; };
const hidden = Tensor.from(rand(T * H, 1), [T, H], { device: 'cpu' });
const weight = Tensor.from(rand(V * H, 2), [V, H], { device: 'cpu' });
const dHiddenOut = Tensor.zeros([T, H], { device: 'cpu' }), dWeightOut = Tensor.zeros([V, H], { device: 'cpu' });
const targets = Int32Array.from({ length: T }, (_, i) => (i * 7919) % V);
const advantages = rand(T, 3);
const run = () => ops.policyLoss({ hidden, weight, targets, advantages, cuSeqlens: [0, T], dHiddenOut, dWeightOut, workspaceBytes: 128 << 20 });
const rssBefore = process.memoryUsage().rss;
const first = run();
const extra = process.resourceUsage().maxRSS * 1024 - rssBefore;
for (const k of Object.values(first)) if (k && k.dispose && k !== dHiddenOut && k !== dWeightOut) k.dispose();
const times = [];
for (let i = 0; i < reps; i++) { const t0 = performance.now(); const r = run(); times.push(performance.now() - t0); r.loss.dispose(); r.nll.dispose(); r.logp.dispose(); r.entropy.dispose(); }
times.sort((a, b) => a - b);
console.log(JSON.stringify({ medianMs: times[times.length >> 1], samples: reps, extraBytes: Math.max(0, extra) }));
`;

const suite: BenchSuite = {
  name: 'policy-loss',
  description: 'fused policy loss forward+backward vs PyTorch with materialized logits (CPU, fresh processes)',
  async run(ctx) {
    const [T, H, V] = ctx.quick ? [512, 256, 8192] : [4096, 1024, 32768];
    const reps = ctx.quick ? 2 : 3;
    const flops = 6 * T * H * V;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, String(T), String(H), String(V), String(reps)], {
      cwd: packageRoot(),
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) throw new Error(`policy-loss child failed: ${r.stderr}`);
    const ours = JSON.parse(r.stdout) as { medianMs: number; samples: number; extraBytes: number };
    const torch = torchBench([{ op: 'policy_loss', T, H, V }], info().cpu.threads, ctx.quick)?.[0] ?? null;
    const figures: Record<string, number | string> = {
      'GFLOP/s': flops / (ours.medianMs * 1e6),
      'extra MiB': ours.extraBytes / 2 ** 20,
    };
    if (torch) {
      figures['torch ms'] = torch.medianMs;
      figures['speedup vs torch'] = torch.medianMs / ours.medianMs;
      if (torch.extraBytes !== undefined) {
        figures['torch extra MiB'] = torch.extraBytes / 2 ** 20;
        figures['memory ratio'] = ours.extraBytes / Math.max(1, torch.extraBytes);
      }
    } else {
      ctx.log('(torch not importable: PyTorch columns omitted)');
    }
    const record: BenchRecord = { suite: 'policy-loss', case: `T=${T} H=${H} V=${V} f32 fwd+bwd`, medianMs: ours.medianMs, samples: ours.samples, figures };
    return [record];
  },
};

export default suite;
