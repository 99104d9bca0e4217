// Fires random malformed calls at every exported op, the tensor factories and the raw native functions. Each
// call must either succeed or throw an Error that names what refused it; the process must survive them all.
// New ops are covered automatically: every function exported under `ops` is fuzzed.
import { describe, expect, it } from 'vitest';

import { Tensor, ops, setIsa, setThreads, info } from '../src/index.js';
import { native } from '../src/native/addon.js';
import { rng } from './helpers.js';

const CALLS_PER_TARGET = 10_000;

const rawOwners: Tensor[] = [];

/** Frees what a call returned (tensors, and from the raw native functions tensor ids, one level deep) but the pool's. */
function release(result: unknown, raw: boolean, pool: unknown[]): void {
  const one = (x: unknown) => {
    if (pool.includes(x)) return;
    if (Tensor.isTensor(x)) x.dispose();
    else if (raw && typeof x === 'number') native().tensorDispose(x as never);
  };
  if (Array.isArray(result)) result.forEach(one);
  else if (result !== null && typeof result === 'object' && !Tensor.isTensor(result) && !(result instanceof Promise)) Object.values(result).forEach(one);
  else one(result);
}

function makePool(): unknown[] {
  const t = (data: number[], shape: number[], dtype: 'f32' | 'f16' | 'bf16' | 'i32' | 'u8' | 'i64') => Tensor.from(data, shape, { dtype, device: 'cpu' });
  const disposed = t([1, 2], [2], 'f32');
  disposed.dispose();
  const hostileArray = [1, 2];
  Object.defineProperty(hostileArray, 1, {
    get() {
      throw new Error('hostile getter');
    },
  });
  const detached = new Float32Array(4);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });
  // Raw tensor ids for the native functions (tensors of their own, kept referenced so that no collection frees
  // them during the run; tensorDispose may), and a stale one.
  rawOwners.push(t([1, 2, 3, 4], [2, 2], 'f32'), t([1, 2, 3, 4], [4], 'bf16'), t([1, 2], [2], 'i32'));
  const ids = rawOwners.map((x) => x.handle as number);
  const stale = t([1], [1], 'f32');
  const staleId = stale.handle as number;
  stale.dispose();
  return [
    ...ids,
    staleId,
    staleId + 1,
    t([1, 2, 3, 4], [4], 'f32'),
    t([1, 2, 3, 4], [2, 2], 'f32'),
    t([1, 2, 3, 4, 5, 6], [2, 3], 'bf16'),
    t([1, 2, 3, 4], [4], 'f16'),
    t([1, 2, 3], [3], 'i32'),
    t([1, 2, 3], [3], 'i64'),
    t([7], [], 'f32'),
    t([], [0], 'f32'),
    t([1, 2], [2], 'u8'),
    disposed,
    Object.create(Tensor.prototype),
    { handle: {} },
    {},
    [],
    [1, 2],
    [-1],
    [2 ** 41],
    [1e12, 1e12],
    [1.5],
    [NaN],
    hostileArray,
    new Proxy({}, { get: () => { throw new Error('hostile proxy'); } }),
    null,
    undefined,
    NaN,
    Infinity,
    -Infinity,
    -1,
    0,
    1,
    3,
    2 ** 53,
    1e300,
    -0,
    'f32',
    'bf16',
    'cpu',
    'cuda',
    'scalar',
    '',
    1n,
    Symbol('s'),
    () => 1,
    new Float32Array(4),
    new Uint16Array(4),
    new Int32Array(3),
    new Float64Array(2),
    new Uint8Array(0),
    detached,
    new ArrayBuffer(8),
    new DataView(new ArrayBuffer(8)),
  ];
}

const OPTION_KEYS = ['alpha', 'beta', 'out', 'dtype', 'device', 'scale', 'causal', 'transA', 'transB', 'eps', 'offset'];

function randomArgs(r: () => number, pool: unknown[], maxArgs: number): unknown[] {
  const pick = () => pool[Math.floor(r() * pool.length)];
  const n = Math.floor(r() * (maxArgs + 1));
  const args: unknown[] = [];
  for (let i = 0; i < n; i++) {
    if (r() < 0.2) {
      const o: Record<string, unknown> = {};
      for (const k of OPTION_KEYS) if (r() < 0.3) o[k] = pick();
      args.push(o);
    } else {
      args.push(pick());
    }
  }
  return args;
}

type Target = { name: string; label: RegExp; call: (args: unknown[]) => unknown };

