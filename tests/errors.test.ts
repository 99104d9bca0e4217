// Bad input to every public entry point: a clear TypeError/RangeError naming the op and the argument, and
// nothing already written is changed. Also the environment switches (QWENLONG_DEVICE, QWENLONG_ISA, ...).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { Tensor, memoryStats, ops, setIsa, setThreads } from '../src/index.js';
import { native } from '../src/native/addon.js';
import { root, runNode } from './helpers.js';

const cli = join(root, 'dist', 'src', 'cli', 'main.js');

describe('ops.add / ops.scale bad input', () => {
  const a = Tensor.from([1, 2, 3, 4], [2, 2], { device: 'cpu' });
  const b = Tensor.from([1, 2, 3, 4], [2, 2], { device: 'cpu' });

  it('names the op and the argument', () => {
    expect(() => ops.add({} as Tensor, b)).toThrow(/ops.add: argument 'a' must be a Tensor/);
    expect(() => ops.add(a, Object.create(Tensor.prototype) as Tensor)).toThrow(/ops.add: argument 'b' must be a Tensor/);
    expect(() => ops.add(a, Tensor.from([1, 2, 3, 4], [4], { device: 'cpu' }))).toThrow(RangeError);
    expect(() => ops.add(a, Tensor.from([1, 2, 3, 4], [2, 2], { dtype: 'bf16', device: 'cpu' }))).toThrow(/argument 'b' is bf16, expected f32/);
    const ints = Tensor.from([1, 2], [2], { dtype: 'i32', device: 'cpu' });
    expect(() => ops.add(ints, ints)).toThrow(/ops.add: argument 'a' is i32; ops.add takes f32, f16 or bf16/);
    expect(() => ops.add(a, b, { alpha: NaN })).toThrow(/ops.add: argument 'alpha' must be a finite number/);
    expect(() => ops.add(a, b, { beta: '2' as unknown as number })).toThrow(TypeError);
    expect(() => ops.scale(a, Infinity)).toThrow(/ops.scale: argument 's'/);
    const gone = Tensor.from([1, 2, 3, 4], [2, 2], { device: 'cpu' });
    gone.dispose();
    expect(() => ops.add(a, gone)).toThrow(/argument 'b' has been disposed/);
    expect(() => ops.scale(gone, 2)).toThrow(/argument 'x' has been disposed/);
  });

  it('leaves the output untouched when it refuses', async () => {
    const out = Tensor.from([9, 9, 9, 9], [2, 2], { device: 'cpu' });
    expect(() => ops.add(a, b, { out, alpha: NaN })).toThrow();
    expect(() => ops.add(a, Tensor.from([1, 2], [2], { device: 'cpu' }), { out })).toThrow();
    expect(Array.from(await out.toArray())).toEqual([9, 9, 9, 9]);
  });
});

