/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header (name → dtype, shape, data_offsets
 * into the data region; optional `__metadata__` of strings), then the raw little-endian data. Reading checks every
 * entry against the file (dtype, sizes, bounds) and widens F32/F16/BF16 to f32; writing is atomic (a temporary file
 * renamed into place), F32, with the header padded to 8 bytes.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { bf16ToF32, f16ToF32 } from '../native/half.js';

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

const SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

export function parseSafetensors(bytes: Uint8Array, what = 'safetensors file'): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const fail = (why: string) => new RangeError(`${what}: ${why}`);
  if (bytes.byteLength < 8) throw fail('shorter than its 8-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > bytes.byteLength - 8 || headerLen > 100 * 2 ** 20) throw fail(`header length ${headerLen} runs past the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  } catch {
    throw fail('the header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw fail('the header is not a JSON object');
  const dataStart = 8 + headerLen, dataLen = bytes.byteLength - dataStart;
  const tensors = new Map<string, HostTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e?.dtype !== 'string' || !(e.dtype in SIZES)) throw fail(`tensor ${name} has dtype ${String(e?.dtype)} (F32, F16 and BF16 are read)`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`tensor ${name} has a malformed shape`);
    if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) throw fail(`tensor ${name} has malformed data_offsets`);
    const [begin, end] = e.data_offsets as number[];
    const numel = (e.shape as number[]).reduce((a, b) => a * b, 1);
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin! < 0 || end! > dataLen || end! - begin! !== numel * SIZES[e.dtype]!) {
      throw fail(`tensor ${name}: data_offsets [${begin}, ${end}] do not hold ${numel} ${e.dtype} values inside the ${dataLen}-byte data region`);
    }
    const data = new Float32Array(numel);
    const at = dataStart + begin!;
    if (e.dtype === 'F32') for (let i = 0; i < numel; i++) data[i] = view.getFloat32(at + 4 * i, true);
    else if (e.dtype === 'BF16') for (let i = 0; i < numel; i++) data[i] = bf16ToF32(view.getUint16(at + 2 * i, true));
    else for (let i = 0; i < numel; i++) data[i] = f16ToF32(view.getUint16(at + 2 * i, true));
    tensors.set(name, { shape: e.shape as number[], data });
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  return parseSafetensors(readFileSync(path), path);
}

/** Writes F32 tensors atomically: `path` either keeps its old content or holds the whole new file. */
export function writeSafetensors(path: string, tensors: Map<string, HostTensor>, metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new RangeError(`writeSafetensors: ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, head);
    for (const t of tensors.values()) {
      const le = new Uint8Array(t.data.length * 4);
      const dv = new DataView(le.buffer);
      for (let i = 0; i < t.data.length; i++) dv.setFloat32(4 * i, t.data[i]!, true);
      writeSync(fd, le);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
