/**
 * The fused policy loss (forward + backward, 6·T·H·V flops) at T=4096, H=1024, V=32768 on the CPU, beside PyTorch
 * doing the same with materialized logits (log_softmax, gather, entropy, autograd), for f32 and for bf16 inputs
 * (PyTorch: bf16 products, f32 softmax on the upcast logits). Each side runs in a fresh process, which also measures
 * its peak extra memory (max-RSS growth beyond inputs and gradients); three rounds alternate the two sides and the
 * speedup is the median of the rounds' ratios.
 */
import { spawnSync } from 'node:child_process';

import { packageRoot } from '../src/native/addon.js';
import { info } from '../src/native/runtime.js';
import { torchBench } from '../src/bench/torch.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';
import { median } from '../src/bench/stats.js';

const CHILD = `
import { readFileSync, writeFileSync } from 'node:fs';
import { Tensor, ops } from './dist/src/index.js';
const [T, H, V, reps] = process.argv.slice(1, 5).map(Number);
const dtype = process.argv[5];
const rand = (n, s) => { const a = new Float32Array(n); let x = s; for (let i = 0; i < n; i++) { x = (x * 1664525 + 1013904223) >>> 0; a[i] = (x / 4294967296 - 0.5) * 0.1; } return a; };
const hidden = Tensor.from(rand(T * H, 1), [T, H], { dtype, device: 'cpu' });
const weight = Tensor.from(rand(V * H, 2), [V, H], { dtype, device: 'cpu' });
const dHiddenOut = Tensor.zeros([T, H], { device: 'cpu' }), dWeightOut = Tensor.zeros([V, H], { device: 'cpu' });
const targets = Int32Array.from({ length: T }, (_, i) => (i * 7919) % V);
const advantages = rand(T, 3);
const run = () => ops.policyLoss({ hidden, weight, targets, advantages, cuSeqlens: [0, T], dHiddenOut, dWeightOut, workspaceBytes: 128 << 20 });
// The input arrays made in JavaScript are collected first (a collection during the op would free them and hide the
// op's own growth), then the peak RSS is reset to the current RSS (Linux: /proc/self/clear_refs), so that those
// temporaries do not hide it either; elsewhere the growth of the peak so far is what counts.
globalThis.gc();
globalThis.gc();
const statusBytes = (key) => { for (const line of readFileSync('/proc/self/status', 'utf8').split('\\n')) if (line.startsWith(key + ':')) return Number(line.split(/\\s+/)[1]) * 1024; return NaN; };
let reset = true;
try { writeFileSync('/proc/self/clear_refs', '5'); } catch { reset = false; }
const rssBefore = reset ? statusBytes('VmRSS') : process.resourceUsage().maxRSS * 1024;
const first = run();
const extra = (reset ? statusBytes('VmHWM') : process.resourceUsage().maxRSS * 1024) - rssBefore;
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
    // Rounds alternate the two sides (each a fresh process), so that each ratio compares them in the same minutes
    // of a machine whose speed moves; the figures are medians over rounds, memory from the first round.
    const rounds = ctx.quick ? 1 : 3;
    const records: BenchRecord[] = [];
    let torchAvailable = true;
    for (const dtype of ['f32', 'bf16'] as const) {
      const oursMs: number[] = [], torchMs: number[] = [], ratios: number[] = [];
      let extraBytes = 0, torchExtra: number | undefined;
      for (let round = 0; round < rounds; round++) {
        const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD, String(T), String(H), String(V), String(reps), dtype], {
          cwd: packageRoot(),
          encoding: 'utf8',
          maxBuffer: 1 << 20,
        });
        if (r.status !== 0) throw new Error(`policy-loss child failed: ${r.stderr}`);
        const ours = JSON.parse(r.stdout) as { medianMs: number; samples: number; extraBytes: number };
        oursMs.push(ours.medianMs);
        if (round === 0) extraBytes = ours.extraBytes;
        if (!torchAvailable) continue;
        const torch = torchBench([{ op: 'policy_loss', T, H, V, dtype }], info().cpu.threads, ctx.quick)?.[0] ?? null;
        if (!torch) {
          torchAvailable = false;
          continue;
        }
        torchMs.push(torch.medianMs);
        ratios.push(torch.medianMs / ours.medianMs);
        if (round === 0) torchExtra = torch.extraBytes;
      }
      const ms = median(oursMs);
      const figures: Record<string, number | string> = {
        'GFLOP/s': flops / (ms * 1e6),
        'extra MiB': extraBytes / 2 ** 20,
      };
      if (torchMs.length > 0) {
        figures['torch ms'] = median(torchMs);
        figures['speedup vs torch'] = median(ratios);
        figures['speedup range'] = `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`;
        if (torchExtra !== undefined) {
          figures['torch extra MiB'] = torchExtra / 2 ** 20;
          figures['memory ratio'] = extraBytes / Math.max(1, torchExtra);
        }
      }
      records.push({ suite: 'policy-loss', case: `T=${T} H=${H} V=${V} ${dtype} fwd+bwd`, medianMs: ms, samples: reps * rounds, figures });
    }
    if (!torchAvailable) ctx.log('(torch not importable: PyTorch columns omitted)');
    return records;
  },
};

export default suite;