describe('Tensor factories bad input', () => {
  it('rejects bad shapes, dtypes, devices and data', () => {
    expect(() => Tensor.zeros([-1])).toThrow(/shape\[0\] = number -1/);
    expect(() => Tensor.zeros([1.5])).toThrow(RangeError);
    expect(() => Tensor.zeros([1, 1, 1, 1, 1, 1, 1, 1, 1])).toThrow(/9 dimensions/);
    expect(() => Tensor.zeros([2 ** 41])).toThrow(RangeError);
    expect(() => Tensor.zeros('3' as unknown as number[])).toThrow(/shape must be an array/);
    expect(() => Tensor.zeros([3], { dtype: 'f64' as never })).toThrow(/dtype must be one of/);
    expect(() => Tensor.zeros([3], { device: 'tpu' as never })).toThrow(/device must be 'cpu' or 'cuda'/);
    expect(() => Tensor.from(new Float32Array(5), [2, 2])).toThrow(/5 elements but shape \[2, 2\] needs 4/);
    expect(() => Tensor.from(null as never)).toThrow(/data must be/);
    expect(() => Tensor.from({ length: 2 } as never)).toThrow(TypeError);
    // Plain arrays: flat, dense, numbers only (each of these used to become NaN).
    expect(() => Tensor.from([[1, 2], [3, 4]] as never, [2, 2])).toThrow(/data\[0\] is an array; pass the elements flat/);
    expect(() => Tensor.from([1, , 3] as never)).toThrow(/data\[1\] is a hole/);
    expect(() => Tensor.from([1, '2', 3] as never)).toThrow(/data\[1\] = '2' is not a number/);
    expect(() => Tensor.from([1n, 2n] as never, [2], { dtype: 'i64' })).toThrow(/data\[0\] is a bigint; pass a BigInt64Array/);
    // A view of a transferred (detached) buffer is refused, not read as empty.
    const moved = new Float32Array([1, 2]);
    structuredClone(moved.buffer, { transfer: [moved.buffer] });
    expect(() => Tensor.from(moved, [0], { device: 'cpu' })).toThrow(/argument 'data' views a detached ArrayBuffer/);
    // Larger than the machine: refused up front, not killed later.
    expect(() => Tensor.empty([2 ** 40], { dtype: 'f32', device: 'cpu' })).toThrow(/cannot allocate/);
  });

  it('refuses CUDA tensors with the reason when CUDA cannot be used', () => {
    if (process.env.QWENLONG_DEVICE === 'cuda') return;
    expect(() => Tensor.zeros([2], { device: 'cuda' })).toThrow(/CUDA is not available: .+/);
  });

  it('the native functions validate on their own (no TS layer in front)', () => {
    const n = native();
    expect(() => n.fromArray(new Float32Array(3), [4], 'f32', 'cpu')).toThrow(/holds 12 bytes but shape and dtype need 16/);
    expect(() => n.empty([3], 'f32', 'gpu', false)).toThrow(/device/);
    expect(() => n.add(null as never, null, null, 1, 1)).toThrow(/ops.add: argument 'a' must be a Tensor/);
    // Tensor ids: only live ids this addon handed out are taken; a disposed id stays refused after its slot is reused.
    const live = n.liveTensors();
    const h = n.empty([2], 'f32', 'cpu', true);
    expect(() => n.tensorRead(h, new Float32Array(3))).toThrow(/holds 12 bytes, the tensor 8/);
    for (const bad of [{}, 'h', 1.5, -h, 2 ** 60, NaN, h + 0.5]) {
      expect(() => n.tensorRead(bad as never, new Float32Array(2))).toThrow(/Tensor.toArray: argument 'tensor' must be a Tensor/);
    }
    const view = n.tensorReshape(h, [1, 2]);
    n.tensorDispose(h);
    n.tensorDispose(h); // twice: the second does nothing
    expect(() => n.tensorRead(h, new Float32Array(2))).toThrow(/argument 'tensor' has been disposed/);
    expect(Array.from(n.tensorRead(view, new Float32Array(2)))).toEqual([0, 0]); // the view keeps the memory
    const next = n.fromArray(new Float32Array([5, 6]), [2], 'f32', 'cpu'); // takes the freed slot
    expect(() => n.add(h, null, null, 1, 1)).toThrow(/ops.add: argument 'a' has been disposed/);
    n.tensorDispose(h); // a stale id leaves the slot's new tensor alone
    expect(Array.from(n.tensorRead(next, new Float32Array(2)))).toEqual([5, 6]);
    n.tensorDispose(next);
    n.tensorDispose(view);
    expect(n.liveTensors()).toBe(live);
    expect(() => setThreads(0)).toThrow(/setThreads/);
    expect(() => n.fmaPeak(NaN)).toThrow(/fmaPeak: argument 'seconds'/);
    expect(() => n.fmaPeak(11)).toThrow(RangeError);
    expect(n.fmaPeak(0.01)).toBeGreaterThanOrEqual(0);
    expect(n.fmaPeak(0.01, 'bf16')).toBeGreaterThanOrEqual(0);
    expect(() => n.fmaPeak(0.01, 'i32' as 'f32')).toThrow(/fmaPeak: argument 'dtype' must be f32, bf16 or f16/);
    expect(() => setIsa('sse9')).toThrow(/unknown ISA 'sse9'/);
  });
});

