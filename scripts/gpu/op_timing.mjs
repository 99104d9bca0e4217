// Times qwenlong's CUDA ops through the public API (what a user's training loop calls), on one GPU.
// Run after the build: node scripts/gpu/op_timing.mjs [--json FILE]. Each figure is the median of 7 batches of
// launches, each batch closed by synchronize(); inputs are random, never zeros.
import { writeFileSync } from 'node:fs';
import { Tensor, ops, synchronize, memoryStats, PagedKVCache } from '../../dist/src/index.js';

const results = [];
function rand(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = (s / 4294967296 - 0.5) * 0.2; }
  return a;
}
const DEV = process.env.OP_TIMING_DEVICE ?? 'cuda', SMALL = Boolean(process.env.OP_TIMING_SMALL); // SMALL: a quick CPU try of this script
const cuda = (data, shape, dtype = 'f32') => Tensor.from(data, shape, { dtype, device: DEV });
const ONLY = process.env.OP_TIMING_ONLY; // a comma-separated list of sections, e.g. 'kv'
const section = (name, fn) => { if (ONLY && !ONLY.split(',').includes(name)) return; try { fn(); } catch (e) { console.log(`${name}: FAILED ${e.message}`); results.push({ name, error: e.message }); } };
function time(name, fn, iters, work) {
  fn(); fn(); synchronize();
  const samples = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) fn();
    synchronize();
    samples.push((performance.now() - t0) / iters);
  }
  samples.sort((x, y) => x - y);
  const ms = samples[3];
  const row = { name, ms, ...work(ms) };
  results.push(row);
  console.log(`${name.padEnd(44)} ${ms.toFixed(3).padStart(9)} ms  ${Object.entries(work(ms)).map(([k, v]) => `${k} ${v.toFixed(1)}`).join('  ')}`);
}

