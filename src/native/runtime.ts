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
  cpu: { isa: string; supportedIsas: string[]; threads: number };
  /** The binary in use. */
  addon: string;
}

let version: string | undefined;

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
}

export function memoryStats(device: Device = 'cpu'): MemoryStats {
  return { ...native().memoryStats(parseDevice(device, 'memoryStats')), leakedTensors: leakedTensorCount() };
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
