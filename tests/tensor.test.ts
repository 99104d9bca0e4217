// Tensor runtime: factories, dtypes, read-back, devices, disposal, memory accounting.
import { describe, expect, it } from 'vitest';

import { Tensor, emptyCache, info, memoryStats, ops } from '../src/index.js';
import { f32ToBf16, f32ToF16 } from '../src/native/half.js';
import { hugePageMode } from '../src/native/runtime.js';
import { gpuRun, randomArray, runNode } from './helpers.js';

const device = gpuRun() ? 'cuda' : 'cpu';

describe('Tensor', () => {
  it('round-trips every dtype through native memory', async () => {
    const x = randomArray(1000, 1);
    const f = Tensor.from(x, [10, 100], { device });
    expect(f.dtype).toBe('f32');
    expect(f.shape).toEqual([10, 100]);
    expect(f.size).toBe(1000);
    expect(await f.toArray()).toEqual(x);

    const i32 = Int32Array.from({ length: 77 }, (_, i) => (i * 2654435761) | 0);
    expect(await Tensor.from(i32, undefined, { device }).toArray()).toEqual(i32);
    const i64 = BigInt64Array.from({ length: 9 }, (_, i) => BigInt(i) * 10n ** 15n - 7n);
    expect(await Tensor.from(i64, undefined, { device }).toArray()).toEqual(i64);
    const u8 = Uint8Array.from({ length: 33 }, (_, i) => (i * 37) & 255);
    expect(await Tensor.from(u8, undefined, { device }).toArray()).toEqual(u8);

    for (const dt of ['f16', 'bf16'] as const) {
      const t = Tensor.from(x, [1000], { dtype: dt, device });
      const bits = await t.toArray();
      const conv = dt === 'f16' ? f32ToF16 : f32ToBf16;
      expect(Array.from(bits as Uint16Array)).toEqual(Array.from(x, (v) => conv(v)));
      const raw = Tensor.from(bits as Uint16Array, [1000], { dtype: dt, device });
      expect(await raw.toArray()).toEqual(bits);
    }
  });

  it('converts numbers to the requested dtype and checks integer ranges', async () => {
    expect(await Tensor.from([1, 2, 3], [3], { dtype: 'i32' }).toArray()).toEqual(Int32Array.from([1, 2, 3]));
    expect(await Tensor.from([5, 6], [2], { dtype: 'i64' }).toArray()).toEqual(BigInt64Array.from([5n, 6n]));
    expect(() => Tensor.from([1.5], [1], { dtype: 'i32' })).toThrow(RangeError);
    expect(() => Tensor.from([256], [1], { dtype: 'u8' })).toThrow(/data\[0\] = 256/);
    expect(() => Tensor.from(new Uint16Array(2))).toThrow(/f16 or bf16/);
    // A view of a SharedArrayBuffer is copied like any other.
    const shared = new Float32Array(new SharedArrayBuffer(12));
    shared.set([1.5, -2, 3]);
    expect(Array.from(await Tensor.from(shared, [3], { device: 'cpu' }).toArray())).toEqual([1.5, -2, 3]);
  });

  it('makes zeros, scalars and empty tensors', async () => {
    const z = Tensor.zeros([3, 0, 2], { device });
    expect(z.size).toBe(0);
    expect((await z.toArray()).length).toBe(0);
    const zz = Tensor.zeros([4, 5], { dtype: 'bf16', device });
    expect(Array.from(await zz.toArray())).toEqual(new Array(20).fill(0));
    const s = Tensor.from([2.5], [], { device });
    expect(s.ndim).toBe(0);
    expect(await s.item()).toBe(2.5);
    expect(await Tensor.from([3], [1], { dtype: 'bf16' }).item()).toBe(3);
    await expect(Tensor.zeros([2]).item()).rejects.toThrow(/2 elements/);
    expect(Tensor.empty([2, 3], { dtype: 'i32', device }).shape).toEqual([2, 3]);
  });

  it('copies between devices (and to() on the same device returns the tensor itself)', async () => {
    const x = Tensor.from(randomArray(64, 2), [8, 8], { device: 'cpu' });
    expect(x.to('cpu')).toBe(x);
    if (!gpuRun()) {
      expect(() => x.to('cuda')).toThrow(/CUDA is not available/);
      return;
    }
    const g = x.to('cuda');
    expect(g.device).toBe('cuda');
    const back = g.to('cpu');
    expect(await back.toArray()).toEqual(await x.toArray());
  });

  it('disposes: twice is harmless, use after dispose throws, memory is returned', async () => {
    const before = memoryStats('cpu').inUse;
    const t = Tensor.zeros([1 << 20], { device: 'cpu' });
    expect(memoryStats('cpu').inUse - before).toBe(4 << 20);
    expect(memoryStats('cpu').peak).toBeGreaterThanOrEqual(before + (4 << 20));
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(memoryStats('cpu').inUse).toBe(before);
    await expect(t.toArray()).rejects.toThrow(/disposed/);
    {
      using u = Tensor.zeros([1000], { device: 'cpu' });
      expect(u.disposed).toBe(false);
    }
    expect(memoryStats('cpu').inUse).toBe(before);
    if (gpuRun()) {
      const g = Tensor.zeros([1 << 20], { device: 'cuda' });
      expect(memoryStats('cuda').inUse).toBeGreaterThanOrEqual(4 << 20);
      g.dispose();
      expect(memoryStats('cuda').cached).toBeGreaterThanOrEqual(4 << 20);
      emptyCache();
      expect(memoryStats('cuda').cached).toBe(0);
    }
  });


  it('reuses large host buffers: a loop of mixed large sizes does not grow the process, zeros stay zeros', () => {
    emptyCache();
    // Sizes around glibc's dynamic mmap threshold (up to 32 MiB), the case that grew the heap without bound.
    const sizes = [31, 17, 9, 3, 24, 1].map((mb) => (mb << 20) / 4 + 123);
    const churn = () => {
      for (let i = 0; i < 12; i++) for (const n of sizes) Tensor.empty([n], { device: 'cpu' }).dispose();
    };
    churn();
    const rss = process.memoryUsage().rss;
    churn();
    churn();
    // under AddressSanitizer every buffer goes through malloc (so overflows are caught) and nothing is cached
    const sanitized = (process.env.LD_PRELOAD ?? '').includes('asan');
    if (!sanitized) {
      expect(process.memoryUsage().rss - rss).toBeLessThan(48 << 20);
      expect(memoryStats('cpu').cached).toBeGreaterThan(0);
    }
    // a reused block comes back to zeros() zeroed
    const dirty = Tensor.from(new Float32Array((9 << 20) / 4 + 123).fill(7), undefined, { device: 'cpu' });
    dirty.dispose();
    const clean = Tensor.zeros([(9 << 20) / 4 + 123], { device: 'cpu' });
    expect(clean.readInto(new Float32Array(clean.size)).every((x) => x === 0)).toBe(true);
    clean.dispose();
    emptyCache();
    expect(memoryStats('cpu').cached).toBe(0);
  });
  it('reshape gives a view: same memory, its own lifetime; bad shapes are refused', async () => {
    const t = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3], { device });
    const v = t.reshape([3, 2]);
    expect(v.shape).toEqual([3, 2]);
    ops.scale(v, 10, { out: v });
    expect(Array.from(await t.toArray())).toEqual([10, 20, 30, 40, 50, 60]);
    expect(() => t.reshape([4, 2])).toThrow(/Tensor.reshape: a shape of 8 elements for a tensor of 6/);
    expect(() => t.reshape([-1, 6] as number[])).toThrow(/Tensor.reshape/);
    t.dispose();
    expect(Array.from(await v.toArray())).toEqual([10, 20, 30, 40, 50, 60]); // the view keeps the memory alive
    v.dispose();
    expect(() => v.reshape([6])).toThrow(/disposed/);
  });

  it('reports the device choice and CUDA status', () => {
    const i = info();
    expect(i.device).toBe(device);
    expect(typeof i.cuda.reason).toBe('string');
    expect(i.cuda.reason.length).toBeGreaterThan(0);
    expect(i.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(i.cpu.supportedIsas).toContain('scalar');
    if (!gpuRun()) expect(i.cuda.available).toBe(false);
  });

  it('counts live tensors: creation, views, ops and dispose', async () => {
    const start = memoryStats('cpu').liveTensors;
    const x = Tensor.from([1, 2, 3, 4], [4], { device: 'cpu' });
    const view = x.reshape([2, 2]);
    const y = ops.add(x, x);
    expect(memoryStats('cpu').liveTensors).toBe(start + 3);
    x.dispose();
    x.dispose();
    expect(memoryStats('cpu').liveTensors).toBe(start + 2);
    expect(Array.from(await view.toArray())).toEqual([1, 2, 3, 4]); // a view outlives the tensor it was made from
    view.dispose();
    y.dispose();
    expect(memoryStats('cpu').liveTensors).toBe(start);
  });

  it('forgotten tensors are collected without a forced collection, and a loop that disposes sets off none', () => {
    // V8 learns of tensor memory as external memory (binding/tensor_handle.cc: the highest of the recent windows'
    // low-water marks of live bytes). A loop whose tensor memory rises and is all disposed again every round, with
    // JavaScript work in between (a training step), must not set off a full collection each round (1,102 of them in
    // npm start when every tensor was reported as it came and went); tensors a loop forgets must still be collected.
    const r = runNode(`
      import { PerformanceObserver, constants } from 'node:perf_hooks';
      const { Tensor, memoryStats } = await import(new URL('./dist/src/index.js', 'file://' + process.cwd() + '/').href);
      const MB = 1 << 20, yieldNow = () => new Promise((r) => setImmediate(r));
      let majors = 0;
      const gcs = new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++; });
      gcs.observe({ entryTypes: ['gc'] });
      // 24 rounds that hold 128 MiB at their peak, allocate JavaScript objects, and dispose every tensor.
      let objects = 0;
      for (let round = 0; round < 24; round++) {
        const held = [];
        for (let i = 0; i < 8; i++) held.push(Tensor.empty([4 * MB], { device: 'cpu' }));
        for (let j = 0; j < 20; j++) objects += Array.from({ length: 20000 }, (_, i) => ({ i })).length;
        for (const t of held) t.dispose();
        await yieldNow();
      }
      await yieldNow();
      const disposingMajors = majors;
      const leakedBefore = memoryStats('cpu').leakedTensors;
      // 4 GiB held only by forgotten views: each tensor is disposed, its reshape view is not (the memory counts until
      // the last tensor over it goes).
      for (let i = 0; i < 256; i++) {
        const t = Tensor.empty([4 * MB], { device: 'cpu' });
        t.reshape([2 * MB, 2]);
        t.dispose();
        await yieldNow();
      }
      const views = memoryStats('cpu').leakedTensors - leakedBefore;
      // 16 GiB of 16 MiB tensors (pages never touched) that are never disposed, the loop yielding between them as an
      // async loop does, so that the finalization registry's callbacks can run.
      const before = memoryStats('cpu').inUse;
      let most = 0;
      for (let i = 0; i < 1024; i++) {
        Tensor.empty([4 * MB], { device: 'cpu' });
        most = Math.max(most, memoryStats('cpu').inUse - before);
        await yieldNow();
      }
      console.log(JSON.stringify({ disposingMajors, mostMiB: most / MB, leaked: memoryStats('cpu').leakedTensors - leakedBefore - views, views }));
      gcs.disconnect();`, {}, 120_000);
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { disposingMajors: number; mostMiB: number; leaked: number; views: number };
    expect(got.disposingMajors, 'full collections during the 24 disposing rounds').toBeLessThanOrEqual(4);
    expect(got.leaked, 'forgotten tensors freed by the collector (of 1024)').toBeGreaterThan(800);
    // How far a leak runs ahead of the collector depends on how fast V8 marks against how fast the loop leaks; the
    // bound says it stays a fraction of what was created.
    expect(got.mostMiB, 'forgotten tensor memory at its peak, MiB (of 16384 created)').toBeLessThan(8192);
    expect(got.views, 'forgotten views freed by the collector while the loop ran (of 256; none when a view counted nothing)').toBeGreaterThan(32);
  }, 180_000);

  it('large CPU tensors get transparent huge pages, unless QWENLONG_HUGE_PAGES=0', () => {
    const mode = hugePageMode() ?? '';
    if (mode !== 'madvise' && mode !== 'always') {
      console.log(`skipped: transparent huge pages are ${mode || 'unavailable'} here`);
      return;
    }
    if ((process.env.LD_PRELOAD ?? '').includes('asan')) {
      console.log('skipped: under AddressSanitizer every buffer comes from malloc (no huge pages asked for)');
      return;
    }
    // A 64 MiB tensor, written everywhere; AnonHugePages of the process before and after, in KiB.
    const run = (env: Record<string, string>) => {
      const r = runNode(`
        import { readFileSync } from 'node:fs';
        const { Tensor } = await import(new URL('./dist/src/index.js', 'file://' + process.cwd() + '/').href);
        const huge = () => Number(/AnonHugePages:\\s+(\\d+)/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]);
        const before = huge();
        const t = Tensor.from(new Float32Array(16 << 20).fill(1.5), [16 << 20], { device: 'cpu' });
        const grew = huge() - before;
        console.log(JSON.stringify({ grew, same: (await t.toFloat32Array()).every((x) => x === 1.5) }));`, env, 60_000);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { grew: number; same: boolean };
    };
    const on = run({}), off = run({ QWENLONG_HUGE_PAGES: '0' });
    expect(on.same && off.same, 'the tensor reads back what was written').toBe(true);
    // All 32 of its 2 MiB pages where the kernel finds the memory (it compacts for a madvised region); half at least.
    expect(on.grew, 'KiB of huge pages gained by a 64 MiB tensor').toBeGreaterThanOrEqual(32 << 10);
    // Under 'always' the kernel may back any large mapping with huge pages; under 'madvise' only the ones that ask.
    if (mode === 'madvise') expect(off.grew, 'KiB of huge pages gained with QWENLONG_HUGE_PAGES=0').toBeLessThan(2 << 10);
  }, 60_000);

  it('frees forgotten tensors through the finalization registry', async () => {
    if (typeof globalThis.gc !== 'function') {
      console.log('skipped: run node with --expose-gc to check the finalization safety net');
      return;
    }
    const before = memoryStats('cpu').inUse, liveBefore = memoryStats('cpu').liveTensors;
    (() => {
      for (let i = 0; i < 10; i++) Tensor.zeros([1 << 18], { device: 'cpu' });
    })();
    expect(memoryStats('cpu').inUse).toBe(before + 10 * (1 << 20));
    for (let i = 0; i < 10 && memoryStats('cpu').inUse > before; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    // Earlier tests' forgotten tensors may be collected too, so at most what we started with.
    expect(memoryStats('cpu').inUse).toBeLessThanOrEqual(before);
    expect(memoryStats('cpu').leakedTensors).toBeGreaterThanOrEqual(10);
    expect(memoryStats('cpu').liveTensors).toBeLessThanOrEqual(liveBefore); // their ids are free again
  });
});
