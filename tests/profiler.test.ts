// The op profiler: every native op called inside profile() is counted and timed per (op, device); nothing outside.
import { describe, expect, it } from 'vitest';
import { Tensor, formatProfile, ops, profile } from '../src/index.js';
import { native } from '../src/native/addon.js';
import { gpuRun, randomArray } from './helpers.js';

describe('profile', () => {
  it('counts each op call on the CPU, times it, and records nothing outside the run', () => {
    const a = Tensor.from(randomArray(128 * 128, 1), [128, 128], { device: 'cpu' });
    ops.add(a, a).dispose(); // before: not recorded
    const p = profile(() => {
      for (let i = 0; i < 3; i++) ops.matmul(a, a).dispose();
      ops.add(a, a).dispose();
      return 7;
    });
    expect(p.result).toBe(7);
    const matmul = p.ops.find((o) => o.op === 'ops.matmul');
    const add = p.ops.find((o) => o.op === 'ops.add');
    expect(matmul).toMatchObject({ device: 'cpu', calls: 3 });
    expect(add).toMatchObject({ device: 'cpu', calls: 1 });
    expect(p.ops).toHaveLength(2);
    for (const o of p.ops) {
      expect(o.hostMs).toBeGreaterThan(0);
      expect(o.deviceMs).toBe(o.hostMs); // on the CPU the work is the call
    }
    expect(p.ops.reduce((s, o) => s + o.hostMs, 0)).toBeLessThanOrEqual(p.wallMs);
    expect(p.ops[0]!.deviceMs).toBeGreaterThanOrEqual(p.ops[1]!.deviceMs); // most time first
    const table = formatProfile(p);
    expect(table).toMatch(/ops\.matmul\s+cpu\s+3 /);
    expect(table).toMatch(/^wall [\d.]+ ms; inside ops \(host\)/m);
    ops.add(a, a).dispose(); // after: not recorded (read without starting a new profile, which would clear it)
    expect(native().profilerStop()).toEqual([]);
    a.dispose();
  });

  it('refuses a nested profile, and stays usable', () => {
    const a = Tensor.from(randomArray(16, 4), [16], { device: 'cpu' });
    expect(() => profile(() => profile(() => 0))).toThrow(/already running/);
    expect(() => profile(42 as never)).toThrow(/fn must be a function/);
    const p = profile(() => ops.add(a, a).dispose());
    expect(p.ops.map((o) => [o.op, o.calls])).toEqual([['ops.add', 1]]);
    expect(() => formatProfile({} as never)).toThrow(/p must be a profile/);
    expect(() => formatProfile(p, -1)).toThrow(/top must be a positive integer/);
    a.dispose();
  });

  it('an async function is awaited: ops after its awaits count, and a rejection reaches the caller with the profiler off', async () => {
    const a = Tensor.from(randomArray(16, 5), [16], { device: 'cpu' });
    const p = await profile(async () => {
      ops.add(a, a).dispose();
      await new Promise((ok) => setTimeout(ok, 5));
      ops.add(a, a).dispose();
      ops.matmul(a.reshape([4, 4]), a.reshape([4, 4])).dispose();
      return 7;
    });
    expect(p.result).toBe(7);
    expect(p.ops.map((o) => [o.op, o.calls]).sort()).toEqual([['ops.add', 2], ['ops.matmul', 1]]);
    expect(p.wallMs).toBeGreaterThanOrEqual(4);
    await expect(profile(async () => { await Promise.resolve(); throw new Error('inner failure'); })).rejects.toThrow('inner failure');
    ops.add(a, a).dispose();
    expect(native().profilerStop()).toEqual([]); // stopped by the rejection
    a.dispose();
  });

  it('a throwing run rethrows and leaves the profiler off', () => {
    const a = Tensor.from(randomArray(16, 2), [16], { device: 'cpu' });
    expect(() => profile(() => { ops.add(a, a).dispose(); throw new Error('inside'); })).toThrow('inside');
    ops.add(a, a).dispose();
    expect(native().profilerStop()).toEqual([]); // stopped: the add above went unrecorded
    a.dispose();
  });

  it.runIf(gpuRun())('on CUDA: device time from events, host time of the launches', () => {
    const a = Tensor.from(randomArray(1024 * 1024, 3), [1024, 1024], { dtype: 'bf16', device: 'cuda' });
    const p = profile(() => { for (let i = 0; i < 5; i++) ops.matmul(a, a).dispose(); });
    const matmul = p.ops.find((o) => o.op === 'ops.matmul')!;
    expect(matmul).toMatchObject({ device: 'cuda', calls: 5 });
    expect(matmul.deviceMs).toBeGreaterThan(0);
    expect(matmul.deviceMs).toBeLessThanOrEqual(p.wallMs);
    a.dispose();
  });
});