// add: bytes read twice, written once.
section('add', () => {
  const n = SMALL ? 1024 : 64 << 20, a = cuda(rand(n, 1), [n]), b = cuda(rand(n, 2), [n]), out = Tensor.empty([n], { device: DEV });
  time('add f32 64M', () => ops.add(a, b, { out }), 10, (ms) => ({ 'GB/s': (3 * n * 4) / ms / 1e6 }));
  for (const t of [a, b, out]) t.dispose();
});
// matmul bf16 4096^3.
section('matmul', () => {
  const n = SMALL ? 64 : 4096, a = cuda(rand(n * n, 3), [n, n], 'bf16'), b = cuda(rand(n * n, 4), [n, n], 'bf16');
  const out = Tensor.empty([n, n], { dtype: 'bf16', device: DEV });
  time('matmul bf16 4096x4096x4096', () => ops.matmul(a, b, { out }), 10, (ms) => ({ 'TFLOP/s': (2 * n ** 3) / ms / 1e9 }));
  for (const t of [a, b, out]) t.dispose();
});
// The policy loss's three products at a chunk of 8192 tokens (H 4096, V 32768 slice), bf16 in, f32 out, under the kernel
// QWENLONG_MATMUL_KERNEL picks (unset: mma.sync; wgmma / wgmma128: the Hopper kernel).
section('matmulLayouts', () => {
  const kernel = process.env.QWENLONG_MATMUL_KERNEL ?? 'mma';
  const [T, H, V] = SMALL ? [64, 32, 96] : [8192, 4096, 32768];
  const hidden = cuda(rand(T * H, 31), [T, H], 'bf16'), weight = cuda(rand(V * H, 32), [V, H], 'bf16'), dlogits = cuda(rand(T * V, 33), [T, V], 'bf16');
  const logits = Tensor.empty([T, V], { device: DEV }), dHidden = Tensor.empty([T, H], { device: DEV }), dWeight = Tensor.empty([V, H], { device: DEV });
  const tf = (ms) => ({ 'TFLOP/s': (2 * T * H * V) / ms / 1e9 });
  time(`matmul NT ${T}x${V}x${H} [${kernel}]`, () => ops.matmul(hidden, weight, { transB: true, out: logits }), 5, tf);
  time(`matmul NN ${T}x${H}x${V} [${kernel}]`, () => ops.matmul(dlogits, weight, { out: dHidden }), 5, tf);
  time(`matmul TN ${V}x${H}x${T} [${kernel}]`, () => ops.matmul(dlogits, hidden, { transA: true, out: dWeight }), 5, tf);
  for (const t of [hidden, weight, dlogits, logits, dHidden, dWeight]) t.dispose();
});
// attention bf16, D = 128, 16 heads, 16384 tokens in sequences of T.
for (const [T, causal] of SMALL ? [[64, true]] : [[4096, false], [4096, true], [16384, true]]) section('attention', () => {
  const total = SMALL ? 128 : 16384, H = 16, D = 128, B = total / T;
  const cu = Int32Array.from({ length: B + 1 }, (_, i) => i * T);
  const q = cuda(rand(total * H * D, 5), [total, H, D], 'bf16'), k = cuda(rand(total * H * D, 6), [total, H, D], 'bf16');
  const v = cuda(rand(total * H * D, 7), [total, H, D], 'bf16'), dOut = cuda(rand(total * H * D, 8), [total, H, D], 'bf16');
  const opts = { cuSeqlensQ: cu, cuSeqlensK: cu, causal };
  const flops = 4 * B * T * T * H * D * (causal ? 0.5 : 1);
  let fwd = ops.attention(q, k, v, opts);
  time(`attention fwd bf16 T=${T} causal=${causal}`, () => { fwd.out.dispose(); fwd.lse.dispose(); fwd = ops.attention(q, k, v, opts); }, 5, (ms) => ({ 'TFLOP/s': flops / ms / 1e9 }));
  time(`attention bwd bf16 T=${T} causal=${causal}`, () => { const g = ops.attentionBackward(dOut, q, k, v, fwd.out, fwd.lse, opts); g.dq.dispose(); g.dk.dispose(); g.dv.dispose(); }, 3, (ms) => ({ 'TFLOP/s': 2.5 * flops / ms / 1e9 }));
  for (const t of [q, k, v, dOut, fwd.out, fwd.lse]) t.dispose();
});
// policy loss, forward + both gradients, no logits in memory; the allocator's statistics before and after.
function policyLossCase(name, [T, H, V], dtype, iters, seed) {
  const hidden = cuda(rand(T * H, seed), [T, H], dtype), weight = cuda(rand(V * H, seed + 1), [V, H], dtype);
  const targets = Tensor.from(Int32Array.from({ length: T }, (_, i) => (i * 7919) % V), [T], { dtype: 'i32', device: DEV });
  const advantages = Float32Array.from({ length: T }, (_, i) => Math.sin(i));
  const dHiddenOut = Tensor.empty([T, H], { device: DEV }), dWeightOut = Tensor.empty([V, H], { device: DEV });
  const before = memoryStats(DEV);
  const run = () => { const r = ops.policyLoss({ hidden, weight, targets, advantages, cuSeqlens: [0, T], dHiddenOut, dWeightOut }); for (const t of [r.loss, r.nll, r.logp, r.entropy]) t.dispose(); };
  time(name, run, iters, (ms) => ({ 'TFLOP/s': (6 * T * H * V) / ms / 1e9 }));
  results.at(-1).memory = { before, after: memoryStats(DEV) };
  for (const t of [hidden, weight, targets, dHiddenOut, dWeightOut]) t.dispose();
}
// T = 4096, H = 1024, V = 32768 in f32 and bf16; the RL objective's GPU target shape (Qwen-sized head) in bf16.
for (const dtype of ['f32', 'bf16']) section('policyLoss', () => policyLossCase(`policyLoss ${dtype} T=4096 H=1024 V=32768`, SMALL ? [64, 32, 100] : [4096, 1024, 32768], dtype, 3, 9));
section('policyLossLarge', () => policyLossCase('policyLoss bf16 T=16384 H=4096 V=151936', SMALL ? [64, 32, 100] : [16384, 4096, 151936], 'bf16', 1, 21));
// paged-KV decode: Hq 32, Hkv 8, D 128, bf16, block 16; GB/s of K/V read (each cached byte once).
// OP_TIMING_KV=16x32768 keeps only that case (e.g. under Nsight Compute).
const KV_CASES = (SMALL ? [[2, 256]] : [[1, 4096], [16, 4096], [1, 32768], [16, 32768]]).filter(([b, c]) => !process.env.OP_TIMING_KV || process.env.OP_TIMING_KV === `${b}x${c}`);
for (const [batch, context] of KV_CASES) section('kv', () => {
  const hq = 32, hkv = 8, D = 128, bs = 16;
  const cache = new PagedKVCache({ layers: 1, kvHeads: hkv, headDim: D, blockSize: bs, numBlocks: batch * context / bs, dtype: 'bf16', device: DEV });
  const chunk = Math.min(context, 4096);
  const k = cuda(rand(chunk * hkv * D, 11), [chunk, hkv, D], 'bf16'), v = cuda(rand(chunk * hkv * D, 12), [chunk, hkv, D], 'bf16');
  const ids = Array.from({ length: batch }, (_, b) => b);
  for (const id of ids) cache.allocate(id);
  for (let done = 0; done < context; done += chunk) for (const id of ids) { cache.reserve(id, chunk); cache.write(id, 0, k, v); }
  const q = cuda(rand(batch * hq * D, 13), [batch, hq, D], 'bf16'), out = Tensor.empty([batch, hq, D], { dtype: 'bf16', device: DEV });
  const bytes = 2 * batch * context * hkv * D * 2;
  // The default kernel (tensor cores), then each kernel forced (QWENLONG_PAGED_KERNEL), one after the other on the
  // same cache (partition sizes: kv_split_sweep.mjs).
  for (const kernel of ['auto', 'mma2', 'mma3', 'tiled']) {
    if (kernel === 'auto') delete process.env.QWENLONG_PAGED_KERNEL;
    else process.env.QWENLONG_PAGED_KERNEL = kernel;
    const label = kernel === 'auto' ? '' : ` [${kernel}]`;
    time(`paged decode bf16 batch ${batch} context ${context}${label}`, () => ops.pagedAttention(q, cache, 0, ids, { out }), 20, (ms) => ({ 'GB/s': bytes / ms / 1e6 }));
  }
  delete process.env.QWENLONG_PAGED_KERNEL;
  for (const t of [k, v, q, out]) t.dispose();
  cache.dispose();
});
const i = process.argv.indexOf('--json');
if (i > 0) writeFileSync(process.argv[i + 1], JSON.stringify(results, null, 1));