function targets(): Target[] {
  const n = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const list: Target[] = [];
  for (const [name, fn] of Object.entries(ops)) {
    list.push({ name: `ops.${name}`, label: new RegExp(`ops\\.${name}|Tensor|disposed`), call: (a) => (fn as (...x: unknown[]) => unknown)(...a) });
  }
  list.push({ name: 'Tensor.from', label: /Tensor\.from|QWENLONG/, call: (a) => Tensor.from(...(a as [never])) });
  list.push({ name: 'Tensor.zeros', label: /Tensor\.zeros|QWENLONG/, call: (a) => Tensor.zeros(...(a as [never])) });
  list.push({ name: 'Tensor.empty', label: /Tensor\.empty|QWENLONG/, call: (a) => Tensor.empty(...(a as [never])) });
  const labels: Record<string, RegExp> = {
    tensorRead: /Tensor\.toArray|hostile/, tensorReadAsync: /Tensor\.toArray|hostile/, tensorCopyTo: /Tensor\.to|hostile/, tensorReshape: /Tensor\.reshape|hostile/, tensorDispose: /hostile/,
    add: /ops\.add/, matmul: /ops\.matmul/, sampleRows: /sampleRows|hostile/, profilerStart: /profile/, profilerStop: /profile/, fromArray: /Tensor\.from|hostile/, empty: /Tensor\.empty|hostile/, memcpy: /memcpy/, setIsa: /setIsa/,
    setThreads: /setThreads/, memoryStats: /memoryStats/, kvWrite: /kvCache\.write|hostile/, kvCopyBlocks: /kvCache\.copyBlocks|hostile/, readStream: /readStream|hostile/,
  };
  // Every other native op function reports as ops.<name> (rope's inverse as ropeBackward, gradNorm's clip as clipGrad).
  // fmaPeak is a benchmark probe that runs for the seconds it is given: called once in the errors test instead.
  const runtime = new Set(['info', 'synchronize', 'emptyCache', 'noop', 'fmaPeak', 'liveTensors', ...Object.keys(labels)]);
  for (const name of Object.keys(n)) {
    if (!runtime.has(name)) labels[name] = new RegExp(`ops\\.(${name}|ropeBackward|clipGrad)|hostile`);
  }
  for (const [name, label] of Object.entries(labels)) list.push({ name: `native.${name}`, label, call: (a) => n[name]!(...a) });
  return list;
}

describe('fuzz', () => {
  it(`survives ${CALLS_PER_TARGET} malformed calls per entry point, each refused with a named error`, async () => {
    const pool = makePool();
    const pooled = native().liveTensors();
    const r = rng(20251125);
    const best = info().cpu.supportedIsas.at(-1)!;
    const threads = info().cpu.threads;
    const pending: Promise<unknown>[] = [];
    const unnamed: string[] = [];
    let calls = 0;
    for (const target of targets()) {
      for (let i = 0; i < CALLS_PER_TARGET; i++) {
        const args = randomArgs(r, pool, 5);
        calls++;
        try {
          const result = target.call(args);
          const raw = target.name.startsWith('native.') && target.name !== 'native.readStream' && target.name !== 'native.liveTensors';
          if (!pool.includes(result)) release(result, raw, pool);
          if (result instanceof Promise) pending.push(result.then((v) => v, (e: unknown) => { if (!(e instanceof Error)) unnamed.push(`${target.name}: non-Error rejection`); }));
        } catch (e) {
          // A hostile getter's own exception passing through unchanged is correct too.
          if (!(e instanceof Error) || !(target.label.test(e.message) || /hostile/.test(e.message))) {
            if (!unnamed.includes(msg(target.name, e))) unnamed.push(msg(target.name, e));
          }
        }
      }
    }
    await Promise.all(pending);
    setIsa(best);
    setThreads(threads);
    expect(unnamed).toEqual([]);
    expect(calls).toBeGreaterThanOrEqual(CALLS_PER_TARGET * 10);
    // No call kept a tensor it made: what is live is the pool (less what tensorDispose freed of the raw ids' owners).
    expect(native().liveTensors()).toBeLessThanOrEqual(pooled);
    expect(native().liveTensors()).toBeGreaterThanOrEqual(pooled - rawOwners.length - 1);
    // The runtime still works afterwards.
    const x = Tensor.from([1, 2, 3], [3], { device: 'cpu' });
    expect(Array.from(await ops.add(x, x).toArray())).toEqual([2, 4, 6]);
  });
});

function msg(name: string, e: unknown): string {
  return `${name}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`;
}
