/** What the runtime knows about itself: version, device, CUDA and CPU facts; thread, ISA and memory controls. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type NativeCudaStatus, loadAddon, native, packageRoot } from './addon.js';
import { type Device, defaultDevice, parseDevice } from './device.js';
import { leakedTensorCount } from './tensor.js';

export interface Info {
  version: string;
  device: Device;
  deviceReason: string;
  cuda: NativeCudaStatus;
  /** bf16Dot: the CPU has AVX512-BF16 dot products, which bf16 kernels use under the avx512 ISA. */
  cpu: { isa: string; supportedIsas: string[]; bf16Dot: boolean; threads: number };
  /** The binary in use. */
  addon: string;
}

let version: string | undefined;

/** The kernel's transparent-huge-page setting ('always', 'madvise' or 'never'), or null where there is none (not Linux). */
export function hugePageMode(): string | null {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

/** Version, chosen device and why, CUDA status, CPU ISA and threads. Throws if QWENLONG_DEVICE cannot be met. */
export function info(): Info {
  const { device, reason } = defaultDevice();
  const raw = native().info();
  return { version: packageVersion(), device, deviceReason: reason, cuda: raw.cuda, cpu: raw.cpu, addon: loadAddon().path };
}

export interface MemoryStats {
  /** Bytes held by live tensors. */
  inUse: number;
  /** Bytes the caching allocator keeps for reuse (host: buffers of 256 KiB and up; CUDA: all). */
  cached: number;
  /** High-water mark of inUse. */
  peak: number;
  /** Tensors garbage-collected without dispose() since start (all devices). */
  leakedTensors: number;
  /**
   * Tensors of this thread not yet disposed nor collected (all devices, reshape views counted apiece): a number that
   * grows from one step of a loop to the next is a leak.
   */
  liveTensors: number;
}

export function memoryStats(device: Device = 'cpu'): MemoryStats {
  return { ...native().memoryStats(parseDevice(device, 'memoryStats')), leakedTensors: leakedTensorCount(), liveTensors: native().liveTensors() };
}

/** Set the CPU thread pool's size (QWENLONG_THREADS sets it at start). */
export function setThreads(threads: number): void {
  native().setThreads(threads);
}

/** Force the CPU kernels' ISA: 'scalar', 'avx2' or 'avx512' (QWENLONG_ISA sets it at start). */
export function setIsa(isa: string): void {
  native().setIsa(isa);
}

/** Wait for all queued CUDA work; rethrows a kernel's error. A no-op without CUDA. */
export function synchronize(): void {
  native().synchronize();
}

/** Return the allocators' cached blocks: large host buffers to the operating system, CUDA blocks to the driver. */
export function emptyCache(): void {
  native().emptyCache();
}

/** One line of an op profile: an op on one device, summed over its calls. */
export interface OpProfile {
  op: string;
  device: Device;
  calls: number;
  /** Wall time inside the calls (launches, allocations, synchronous copies; the whole work on the CPU). */
  hostMs: number;
  /** CUDA: time of the op's work on the compute stream (CUDA events); CPU: the host time. */
  deviceMs: number;
}

export interface Profile<T> {
  result: T;
  /** Wall time of the whole run, the device synchronized at both ends. */
  wallMs: number;
  /** One line per (op, device), most device time first. */
  ops: OpProfile[];
}

/**
 * Runs fn under the op profiler: every native op it calls is timed (host time, and CUDA event time on the GPU), with
 * the device synchronized before and after. Time outside the ops (TypeScript, sampling, host work between launches)
 * is wallMs minus the sum of hostMs. An async fn is awaited and the profile resolves when it settles (ops that other
 * code of the process runs meanwhile count too). Profiles do not nest (a nested call throws).
 */
export function profile<T>(fn: () => Promise<T>): Promise<Profile<T>>;
export function profile<T>(fn: () => T): Profile<T>;
export function profile<T>(fn: () => T | Promise<T>): Profile<T> | Promise<Profile<T>> {
  if (typeof fn !== 'function') throw new TypeError(`profile: fn must be a function, not ${typeof fn}`);
  const n = native();
  synchronize();
  n.profilerStart();
  const t0 = performance.now();
  // Stops the profiler exactly once, whatever throws.
  const finish = (result: T): Profile<T> => {
    try {
      synchronize();
    } catch (e) {
      n.profilerStop();
      throw e;
    }
    const wallMs = performance.now() - t0;
    const ops = n.profilerStop().sort((a, b) => b.deviceMs - a.deviceMs);
    return { result, wallMs, ops };
  };
  let result: T | Promise<T>;
  try {
    result = fn();
  } catch (e) {
    n.profilerStop();
    throw e;
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    return Promise.resolve(result).then(finish, (e: unknown) => {
      n.profilerStop();
      throw e;
    });
  }
  return finish(result as T);
}

/** A profile as a text table: op, device, calls, device ms, share of the wall time, host ms. */
export function formatProfile(p: Pick<Profile<unknown>, 'wallMs' | 'ops'>, top = 20): string {
  if (p === null || typeof p !== 'object' || !Array.isArray(p.ops) || typeof p.wallMs !== 'number') {
    throw new TypeError('formatProfile: p must be a profile ({ wallMs, ops }, as profile() returns)');
  }
  if (!(Number.isInteger(top) && top >= 1) && top !== Infinity) throw new RangeError(`formatProfile: top must be a positive integer (or Infinity), not ${String(top)}`);
  const lines = [`${'op'.padEnd(28)} ${'device'.padEnd(6)} ${'calls'.padStart(7)} ${'device ms'.padStart(11)} ${'share'.padStart(7)} ${'host ms'.padStart(10)}`];
  for (const o of p.ops.slice(0, top)) {
    lines.push(`${o.op.padEnd(28)} ${o.device.padEnd(6)} ${String(o.calls).padStart(7)} ${o.deviceMs.toFixed(3).padStart(11)} ${((100 * o.deviceMs) / p.wallMs).toFixed(1).padStart(6)}% ${o.hostMs.toFixed(3).padStart(10)}`);
  }
  const host = p.ops.reduce((a, o) => a + o.hostMs, 0);
  lines.push(`wall ${p.wallMs.toFixed(3)} ms; inside ops (host) ${host.toFixed(3)} ms; outside ops ${(p.wallMs - host).toFixed(3)} ms`);
  return lines.join('\n');
}
