// Paged decode (Hq 32, Hkv 8, D 128, bf16, block 16) over a range of partition sizes at each benchmark shape, to
// choose the default: node scripts/gpu/kv_split_sweep.mjs [--json FILE]. Each figure is the median of 7 batches of
// 20 launches, each batch closed by synchronize().
import { writeFileSync } from 'node:fs';
import { Tensor, ops, synchronize, PagedKVCache } from '../../dist/src/index.js';
import { defaultSplitSize } from '../../dist/src/ops/kv_cache.js';

const rows = [];
const rand = (n, seed) => { const a = new Float32Array(n); let s = seed >>> 0 || 1; for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = (s / 4294967296 - 0.5) * 0.2; } return a; };
const hq = 32, hkv = 8, D = 128, bs = 16;
for (const [batch, context] of [[1, 4096], [16, 4096], [1, 32768], [16, 32768], [4, 16384], [64, 4096]]) {
  const cache = new PagedKVCache({ layers: 1, kvHeads: hkv, headDim: D, blockSize: bs, numBlocks: batch * context / bs, dtype: 'bf16', device: 'cuda' });
  const chunk = Math.min(context, 4096);
  const k = Tensor.from(rand(chunk * hkv * D, 11), [chunk, hkv, D], { dtype: 'bf16', device: 'cuda' }), v = Tensor.from(rand(chunk * hkv * D, 12), [chunk, hkv, D], { dtype: 'bf16', device: 'cuda' });
  const ids = Array.from({ length: batch }, (_, b) => b);
  for (const id of ids) cache.allocate(id);
  for (let done = 0; done < context; done += chunk) for (const id of ids) { cache.reserve(id, chunk); cache.write(id, 0, k, v); }
  const q = Tensor.from(rand(batch * hq * D, 13), [batch, hq, D], { dtype: 'bf16', device: 'cuda' }), out = Tensor.empty([batch, hq, D], { dtype: 'bf16', device: 'cuda' });
  const bytes = 2 * batch * context * hkv * D * 2;
  const def = defaultSplitSize(batch * hkv, context, bs, 'cuda', true);
  for (const split of [...new Set([def, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768])].filter((s) => s <= context).sort((a, b) => a - b)) {
    const fn = () => ops.pagedAttention(q, cache, 0, ids, { out, splitSize: split });
    fn(); fn(); synchronize();
    const samples = [];
    for (let r = 0; r < 7; r++) { const t0 = performance.now(); for (let i = 0; i < 20; i++) fn(); synchronize(); samples.push((performance.now() - t0) / 20); }
    samples.sort((x, y) => x - y);
    const ms = samples[3], gbs = bytes / ms / 1e6;
    rows.push({ batch, context, split, default: split === def, ms, gbs });
    console.log(`batch ${String(batch).padStart(2)} context ${String(context).padStart(5)} split ${String(split).padStart(5)}${split === def ? ' (default)' : '          '} ${ms.toFixed(3)} ms ${gbs.toFixed(0)} GB/s`);
  }
  for (const t of [k, v, q, out]) t.dispose();
  cache.dispose();
}
const i = process.argv.indexOf('--json');
if (i > 0) writeFileSync(process.argv[i + 1], JSON.stringify(rows, null, 1));
