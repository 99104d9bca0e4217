/**
 * Loads the native addon once. The binary is found by node-gyp-build: a local build in `build/Release` first,
 * then a prebuilt `prebuilds/<platform>-<arch>/qwenlong.napi.node`. `QWENLONG_ADDON=/path/to/qwenlong.node`
 * loads that file instead (sanitizer builds, side-by-side comparisons).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The native half of a Tensor: an id into the addon's table of live tensors (a number, not a wrapped object: see
 * binding/tensor_handle.h). Only ids the addon handed out are accepted; a disposed one is refused by name.
 */
export type NativeTensorHandle = number & { readonly __nativeTensor: unique symbol };

export interface NativeCudaStatus {
  compiled: boolean;
  archs: string;
  available: boolean;
  reason: string;
  runtimeVersion: number;
  driverVersion: number;
  devices: { name: string; memoryBytes: number; smCount: number; computeCapability: string }[];
}

/** The functions the addon exports. Every one validates its arguments itself. */
export interface NativeAddon {
  empty(shape: number[], dtype: string, device: string, zero: boolean): NativeTensorHandle;
  fromArray(data: ArrayBufferView, shape: number[], dtype: string, device: string): NativeTensorHandle;
  /**
   * Frees a live tensor; anything else (an id disposed already) is left alone. collected: the finalization registry
   * frees a tensor the collector found unreachable.
   */
  tensorDispose(t: NativeTensorHandle, collected?: boolean): void;
  tensorRead<T extends ArrayBufferView>(t: NativeTensorHandle, out: T): T;
  tensorReadAsync<T extends ArrayBufferView>(t: NativeTensorHandle, out: T): Promise<T>;
  tensorCopyTo(t: NativeTensorHandle, device: string): NativeTensorHandle;
  tensorReshape(t: NativeTensorHandle, shape: number[]): NativeTensorHandle;
  /** Live tensor ids in this thread (tests: nothing holds a slot it should not). */
  liveTensors(): number;
  info(): { cuda: NativeCudaStatus; cpu: { isa: string; supportedIsas: string[]; bf16Dot: boolean; threads: number } };
  setIsa(isa: string): void;
  setThreads(threads: number): void;
  memoryStats(device: string): { inUse: number; cached: number; peak: number };
  synchronize(): void;
  profilerStart(): void;
  profilerStop(): { op: string; device: 'cpu' | 'cuda'; calls: number; hostMs: number; deviceMs: number }[];
  emptyCache(): void;
  noop(): void;
  kvWrite(poolK: NativeTensorHandle, poolV: NativeTensorHandle, k: NativeTensorHandle, v: NativeTensorHandle, slots: Int32Array): void;
  kvCopyBlocks(pool: NativeTensorHandle, pairs: Int32Array): void;
  /** Benchmark probe: the sum of an f32 CPU tensor, one read-only pass by every pool thread. */
  readStream(t: NativeTensorHandle): number;
  pagedAttention(
    q: NativeTensorHandle, poolK: NativeTensorHandle, poolV: NativeTensorHandle, blockTables: Int32Array, tableStride: number,
    contextLens: Int32Array, cuSeqlensQ: Int32Array, causal: boolean, scale: number, splitSize: number, out: NativeTensorHandle | null,
  ): NativeTensorHandle;
  memcpy(dst: NativeTensorHandle, src: NativeTensorHandle): void;
  add(a: NativeTensorHandle, b: NativeTensorHandle | null, out: NativeTensorHandle | null, alpha: number, beta: number): NativeTensorHandle;
  cast(x: NativeTensorHandle, out: NativeTensorHandle | null, dtype: string): NativeTensorHandle;
  sampleRows(logits: Float32Array, vocab: number, rows: Int32Array, temperature: number, uniforms: Float64Array, tokens: Int32Array, logprobs: Float64Array, entropies: Float64Array): void;
  rmsNorm(x: H, w: H, eps: number, y: H | null, rrms: H | null): [H, H];
  rmsNormBackward(dy: H, x: H, w: H, rrms: H, dx: H | null, dw: H | null, wantDw: boolean, accumulateDw: boolean): [H, H | null];
  swiglu(gate: H, up: H, out: H | null): H;
  swigluBackward(dout: H, gate: H, up: H, dgate: H | null, dup: H | null): [H, H];
  rope(x: H, positions: H | null, offset: number, theta: number, rotaryDim: number, interleaved: boolean, inverse: boolean, out: H | null): H;
  embedding(ids: H, table: H, out: H | null): H;
  embeddingBackward(dout: H, ids: H, vocab: number, dtable: H | null, accumulate: boolean): H;
  adamw(params: H, grads: H, m: H, v: H, paramsCopy: H | null, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, gradScale: number): void;
  gradNorm(tensors: H[], clip: boolean, maxNorm?: number): H;
  policyLoss(hidden: H, weight: H, targets: H, coef: H, advantages: H, oldLogp: H | null, mask: H, temperature: number, clipLow: number, clipHigh: number, dualClip: number, workspaceBytes: number, wantGrads: boolean, dHidden: H | null, dWeight: H | null): [H, H, H, H, H | null, H | null];
  matmul(
    a: NativeTensorHandle,
    b: NativeTensorHandle,
    out: NativeTensorHandle | null,
    transA: boolean,
    transB: boolean,
    alpha: number,
    beta: number,
    outDtype: string | null,
  ): NativeTensorHandle;
  /**
   * Benchmarks: GFLOP/s of the multiply-add loop of the GEMM kernel for operands of `dtype` (default f32: the current
   * ISA's FMA; bf16: the AVX512-BF16 dot product where the CPU has it) on every CPU thread (0 for scalar).
   */
  fmaPeak(seconds: number, dtype?: 'f32' | 'bf16' | 'f16'): number;
  attention(q: H, k: H, v: H, cuSeqlensQ: Int32Array | H | null, cuSeqlensK: Int32Array | H | null, causal: boolean, scale: number, out: H | null, lse: H | null): [H, H];
  attentionBackward(dOut: H, q: H, k: H, v: H, out: H, lse: H, cuSeqlensQ: Int32Array | H | null, cuSeqlensK: Int32Array | H | null, causal: boolean, scale: number,
    dq: H | null, dk: H | null, dv: H | null): [H, H, H];
}

