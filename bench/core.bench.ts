/**
 * The runtime's fixed costs and the memory-bound baseline every elementwise op is measured against:
 *  - one N-API crossing (an empty native call) and one trivial op call through the whole typed API;
 *  - `ops.add` bandwidth on large f32/bf16 arrays beside a plain `memcpy` of the same bytes and `torch.add`.
 */
import { native } from '../src/native/addon.js';
import { info, setThreads } from '../src/native/runtime.js';
import { Tensor } from '../src/native/tensor.js';
import * as ops from '../src/ops/index.js';
import { torchBench } from '../src/bench/torch.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';

function randomTensor(n: number, dtype: 'f32' | 'bf16'): Tensor {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
  return Tensor.from(data, [n], { dtype, device: 'cpu' });
}

const suite: BenchSuite = {
  name: 'core',
  description: 'N-API call cost, trivial op cost, add bandwidth vs memcpy and torch.add',
  async run(ctx) {
    const records: BenchRecord[] = [];
    const addon = native();
    const calls = 100_000;

    // 1. The N-API crossing alone: a batch of empty calls, per call.
    const noop = await ctx.time(() => {
      for (let i = 0; i < calls; i++) addon.noop();
    });
    records.push({ suite: 'core', case: 'N-API empty call', medianMs: noop.medianMs / calls, samples: noop.samples, figures: { 'calls/s': calls / (noop.medianMs / 1e3) } });

    // 2. A trivial op through the typed API, writing into an existing tensor, and allocating its result.
    const one = Tensor.from(new Float32Array([1.5]), [1], { device: 'cpu' });
    const sink = Tensor.empty([1], { device: 'cpu' });
    const batch = 20_000;
    const into = await ctx.time(() => {
      for (let i = 0; i < batch; i++) ops.add(one, one, { out: sink });
    });
    records.push({ suite: 'core', case: 'ops.add 1 element, out= (no allocation)', medianMs: into.medianMs / batch, samples: into.samples, figures: { 'calls/s': batch / (into.medianMs / 1e3) } });
    const alloc = await ctx.time(() => {
      for (let i = 0; i < batch; i++) ops.add(one, one).dispose();
    });
    records.push({ suite: 'core', case: 'ops.add 1 element, new result + dispose', medianMs: alloc.medianMs / batch, samples: alloc.samples, figures: { 'calls/s': batch / (alloc.medianMs / 1e3) } });
    one.dispose();
    sink.dispose();

    // 3. Bandwidth: add reads 2 and writes 1 array; memcpy reads 1 and writes 1. GB/s counts every byte moved.
    const threads = info().cpu.threads;
    const n = ctx.quick ? 1 << 22 : 1 << 24; // 16M f32 = 64 MiB per array: far beyond the caches
    const a = randomTensor(n, 'f32');
    const b = randomTensor(n, 'f32');
    const out = Tensor.empty([n], { device: 'cpu' });
    const bytes = n * 4;
    const memcpy = await ctx.time(() => addon.memcpy(out.handle, a.handle));
    const memcpyGBs = (2 * bytes) / (memcpy.medianMs * 1e6);
    records.push({ suite: 'core', case: `memcpy ${bytes >> 20} MiB (1 thread)`, medianMs: memcpy.medianMs, samples: memcpy.samples, figures: { 'GB/s': memcpyGBs } });

    const torch = torchBench([{ op: 'add', n, dtype: 'f32' }, { op: 'add', n, dtype: 'f32' }, { op: 'add', n, dtype: 'bf16' }], threads, ctx.quick);
    const torch1 = torchBench([{ op: 'add', n, dtype: 'f32' }], 1, ctx.quick);
    for (const t of [1, threads]) {
      setThreads(t);
      const r = await ctx.time(() => ops.add(a, b, { out }));
      const gbs = (3 * bytes) / (r.medianMs * 1e6);
      const figures: Record<string, number | string> = { 'GB/s': gbs, 'vs memcpy GB/s': gbs / memcpyGBs };
      const tr = t === 1 ? torch1?.[0] : torch?.[1];
      if (tr) figures['vs torch.add'] = tr.medianMs / r.medianMs;
      records.push({ suite: 'core', case: `ops.add f32 ${bytes >> 20} MiB x3 (${t} thread${t > 1 ? 's' : ''})`, medianMs: r.medianMs, samples: r.samples, figures });
    }
    setThreads(threads);
    a.dispose();
    b.dispose();
    out.dispose();

    const ah = randomTensor(n, 'bf16');
    const bh = randomTensor(n, 'bf16');
    const oh = Tensor.empty([n], { dtype: 'bf16', device: 'cpu' });
    const rh = await ctx.time(() => ops.add(ah, bh, { out: oh }));
    const gbh = (3 * n * 2) / (rh.medianMs * 1e6);
    const fig: Record<string, number | string> = { 'GB/s': gbh, 'vs memcpy GB/s': gbh / memcpyGBs };
    if (torch?.[2]) fig['vs torch.add'] = torch[2].medianMs / rh.medianMs;
    records.push({ suite: 'core', case: `ops.add bf16 ${(n * 2) >> 20} MiB x3 (${threads} threads)`, medianMs: rh.medianMs, samples: rh.samples, figures: fig });
    ah.dispose();
    bh.dispose();
    oh.dispose();
    if (!torch) ctx.log('(torch not importable: PyTorch columns omitted)');
    return records;
  },
};

export default suite;
