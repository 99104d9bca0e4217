/**
 * The paged KV cache and attention over it.
 *
 * `PagedKVCache` owns, for every layer, a K and a V pool of `numBlocks` blocks of `blockSize` tokens, allocated
 * once, laid out (numBlocks, kvHeads, blockSize, headDim). Sequences are caller-chosen integer ids holding a list of
 * blocks (one table for all layers, so a sequence has one length). Blocks are reference-counted: `fork` shares
 * every block of a sequence, the partial last one included, and the first write into a shared block copies it
 * (copy-on-write). Bookkeeping is synchronous TypeScript; the native side only copies slots and blocks.
 *
 * `ops.pagedAttention(q, cache, layer, seqIds, opts)` attends the last n written tokens of each listed sequence
 * to all of its cached keys (decode: one token per sequence; chunked prefill: many), causal aligned bottom-right
 * as in `ops.attention`, with long contexts cut into partitions merged by log-sum-exp (flash-decoding).
 */
import { native } from '../native/addon.js';
import { type Device, defaultDevice, describe, parseDevice } from '../native/device.js';
import { type DType, Tensor, checkOptions, checkTensor } from '../native/tensor.js';
import { info } from '../native/runtime.js';
import { checkFinite, checkOut, outputTensor } from './checks.js';

export interface PagedKVCacheOptions {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Tokens per block (default 16; CUDA takes 8, 16 or 32). */
  blockSize?: number;
  numBlocks: number;
  /** bf16 (default), f16 or f32 (the CUDA kernels take all three; f32 there has not yet run on a GPU). */
  dtype?: DType;
  device?: Device;
}

export interface PagedKVCacheStats {
  blockSize: number;
  numBlocks: number;
  /** Blocks held by at least one sequence. */
  used: number;
  free: number;
  /** Blocks held by more than one sequence. */
  shared: number;
  sequences: number;
}

interface Sequence {
  blocks: number[];
  length: number;
  /** Tokens reserved by `reserve` and not yet counted in `length`. */
  pending: number;
  /** Slots of the pending tokens. */
  slots: Int32Array;
  /** Layers written since the reservation. */
  written: boolean[];
}

const name = 'PagedKVCache';

function positiveInt(op: string, arg: string, value: unknown, max = 2 ** 31 - 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new (typeof value === 'number' ? RangeError : TypeError)(`${op}: '${arg}' must be an integer in [1, ${max}], not ${describe(value)}`);
  }
  return value;
}

function seqIdArg(op: string, value: unknown, arg = 'seqId'): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new TypeError(`${op}: '${arg}' must be an integer id, not ${describe(value)}`);
  return value;
}

export class PagedKVCache {
  readonly layers: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly dtype: DType;
  readonly device: Device;
  /** Per layer: (numBlocks, kvHeads, blockSize, headDim). */
  readonly k: readonly Tensor[];
  readonly v: readonly Tensor[];

  #refs: Int32Array;
  #free: number[];
  #seqs = new Map<number, Sequence>();
  #nextId = 0;
  #disposed = false;

  constructor(options: PagedKVCacheOptions) {
    const opts = checkOptions(name, options);
    this.layers = positiveInt(name, 'layers', opts.layers, 4096);
    this.kvHeads = positiveInt(name, 'kvHeads', opts.kvHeads, 4096);
    this.headDim = positiveInt(name, 'headDim', opts.headDim, 256);
    this.blockSize = positiveInt(name, 'blockSize', opts.blockSize ?? 16, 1024);
    this.numBlocks = positiveInt(name, 'numBlocks', opts.numBlocks);
    this.device = opts.device === undefined ? defaultDevice().device : parseDevice(opts.device, `${name}: 'device'`);
    const dtype = opts.dtype ?? 'bf16';
    if (dtype !== 'bf16' && dtype !== 'f16' && dtype !== 'f32') throw new TypeError(`${name}: 'dtype' must be bf16, f16 or f32, not ${describe(dtype)}`);
    if (this.device === 'cuda' && ![8, 16, 32].includes(this.blockSize)) throw new RangeError(`${name}: a CUDA cache takes a blockSize of 8, 16 or 32, not ${this.blockSize}`);
    this.dtype = dtype;
    const shape = [this.numBlocks, this.kvHeads, this.blockSize, this.headDim];
    const k: Tensor[] = [], v: Tensor[] = [];
    try {
      for (let l = 0; l < this.layers; l++) {
        k.push(Tensor.empty(shape, { dtype, device: this.device }));
        v.push(Tensor.empty(shape, { dtype, device: this.device }));
      }
    } catch (e) {
      for (const t of [...k, ...v]) t.dispose();
      throw e;
    }
    this.k = k;
    this.v = v;
    this.#refs = new Int32Array(this.numBlocks);
    // Popped from the end: block 0 first.
    this.#free = Array.from({ length: this.numBlocks }, (_, i) => this.numBlocks - 1 - i);
  }