describe('a call that throws keeps nothing', () => {
  it('frees the outputs an op made before it refused (their ids never reached JavaScript)', () => {
    const n = native();
    const table = Tensor.from([1, 2, 3, 4, 5, 6], [3, 2], { device: 'cpu' });
    const ids = Tensor.from([0, 7], [2], { dtype: 'i32', device: 'cpu' }); // 7: out of the table, found while filling the output
    const q = Tensor.from(new Float32Array(2 * 2 * 4), [2, 2, 4], { device: 'cpu' });
    const badLse = Tensor.zeros([3], { device: 'cpu' }); // checked after the output was made
    const live = n.liveTensors(), bytes = memoryStats('cpu').inUse;
    for (let i = 0; i < 100; i++) {
      expect(() => ops.embedding(ids, table)).toThrow(/ops.embedding/);
      expect(() => n.attention(q.handle, q.handle, q.handle, null, null, true, 0.5, null, badLse.handle)).toThrow(/ops.attention: argument 'lse'/);
    }
    expect(n.liveTensors()).toBe(live);
    expect(memoryStats('cpu').inUse).toBe(bytes);
    for (const t of [table, ids, q, badLse]) t.dispose();
  });

  it('an asynchronous read whose destination is transferred meanwhile is refused, not written into freed memory', async () => {
    const t = Tensor.from(new Float32Array(1 << 20).fill(3), [1 << 20], { device: 'cpu' });
    const out = new Float32Array(1 << 20);
    const pending = native().tensorReadAsync(t.handle, out);
    structuredClone(out.buffer, { transfer: [out.buffer] });
    await expect(pending).rejects.toThrow(/Tensor.toArray: the destination array's buffer was transferred \(detached\)/);
    const again = new Float32Array(1 << 20);
    expect((await native().tensorReadAsync(t.handle, again))[12345]).toBe(3);
    t.dispose();
  });

  it('reads a shape before it looks the tensor up: a getter that disposes it cannot pull the memory away', () => {
    const n = native();
    const h = n.fromArray(new Float32Array([1, 2, 3, 4]), [4], 'f32', 'cpu');
    let other = 0;
    const shape = [2, 2];
    Object.defineProperty(shape, 1, {
      get() {
        n.tensorDispose(h);
        other = n.fromArray(new Float32Array([9, 9, 9, 9]), [4], 'f32', 'cpu'); // takes the freed slot
        return 2;
      },
    });
    expect(() => n.tensorReshape(h, shape)).toThrow(/Tensor.reshape: argument 'tensor' has been disposed/);
    expect(Array.from(n.tensorRead(other as never, new Float32Array(4)))).toEqual([9, 9, 9, 9]);
    n.tensorDispose(other as never);
  });
});

describe('environment switches', () => {
  it('QWENLONG_DEVICE=cuda throws the reason where CUDA cannot work', () => {
    if (process.env.QWENLONG_DEVICE === 'cuda') return;
    const r = runNode(`import('./dist/src/index.js').then((m) => m.Tensor.zeros([1]))`, { QWENLONG_DEVICE: 'cuda' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/QWENLONG_DEVICE=cuda, but CUDA cannot be used: \S+/);
    const info = spawnSync(process.execPath, [cli, 'info'], { env: { ...process.env, QWENLONG_DEVICE: 'cuda' }, encoding: 'utf8' });
    expect(info.status).toBe(1);
    expect(info.stderr).toMatch(/CUDA cannot be used/);
  });

  it('QWENLONG_DEVICE=cpu, QWENLONG_THREADS and QWENLONG_ISA are honoured or refused clearly', () => {
    const ok = runNode(`import('./dist/src/index.js').then((m) => console.log(JSON.stringify(m.info())))`, {
      QWENLONG_DEVICE: 'cpu',
      QWENLONG_THREADS: '3',
      QWENLONG_ISA: 'scalar',
    });
    expect(ok.status).toBe(0);
    const i = JSON.parse(ok.stdout) as { device: string; cpu: { threads: number; isa: string } };
    expect(i.device).toBe('cpu');
    expect(i.cpu.threads).toBe(3);
    expect(i.cpu.isa).toBe('scalar');
    const bad = runNode(`import('./dist/src/index.js').then((m) => m.info())`, { QWENLONG_ISA: 'avx9000' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/QWENLONG_ISA=avx9000/);
    const badThreads = runNode(`import('./dist/src/index.js').then((m) => m.info())`, { QWENLONG_THREADS: 'many' });
    expect(badThreads.stderr).toMatch(/QWENLONG_THREADS must be a positive integer/);
  });

  it('`qwenlong info --json` reports the device, CUDA status with a reason, and the CPU', () => {
    const r = spawnSync(process.execPath, [cli, 'info', '--json'], { encoding: 'utf8', env: { ...process.env, QWENLONG_DEVICE: '' } });
    expect(r.status).toBe(0);
    const i = JSON.parse(r.stdout) as { version: string; device: string; cuda: Record<string, unknown>; cpu: { isa: string; threads: number } };
    expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(['cpu', 'cuda']).toContain(i.device);
    for (const key of ['compiled', 'archs', 'available', 'reason', 'runtimeVersion', 'driverVersion', 'devices']) expect(i.cuda).toHaveProperty(key);
    if (!i.cuda.available) {
      expect(i.device).toBe('cpu');
      expect(String(i.cuda.reason).length).toBeGreaterThan(10);
    }
    expect(i.cpu.threads).toBeGreaterThan(0);
  });
});

describe('thread pool', () => {
  it('resizing between parallel ops never loses a job (a child process, killed if it hangs)', () => {
    // Workers started by a resize must wait for the next job; one that woke at once could run part of that job and
    // count itself done twice, leaving the caller waiting forever.
    const r = runNode(`
      import { Tensor, ops, setThreads } from './dist/src/index.js';
      const a = Tensor.from(new Float32Array(1 << 16).fill(1), [1 << 16], { device: 'cpu' });
      const out = Tensor.empty([1 << 16], { device: 'cpu' });
      for (let i = 0; i < 3000; i++) {
        setThreads(2 + (i % 3));
        ops.add(a, a, { out });
        ops.matmul(Tensor.from(new Float32Array(64 * 64).fill(1), [64, 64], { device: 'cpu' }), Tensor.from(new Float32Array(64 * 64).fill(1), [64, 64], { device: 'cpu' }));
      }
      const x = await out.toArray();
      console.log(x[0], x[x.length - 1]);`, {}, 120_000);
    expect(r.signal, 'the loop hung (killed at the timeout)').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('2 2');
  }, 180_000);

  it('worker threads load the addon beside the main thread, run ops at once with it, and exit without harming it', () => {
    // Each JavaScript environment keeps its own tensor class; the pool runs one thread's job at a time. Every thread
    // checks its products against a float64 product computed in JavaScript, and the main thread goes on creating,
    // using and collecting tensors after the workers have exited.
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', `
      import { Worker } from 'node:worker_threads';
      const body = async (Tensor, ops, setThreads, id) => {
        const n = 67, k = 45, m = 53;
        const av = Float32Array.from({ length: n * k }, (_, i) => ((i * 7 + id) % 13) - 6);
        const bv = Float32Array.from({ length: k * m }, (_, i) => ((i * 5 + id) % 11) - 5);
        const want = new Float64Array(n * m);
        for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) { let s = 0; for (let p = 0; p < k; p++) s += av[i * k + p] * bv[p * m + j]; want[i * m + j] = s; }
        const a = Tensor.from(av, [n, k], { device: 'cpu' }), b = Tensor.from(bv, [k, m], { device: 'cpu' });
        let worst = 0;
        for (let it = 0; it < 150; it++) {
          if (it % 50 === 25) setThreads(2 + (it % 3));
          const c = ops.matmul(a, b);
          const got = await c.toArray();
          c.dispose();
          for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
        }
        return worst;
      };
      const src = 'import { parentPort, workerData } from "node:worker_threads";' +
        'const m = await import(workerData.url);' +
        'const body = ' + body.toString() + ';' +
        'parentPort.postMessage(await body(m.Tensor, m.ops, m.setThreads, workerData.id));';
      const url = new URL('./dist/src/index.js', 'file://' + process.cwd() + '/').href;
      const { Tensor, ops, setThreads } = await import(url);
      const workers = [1, 2, 3].map((id) => new Promise((ok, fail) => {
        const w = new Worker(src, { eval: true, type: 'module', workerData: { url, id } });
        w.on('message', ok); w.on('error', fail);
      }));
      const mine = await body(Tensor, ops, setThreads, 0);
      const theirs = await Promise.all(workers);
      await new Promise((ok) => setTimeout(ok, 100));
      for (let i = 0; i < 50; i++) { const t = Tensor.from(new Float32Array(1 << 16).fill(1), [1 << 16], { device: 'cpu' }); ops.add(t, t).dispose(); }
      globalThis.gc();
      const after = await body(Tensor, ops, setThreads, 4);
      console.log(JSON.stringify([mine, ...theirs, after]));`], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.signal, 'the process hung or crashed').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual([0, 0, 0, 0, 0]);
  }, 180_000);
});