type H = NativeTensorHandle;

/** The package root: the nearest folder above this file whose package.json is qwenlong's. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'qwenlong') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('qwenlong: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

let loaded: { addon: NativeAddon; path: string } | undefined;

/** The addon and the file it came from; throws with install advice when no binary matches. */
export function loadAddon(): { addon: NativeAddon; path: string } {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const override = process.env.QWENLONG_ADDON;
  if (override) {
    // a relative path means one from the working directory, as on a command line (require alone would resolve it
    // from this file's folder)
    const path = resolve(override);
    if (!existsSync(path)) throw new Error(`QWENLONG_ADDON=${override}: no file at ${path}`);
    loaded = { addon: require(path) as NativeAddon, path };
    applyEnvironment(loaded.addon);
    return loaded;
  }
  const root = packageRoot();
  const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
  let path: string;
  try {
    path = nodeGypBuild.resolve(root);
  } catch (err) {
    throw new Error(
      `qwenlong: no native binary for ${process.platform}-${process.arch} (node ${process.versions.node}). ` +
        'Build it from source with `npm rebuild qwenlong` (needs cmake >= 3.24 and a C++17 compiler; nvcc adds the CUDA backend). ' +
        `(${(err as Error).message})`,
    );
  }
  loaded = { addon: require(path) as NativeAddon, path };
  applyEnvironment(loaded.addon);
  return loaded;
}

// QWENLONG_ISA and QWENLONG_THREADS are read natively at start; here a bad value becomes a clear error.
function applyEnvironment(addon: NativeAddon): void {
  const isa = process.env.QWENLONG_ISA;
  if (isa) {
    try {
      addon.setIsa(isa);
    } catch (err) {
      throw new RangeError(`QWENLONG_ISA=${isa}: ${(err as Error).message}`);
    }
  }
  const threads = process.env.QWENLONG_THREADS;
  if (threads && !/^[1-9][0-9]*$/.test(threads.trim())) {
    throw new RangeError(`QWENLONG_THREADS must be a positive integer, not '${threads}'`);
  }
}

/** The addon (loaded on first use). */
export function native(): NativeAddon {
  return loadAddon().addon;
}