  /** Bytes of K and V storage, all layers. */
  get bytes(): number {
    return 2 * this.layers * this.numBlocks * this.kvHeads * this.blockSize * this.headDim * (this.dtype === 'f32' ? 4 : 2);
  }

  #seq(op: string, seqId: unknown): Sequence {
    if (this.#disposed) throw new Error(`${name}.${op}: the cache was disposed`);
    const id = seqIdArg(`${name}.${op}`, seqId);
    const s = this.#seqs.get(id);
    if (!s) throw new RangeError(`${name}.${op}: no sequence ${id}`);
    return s;
  }

  #unref(block: number): void {
    if (--this.#refs[block]! === 0) this.#free.push(block);
  }

  /** Starts an empty sequence. */
  allocate(seqId: number): void {
    if (this.#disposed) throw new Error(`${name}.allocate: the cache was disposed`);
    const id = seqIdArg(`${name}.allocate`, seqId);
    if (this.#seqs.has(id)) throw new RangeError(`${name}.allocate: sequence ${id} exists`);
    this.#seqs.set(id, { blocks: [], length: 0, pending: 0, slots: new Int32Array(0), written: [] });
    this.#nextId = Math.max(this.#nextId, id + 1);
  }

  /** A new sequence sharing every block of `seqId` (no copy until one of them writes into a shared block). */
  fork(seqId: number, newId?: number): number {
    const s = this.#seq('fork', seqId);
    if (s.pending > 0) throw new Error(`${name}.fork: sequence ${seqId} has reserved tokens not yet written in every layer`);
    const id = newId === undefined ? this.#nextId : seqIdArg(`${name}.fork`, newId, 'newId');
    if (this.#seqs.has(id)) throw new RangeError(`${name}.fork: sequence ${id} exists`);
    for (const b of s.blocks) this.#refs[b]!++;
    this.#seqs.set(id, { blocks: [...s.blocks], length: s.length, pending: 0, slots: new Int32Array(0), written: [] });
    this.#nextId = Math.max(this.#nextId, id + 1);
    return id;
  }

  /** Keeps the first `length` tokens; blocks no longer needed go back to the pool (if no one else holds them). */
  truncate(seqId: number, length: number): void {
    const s = this.#seq('truncate', seqId);
    if (s.pending > 0) throw new Error(`${name}.truncate: sequence ${seqId} has reserved tokens not yet written in every layer`);
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > s.length) {
      throw new RangeError(`${name}.truncate: 'length' must be an integer in [0, ${s.length}], not ${describe(length)}`);
    }
    const keep = Math.ceil(length / this.blockSize);
    for (const b of s.blocks.splice(keep)) this.#unref(b);
    s.length = length;
  }

  /** Ends a sequence; its blocks go back to the pool once no other sequence holds them. */
  free(seqId: number): void {
    const s = this.#seq('free', seqId);
    for (const b of s.blocks) this.#unref(b);
    this.#seqs.delete(seqId);
  }

  length(seqId: number): number {
    return this.#seq('length', seqId).length;
  }

  has(seqId: number): boolean {
    return this.#seqs.has(seqId);
  }

  /** The physical blocks of a sequence, in order (a copy). */
  blocks(seqId: number): number[] {
    return [...this.#seq('blocks', seqId).blocks];
  }

  /** Blocks in the free pool now (stats().free without the scan). */
  get freeBlocks(): number {
    return this.#free.length;
  }

  stats(): PagedKVCacheStats {
    let used = 0, shared = 0;
    for (const r of this.#refs) {
      if (r > 0) used++;
      if (r > 1) shared++;
    }
    return { blockSize: this.blockSize, numBlocks: this.numBlocks, used, free: this.#free.length, shared, sequences: this.#seqs.size };
  }

  /** Blocks a reservation of n tokens would take from the pool now (new blocks, plus a copy of a shared partial block). */
  blocksNeeded(seqId: number, n: number): number {
    const s = this.#seq('blocksNeeded', seqId);
    return this.#needed(s, n);
  }

  #needed(s: Sequence, n: number): number {
    const grow = Math.ceil((s.length + n) / this.blockSize) - s.blocks.length;
    const cow = n > 0 && s.length % this.blockSize !== 0 && this.#refs[s.blocks.at(-1)!]! > 1 ? 1 : 0;
    return grow + cow;
  }

  /**
   * Claims slots for n new tokens of every layer (copying a shared partial last block first). Throws a RangeError
   * and changes nothing when the pool cannot hold them.
   */
  reserve(seqId: number, n: number): void {
    const s = this.#seq('reserve', seqId);
    if (s.pending > 0) throw new Error(`${name}.reserve: sequence ${seqId} already has ${s.pending} reserved tokens not yet written in every layer`);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 2 ** 30) throw new RangeError(`${name}.reserve: 'n' must be a non-negative integer, not ${describe(n)}`);
    if (n === 0) return;
    const need = this.#needed(s, n);
    if (need > this.#free.length) {
      throw new RangeError(`${name}.reserve: sequence ${seqId} needs ${need} more blocks for ${n} tokens, the pool has ${this.#free.length} free of ${this.numBlocks}`);
    }
    if (s.length % this.blockSize !== 0 && this.#refs[s.blocks.at(-1)!]! > 1) {
      const old = s.blocks.at(-1)!, fresh = this.#free.pop()!;
      this.#refs[fresh] = 1;
      const pairs = Int32Array.of(old, fresh);
      for (let l = 0; l < this.layers; l++) {
        native().kvCopyBlocks(this.k[l]!.handle, pairs);
        native().kvCopyBlocks(this.v[l]!.handle, pairs);
      }
      this.#unref(old);
      s.blocks[s.blocks.length - 1] = fresh;
    }
    while (s.blocks.length * this.blockSize < s.length + n) {
      const b = this.#free.pop()!;
      this.#refs[b] = 1;
      s.blocks.push(b);
    }
    s.slots = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const pos = s.length + i;
      s.slots[i] = s.blocks[Math.floor(pos / this.blockSize)]! * this.blockSize + (pos % this.blockSize);
    }
    s.pending = n;
    s.written = new Array<boolean>(this.layers).fill(false);
  }

  /**
   * Fills the reserved slots of one layer: `k, v: (n, kvHeads, headDim)`, the rows of each listed sequence in order
   * (each sequence's n is its reservation). A sequence's length counts its tokens once every layer is written.
   */
  write(seqIds: number | readonly number[], layer: number, k: Tensor, v: Tensor): void {
    const op = `${name}.write`;
    const ids = typeof seqIds === 'number' ? [seqIds] : seqIds;
    if (!Array.isArray(ids)) throw new TypeError(`${op}: 'seqIds' must be an id or an array of ids`);
    const seqs = ids.map((id) => this.#seq('write', id));
    if (new Set(ids).size !== ids.length) throw new RangeError(`${op}: 'seqIds' lists a sequence twice`);
    if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer >= this.layers) {
      throw new RangeError(`${op}: 'layer' must be an integer in [0, ${this.layers}), not ${describe(layer)}`);
    }
    checkTensor(k, op, 'k');
    checkTensor(v, op, 'v');
    let n = 0;
    for (const [i, s] of seqs.entries()) {
      if (s.pending === 0) throw new Error(`${op}: sequence ${ids[i]} has no reserved tokens (call reserve first)`);
      if (s.written[layer]) throw new Error(`${op}: layer ${layer} of sequence ${ids[i]} is already written for this reservation`);
      n += s.pending;
    }
    const shape = [n, this.kvHeads, this.headDim];
    for (const [arg, t] of [['k', k], ['v', v]] as const) {
      if (t.ndim !== 3 || t.shape.some((d, i) => d !== shape[i])) throw new RangeError(`${op}: '${arg}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      if (t.dtype !== this.dtype) throw new TypeError(`${op}: '${arg}' is ${t.dtype}, the cache holds ${this.dtype}`);
      if (t.device !== this.device) throw new TypeError(`${op}: '${arg}' is on ${t.device}, the cache is on ${this.device}`);
    }
    const slots = seqs.length === 1 ? seqs[0]!.slots : new Int32Array(n);
    if (seqs.length > 1) {
      let at = 0;
      for (const s of seqs) {
        slots.set(s.slots, at);
        at += s.pending;
      }
    }
    native().kvWrite(this.k[layer]!.handle, this.v[layer]!.handle, k.handle, v.handle, slots);
    for (const s of seqs) {
      s.written[layer] = true;
      if (s.written.every(Boolean)) {
        s.length += s.pending;
        s.pending = 0;
        s.slots = new Int32Array(0);
        s.written = [];
      }
    }
  }

  /**
   * Block tables of the listed sequences: (batch, stride) block ids, and each sequence's token count. Reserved
   * tokens count once `layer`'s slots are written (a layer reads its own new keys before the later layers write).
   */
  tables(seqIds: readonly number[], layer?: number): { blockTables: Int32Array; stride: number; contextLens: Int32Array } {
    const seqs = seqIds.map((id) => this.#seq('tables', id));
    const lens = Int32Array.from(seqs, (s) => s.length + (layer !== undefined && s.pending > 0 && s.written[layer] ? s.pending : 0));
    const stride = Math.max(1, ...seqs.map((s) => s.blocks.length));
    const table = new Int32Array(seqs.length * stride);
    seqs.forEach((s, b) => table.set(s.blocks, b * stride));
    return { blockTables: table, stride, contextLens: lens };
  }

  /** Releases the pools; the cache cannot be used afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of [...this.k, ...this.v]) t.dispose();
    this.#seqs.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface PagedAttentionOptions {
  /** Query rows per sequence as prefix sums (B + 1 entries); default one row per sequence (decode). */
  cuSeqlensQ?: Int32Array | readonly number[];
  /** Default true, aligned bottom-right: query i of a sequence sees keys j <= i + lenK - lenQ. */
  causal?: boolean;
  /** Default 1/sqrt(headDim). */
  scale?: number;
  /** Keys per partition (a multiple of the block size); chosen from the batch and the machine when omitted. */
  splitSize?: number;
  out?: Tensor;
}

/**
 * The partition size used when `splitSize` is omitted: one partition when the batch alone gives every core (or SM)
 * enough work items, else enough partitions of at least 256 tokens to do so. `tensorCores`: the CUDA call runs the
 * tensor-core kernel (bf16/f16, head dim a multiple of 8 up to 256), whose blocks stream four tiles at once.
 */
const lanesOf = new Map<string, number>();
export function defaultSplitSize(items: number, maxContext: number, blockSize: number, device: Device, tensorCores = false): number {
  const key = `${device}${tensorCores ? ':tc' : ''}`;
  let lanes = lanesOf.get(key);
  if (lanes === undefined) {
    const i = info();
    const sms = i.cuda.devices[0]?.smCount ?? 100;
    // CUDA, SIMT kernel: three blocks are resident per SM; about eight waves of them keep the last wave's idle tail
    // small next to the time each block spends streaming its partition. Tensor-core kernel: about one block per SM
    // (its four warps each keep their own copies in flight); measured on an H100 (132 SMs) over partitions of 128 to
    // 32768 keys, the best decode sizes gave 128 to 256 blocks at every batch from 1 to 64 (bench/results/
    // gpu-h100-2026-11-26.md).
    lanes = device === 'cuda' ? (tensorCores ? sms : 24 * sms) : 4 * i.cpu.threads;
    lanesOf.set(key, lanes);
  }
  // CUDA rounds down (no partly filled extra wave); the CPU rounds up (threads take items as they free up).
  const perItem = lanes / Math.max(1, items);
  const splits = Math.max(1, Math.min(device === 'cuda' ? Math.floor(perItem) : Math.ceil(perItem), Math.floor(maxContext / 256)));
  const size = Math.ceil(Math.max(1, maxContext) / splits);
  return Math.ceil(size / blockSize) * blockSize;
}

/**
 * Attention of q — the last n already-written tokens of each listed sequence, packed by `cuSeqlensQ` — over each
 * sequence's cached keys and values in `layer`. q: (totalQ, Hq, headDim) in the cache's dtype and device, Hq a
 * multiple of the cache's kvHeads. Returns (totalQ, Hq, headDim).
 */
export function pagedAttention(q: Tensor, cache: PagedKVCache, layer: number, seqIds: readonly number[], options?: PagedAttentionOptions): Tensor {
  const op = 'ops.pagedAttention';
  const opts = checkOptions(op, options);
  checkTensor(q, op, 'q');
  if (!(cache instanceof PagedKVCache)) throw new TypeError(`${op}: argument 'cache' must be a PagedKVCache, not ${describe(cache)}`);
  if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer >= cache.layers) {
    throw new RangeError(`${op}: argument 'layer' must be an integer in [0, ${cache.layers}), not ${describe(layer)}`);
  }
  if (!Array.isArray(seqIds) || seqIds.length === 0) throw new TypeError(`${op}: argument 'seqIds' must be a non-empty array of sequence ids`);
  if (q.ndim !== 3 || q.shape[2] !== cache.headDim) throw new RangeError(`${op}: argument 'q' has shape [${q.shape.join(', ')}], expected (totalQ, headsQ, ${cache.headDim})`);
  if (q.dtype !== cache.dtype) throw new TypeError(`${op}: argument 'q' is ${q.dtype}, the cache holds ${cache.dtype}`);
  if (q.device !== cache.device) throw new TypeError(`${op}: argument 'q' is on ${q.device}, the cache is on ${cache.device}`);
  const B = seqIds.length;
  let cu: Int32Array;
  if (opts.cuSeqlensQ === undefined) {
    cu = new Int32Array(B + 1);
    for (let i = 0; i <= B; i++) cu[i] = i;
  } else {
    const given = opts.cuSeqlensQ as unknown;
    if (!(given instanceof Int32Array) && !Array.isArray(given)) throw new TypeError(`${op}: option 'cuSeqlensQ' must be an Int32Array or an array of integers`);
    if (Array.isArray(given) && !given.every((x) => Number.isInteger(x) && x >= -(2 ** 31) && x < 2 ** 31)) throw new TypeError(`${op}: option 'cuSeqlensQ' must hold 32-bit integers`);
    cu = Int32Array.from(given as ArrayLike<number>);
  }
  const causal = opts.causal ?? true;
  if (typeof causal !== 'boolean') throw new TypeError(`${op}: option 'causal' must be a boolean`);
  const scale = opts.scale === undefined ? 1 / Math.sqrt(cache.headDim) : checkFinite(op, 'scale', opts.scale);
  const { blockTables, stride, contextLens } = cache.tables(seqIds, layer);
  let maxContext = 0;
  for (const n of contextLens) maxContext = Math.max(maxContext, n);
  let split: number;
  if (opts.splitSize === undefined) {
    let maxQ = 0;
    for (let b = 0; b < B; b++) maxQ = Math.max(maxQ, (cu[b + 1] ?? 0) - (cu[b] ?? 0));
    // Work items per sequence and query tile of 16: one per kv head on CUDA; on the CPU one per group of kv heads
    // holding up to 64 query rows (every head of a decode step in one item).
    const headsQ = q.shape[1]!;
    const perTile = cache.device === 'cuda' ? cache.kvHeads : Math.min(cache.kvHeads, Math.ceil((Math.min(16, Math.max(1, maxQ)) * headsQ) / 64));
    const tensorCores = cache.device === 'cuda' && (q.dtype === 'bf16' || q.dtype === 'f16') && cache.headDim % 8 === 0 && cache.headDim <= 256 && process.env.QWENLONG_PAGED_KERNEL !== 'tiled';
    split = defaultSplitSize(B * perTile * Math.max(1, Math.ceil(maxQ / 16)), maxContext, cache.blockSize, cache.device, tensorCores);
  } else {
    split = checkFinite(op, 'splitSize', opts.splitSize);
  }
  const out = checkOut(op, 'out', opts.out, q.shape, q.dtype, q.device);
  const o = native().pagedAttention(q.handle, cache.k[layer]!.handle, cache.v[layer]!.handle, blockTables, stride, contextLens, cu, causal, scale, split, out?.handle ?? null);
  return out ?? outputTensor(o, q.shape, q.dtype, q.device);
}
