/**
 * Tensor: a dtype, a shape, a device and native memory. Memory is released by `dispose()` (or `using`); a
 * FinalizationRegistry frees what a program forgets, later. Reading back is async (`await t.toArray()`) because
 * CUDA work is queued and the copy waits for it.
 */
import { type NativeTensorHandle, native } from './addon.js';
import { type Device, defaultDevice, describe, parseDevice } from './device.js';
import { fromHalfBits, numelOf, toHalfBits } from './half.js';

export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'i64' | 'u8';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i32', 'i64', 'u8'];

/** The TypedArray that holds each dtype's raw elements (f16 and bf16 as their 16-bit patterns). */
export interface TypedArrayOf {
  f32: Float32Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  i32: Int32Array;
  i64: BigInt64Array;
  u8: Uint8Array;
}

export type TensorData = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | readonly number[];

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
}

const ARRAY_OF: { [K in DType]: new (n: number) => TypedArrayOf[K] } = {
  f32: Float32Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i32: Int32Array,
  i64: BigInt64Array,
  u8: Uint8Array,
};

// Frees the native memory of tensors that were collected without dispose(), and counts them.
let leaked = 0;
const registry = new FinalizationRegistry<NativeTensorHandle>((handle) => {
  leaked++;
  native().tensorDispose(handle, true);
});

export function parseDType(value: unknown, what: string): DType {
  if (typeof value === 'string' && (DTYPES as readonly string[]).includes(value)) return value as DType;
  throw new TypeError(`${what}: dtype must be one of ${DTYPES.join(', ')}, not ${describe(value)}`);
}

/** The options argument: undefined (all defaults) or an object. */
export function checkOptions<T extends object>(what: string, opts: T | undefined): Partial<T> {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new TypeError(`${what}: options must be an object, not ${describe(opts)}`);
  return opts;
}

