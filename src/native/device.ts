/**
 * Device choice. `QWENLONG_DEVICE=cpu|cuda|auto` (default auto): auto takes CUDA when the binary has it and a
 * device answers, else the CPU, and keeps the reason; forcing cuda where it cannot work throws that reason.
 */
import { native } from './addon.js';

export type Device = 'cpu' | 'cuda';

export interface DeviceChoice {
  device: Device;
  reason: string;
}

let choice: DeviceChoice | undefined;

/** Decide (once) which device tensors go to by default. Throws when QWENLONG_DEVICE asks for the impossible. */
export function defaultDevice(): DeviceChoice {
  if (choice) return choice;
  const wanted = (process.env.QWENLONG_DEVICE ?? 'auto').trim().toLowerCase() || 'auto';
  if (wanted !== 'auto' && wanted !== 'cpu' && wanted !== 'cuda') {
    throw new TypeError(`QWENLONG_DEVICE must be cpu, cuda or auto, not '${process.env.QWENLONG_DEVICE}'`);
  }
  const cuda = native().info().cuda;
  if (wanted === 'cpu') {
    choice = { device: 'cpu', reason: 'QWENLONG_DEVICE=cpu' };
  } else if (wanted === 'cuda') {
    if (!cuda.available) throw new Error(`QWENLONG_DEVICE=cuda, but CUDA cannot be used: ${cuda.reason}`);
    choice = { device: 'cuda', reason: `QWENLONG_DEVICE=cuda; ${cuda.reason}` };
  } else if (cuda.available) {
    choice = { device: 'cuda', reason: cuda.reason };
  } else {
    choice = { device: 'cpu', reason: `CUDA not used: ${cuda.reason}` };
  }
  return choice;
}

/** Check a user-supplied device name. */
export function parseDevice(value: unknown, what: string): Device {
  if (value === 'cpu' || value === 'cuda') return value;
  throw new TypeError(`${what}: device must be 'cpu' or 'cuda', not ${describe(value)}`);
}

/**
 * A user-supplied device that this process can use, or undefined when none was given (the default then applies):
 * 'cuda' where CUDA cannot be used is refused with the reason, before any work starts.
 */
export function usableDevice(value: unknown, what: string): Device | undefined {
  if (value === undefined) return undefined;
  const device = parseDevice(value, what);
  if (device === 'cuda') {
    const cuda = native().info().cuda;
    if (!cuda.available) throw new Error(`${what}: 'cuda' cannot be used here (${cuda.reason}); use 'cpu'`);
  }
  return device;
}

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  if (typeof value === 'string') return `'${value.length > 40 ? value.slice(0, 40) + '…' : value}'`;
  return `${typeof value} ${String(value)}`;
}