export function checkShape(shape: unknown, what: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: shape must be an array of non-negative integers, not ${describe(shape)}`);
  if (shape.length > 8) throw new RangeError(`${what}: shape has ${shape.length} dimensions (at most 8)`);
  let total = 1;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > 2 ** 40) {
      throw new RangeError(`${what}: shape[${i}] = ${describe(d)} is not a valid dimension (an integer from 0 to 2^40)`);
    }
    total *= d;
  }
  if (total > 2 ** 40) throw new RangeError(`${what}: shape [${shape.join(', ')}] has more than 2^40 elements`);
  return shape.slice() as number[];
}

function inferDType(data: TensorData, what: string): DType {
  if (data instanceof Float32Array || data instanceof Float64Array || Array.isArray(data)) return 'f32';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof BigInt64Array) return 'i64';
  if (data instanceof Uint8Array) return 'u8';
  if (data instanceof Uint16Array) throw new TypeError(`${what}: a Uint16Array holds f16 or bf16 bits; say which with { dtype }`);
  throw new TypeError(`${what}: data must be a TypedArray or an array of numbers, not ${describe(data)}`);
}

// A plain array must be flat, dense and hold only numbers: a nested array, a hole or a string would otherwise
// become NaN.
function checkNumberArray(data: readonly unknown[], what: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v === 'number') continue;
    if (!(i in data)) throw new TypeError(`${what}: data[${i}] is a hole (a sparse array); every element must be a number`);
    if (Array.isArray(v)) throw new TypeError(`${what}: data[${i}] is an array; pass the elements flat, in row-major order, with a shape`);
    if (typeof v === 'bigint') throw new TypeError(`${what}: data[${i}] is a bigint; pass a BigInt64Array for i64 values, or numbers`);
    throw new TypeError(`${what}: data[${i}] = ${describe(v)} is not a number`);
  }
}

// The bytes to hand to the native side for `dtype`, converting numbers where the array's type differs.
function toNativeArray(data: TensorData, dtype: DType, what: string): ArrayBufferView {
  const isNumbers = Array.isArray(data) || data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array || data instanceof Uint8Array;
  switch (dtype) {
    case 'f32':
      if (data instanceof Float32Array) return data;
      if (isNumbers) return Float32Array.from(data as ArrayLike<number>);
      break;
    case 'f16':
    case 'bf16':
      if (data instanceof Uint16Array) return data;
      if (isNumbers) return toHalfBits(data as ArrayLike<number>, dtype);
      break;
    case 'i32':
    case 'u8': {
      if ((dtype === 'i32' && data instanceof Int32Array) || (dtype === 'u8' && data instanceof Uint8Array)) return data;
      if (!isNumbers) break;
      const values = data as ArrayLike<number>;
      const [lo, hi] = dtype === 'i32' ? [-(2 ** 31), 2 ** 31 - 1] : [0, 255];
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${what}: data[${i}] = ${v} is not a valid ${dtype}`);
      }
      return dtype === 'i32' ? Int32Array.from(values) : Uint8Array.from(values);
    }
    case 'i64':
      if (data instanceof BigInt64Array) return data;
      if (isNumbers) {
        const values = data as ArrayLike<number>;
        const out = new BigInt64Array(values.length);
        for (let i = 0; i < values.length; i++) {
          const v = values[i]!;
          if (!Number.isSafeInteger(v)) throw new RangeError(`${what}: data[${i}] = ${v} is not a safe integer for i64`);
          out[i] = BigInt(v);
        }
        return out;
      }
      break;
  }
  throw new TypeError(`${what}: cannot make a ${dtype} tensor from ${describe(data)}`);
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  readonly size: number;
  #handle: NativeTensorHandle | undefined;

  /** @internal Wrap a native handle; use the static factories instead. */
  constructor(handle: NativeTensorHandle, shape: readonly number[], dtype: DType, device: Device) {
    this.#handle = handle;
    // A frozen shape (another tensor's, as most op results take) is shared as it is.
    this.shape = Object.isFrozen(shape) ? shape : Object.freeze(shape.slice());
    this.dtype = dtype;
    this.device = device;
    this.size = numelOf(shape);
    registry.register(this, handle, this);
  }

  /**
   * A tensor holding a copy of `data`. The dtype follows the array (Float32Array → f32, Int32Array → i32,
   * BigInt64Array → i64, Uint8Array → u8, numbers → f32) unless `opts.dtype` says otherwise; numbers are then
   * converted (rounded to nearest even for f16/bf16). A Uint16Array is taken as raw f16/bf16 bits and needs
   * `opts.dtype`. The shape defaults to 1-D.
   */
  static from(data: TensorData, shape?: readonly number[], options?: TensorOptions): Tensor {
    const what = 'Tensor.from';
    const opts = checkOptions(what, options);
    if (data === null || typeof data !== 'object') throw new TypeError(`${what}: data must be a TypedArray or an array of numbers, not ${describe(data)}`);
    if (Array.isArray(data)) checkNumberArray(data, what);
    const dtype = opts.dtype === undefined ? inferDType(data, what) : parseDType(opts.dtype, what);
    const dims = shape === undefined ? [data.length] : checkShape(shape, what);
    if (numelOf(dims) !== data.length) {
      throw new RangeError(`${what}: data has ${data.length} elements but shape [${dims.join(', ')}] needs ${numelOf(dims)}`);
    }
    const device = opts.device === undefined ? defaultDevice().device : parseDevice(opts.device, what);
    const bytes = toNativeArray(data, dtype, what);
    return new Tensor(native().fromArray(bytes, dims, dtype, device), dims, dtype, device);
  }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], opts?: TensorOptions): Tensor {
    return Tensor.#allocate('Tensor.zeros', shape, opts, true);
  }

  /** A tensor whose contents are undefined (fastest; every element must be written before it is read). */
  static empty(shape: readonly number[], opts?: TensorOptions): Tensor {
    return Tensor.#allocate('Tensor.empty', shape, opts, false);
  }

  static #allocate(what: string, shape: readonly number[], options: TensorOptions | undefined, zero: boolean): Tensor {
    const opts = checkOptions(what, options);
    const dims = checkShape(shape, what);
    const dtype = opts.dtype === undefined ? 'f32' : parseDType(opts.dtype, what);
    const device = opts.device === undefined ? defaultDevice().device : parseDevice(opts.device, what);
    return new Tensor(native().empty(dims, dtype, device, zero), dims, dtype, device);
  }

  /** True for a real Tensor (a brand check: lookalike objects and subclass tricks do not pass). */
  static isTensor(value: unknown): value is Tensor {
    return typeof value === 'object' && value !== null && #handle in value;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.#handle === undefined;
  }

  /** @internal The native handle, for ops; throws once disposed. */
  get handle(): NativeTensorHandle {
    if (!this.#handle) throw new TypeError('qwenlong: this tensor has been disposed');
    return this.#handle;
  }

  /** This tensor on `device`: itself when it is there already, else a copy. */
  to(device: Device): Tensor {
    const target = parseDevice(device, 'Tensor.to');
    if (target === this.device) return this;
    return new Tensor(native().tensorCopyTo(this.handle, target), this.shape, this.dtype, target);
  }

  /**
   * The same elements under another shape (row-major order kept): a view sharing this tensor's memory, so writes
   * through one show in the other. Each view is disposed on its own; the memory lives until the last one goes.
   */
  reshape(shape: readonly number[]): Tensor {
    const s = checkShape(shape, 'Tensor.reshape');
    return new Tensor(native().tensorReshape(this.handle, s), s, this.dtype, this.device);
  }

  /** A fresh TypedArray with a copy of the elements (f16/bf16 as raw bits; see toFloat32Array). */
  async toArray<D extends DType = DType>(this: Tensor & { dtype: D }): Promise<TypedArrayOf[D]> {
    const out = new ARRAY_OF[this.dtype](this.size) as TypedArrayOf[D];
    if (this.device === 'cpu') return native().tensorRead(this.handle, out);
    return native().tensorReadAsync(this.handle, out);
  }

  /**
   * @internal Copies the elements into `out` (a TypedArray of exactly the tensor's bytes; f16/bf16 as raw bits) and
   * returns it, synchronously: on CUDA the call waits for the device.
   */
  readInto<T extends ArrayBufferView>(out: T): T {
    return native().tensorRead(this.handle, out);
  }

  /** The elements as a Float32Array (any float dtype). */
  async toFloat32Array(): Promise<Float32Array> {
    if (this.dtype === 'f32') return (await this.toArray()) as Float32Array;
    if (this.dtype === 'f16' || this.dtype === 'bf16') return fromHalfBits((await this.toArray()) as Uint16Array, this.dtype);
    throw new TypeError(`Tensor.toFloat32Array: the tensor is ${this.dtype}, not a float type`);
  }

  /** The value of a one-element tensor (a 0-d scalar, or any shape of size 1). */
  async item(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`Tensor.item: the tensor has ${this.size} elements, not 1`);
    const values = this.dtype === 'f16' || this.dtype === 'bf16' ? await this.toFloat32Array() : await this.toArray();
    return Number(values[0]!);
  }

  /** Release the memory now. Safe to call twice; any later use throws. */
  dispose(): void {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = undefined;
    registry.unregister(this);
    native().tensorDispose(handle);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

/** How many tensors were garbage-collected without dispose() since the process started. */
export function leakedTensorCount(): number {
  return leaked;
}

/** Throws unless `value` is a live Tensor. */
export function checkTensor(value: unknown, what: string, arg: string): Tensor {
  if (!Tensor.isTensor(value)) throw new TypeError(`${what}: argument '${arg}' must be a Tensor, not ${describe(value)}`);
  if (value.disposed) throw new TypeError(`${what}: argument '${arg}' has been disposed`);
  return value;
}
