/**
 * Model fusion by SCE ("Select, Calculate, Erase", FuseChat, arXiv 2408.07990), the merge QwenLong-L1.5 uses to
 * fuse its memory-agent RL expert with the single-pass RL-Stage-3 model before Stage-4.
 *
 * For every parameter tensor, with base θ_b and K models θ_k of the same architecture:
 *   δ_k = θ_k − θ_b                                               (task vectors, float64)
 *   Select:    only when selectTopK < 1 and K ≥ 2. Per element, the population variance of δ across the K models.
 *              Of the n' elements whose variance is not 0, the floor(n'·selectTopK) with the highest variance are
 *              kept; every other element is zeroed in every δ_k. Ties at the cut are taken in element order.
 *   Calculate: one weight per model per tensor, w_k = Σ δ_k² / Σ_j Σ δ_j² (over the selected task vectors);
 *              uniform 1/K when every δ is 0.
 *   Erase:     per element, the consensus sign is the sign of the UNWEIGHTED sum Σ_k δ_k (a sum of exactly 0
 *              counts as positive); m_k = 1 where sign(δ_k) equals it, else 0 (so a δ_k of 0 never counts).
 *   Merge:     θ = θ_b + Σ_k w_k·m_k·δ_k / Σ_k w_k·m_k, and θ_b where no model survives.
 *
 * These choices follow mergekit's `sce` method (mergekit/merge_methods/sce.py): unbiased=False variance, the top-k
 * taken among non-zero variances with k = int(count · select_topk), the erase mask from TIES's "sum" consensus
 * over the unweighted task vectors, the mean-square weights, and the division by the surviving weights (so where
 * only one model survives, its whole δ is applied). Two deliberate differences from mergekit, both at degenerate
 * edges:
 *   - mergekit treats a weight sum below 1e-6 (and, in later versions, a divisor below 1e-6) as zero; here only an
 *     exact zero is, so models whose deltas are tiny (small RL learning rates) are weighted like any others.
 *   - K = 1: mergekit's selection would see zero variance everywhere and, with select_topk < 1, return the base.
 *     Here selection is skipped for a single model (there is no disagreement to rank), the weight is 1, erase keeps
 *     every non-zero δ, and the result is the model itself (θ_b + (θ_1 − θ_b) in float64, rounded to float32: the
 *     model's own values unless a weight and its base value are some 2^29 apart in magnitude).
 * For K ≥ 2, a tensor whose variance is 0 everywhere (the models agree exactly) keeps nothing when selectTopK < 1
 * and comes out as the base, as in mergekit.
 *
 * Host-side code on Float32Arrays: one tensor at a time, float64 accumulation per element, float32 output.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ModelConfig } from './config.js';
import { readHfFolder, writeHfFolder } from './hf.js';
import { type HostWeights, readLlama2c } from './llama2c.js';

/** What SCE did to one tensor. */
export interface SceTensorStats {
  /** The normalized weight w_k of each model for this tensor (Σ = 1). */
  weights: number[];
  /** Elements kept by Select (all of them when no selection ran). */
  selected: number;
  /** Elements in the tensor. */
  numel: number;
  /** Per model: elements whose δ survived Erase (and Select) and entered the merge. */
  kept: number[];
}

export interface SceOptions {
  /** Fraction in (0, 1] of the elements (highest variance across the models first) that Select keeps; 1 = all. */
  selectTopK?: number;
  /** Names for the models in error messages (e.g. their paths), in the order of `models`. */
  labels?: string[];
  /** Called after each tensor is merged. */
  onTensor?: (name: string, stats: SceTensorStats) => void;
}

/** Config fields that must agree for two checkpoints' weights to be merged element by element. */
const MUST_MATCH = ['architecture', 'vocabSize', 'dim', 'hiddenDim', 'layers', 'heads', 'kvHeads', 'headDim', 'tiedEmbeddings', 'qkNorm', 'qkvBias', 'ropeConvention', 'ropeTheta'] as const satisfies readonly (keyof ModelConfig)[];

function checkTopK(v: unknown, what: string): number {
  if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw new RangeError(`${what}: selectTopK must be a number in (0, 1], not ${String(v)}`);
  return v;
}

function modelLabel(i: number, labels?: string[]): string {
  return labels?.[i] !== undefined ? `model ${i} (${labels[i]})` : `model ${i}`;
}

/** Same config (the fields that shape the weights), the same tensor names and shapes; else a RangeError naming the model and tensor. */
function checkCompatible(base: HostWeights, models: HostWeights[], what: string, labels?: string[]): void {
  for (const [name, t] of base.tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) throw new RangeError(`${what}: base tensor ${name} holds ${t.data.length} values, its shape [${t.shape.join(', ')}] needs ${numel}`);
  }
  models.forEach((m, i) => {
    const who = modelLabel(i, labels);
    for (const k of MUST_MATCH) {
      if (m.config[k] !== base.config[k]) throw new RangeError(`${what}: ${who} has config ${k} = ${String(m.config[k])}, the base has ${String(base.config[k])}`);
    }
    for (const [name, t] of base.tensors) {
      const u = m.tensors.get(name);
      if (!u) throw new RangeError(`${what}: ${who} has no tensor ${name}`);
      if (u.shape.length !== t.shape.length || u.shape.some((d, j) => d !== t.shape[j])) throw new RangeError(`${what}: ${who} tensor ${name} has shape [${u.shape.join(', ')}], the base has [${t.shape.join(', ')}]`);
      if (u.data.length !== t.data.length) throw new RangeError(`${what}: ${who} tensor ${name} holds ${u.data.length} values, the base's holds ${t.data.length}`);
    }
    for (const name of m.tensors.keys()) if (!base.tensors.has(name)) throw new RangeError(`${what}: ${who} has a tensor ${name} the base does not have`);
  });
}

function checkFinite(data: Float32Array, what: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new RangeError(`${what} has a non-finite value (${data[i]}) at element ${i}`);
  }
}

const littleEndian = endianness() === 'LE';

/**
 * The k-th largest value (1 ≤ k ≤ length) of non-negative doubles, exactly, without sorting or copying: a radix
 * select over the IEEE bit patterns, 16 bits a pass (for non-negative doubles the unsigned order of the bit
 * pattern is the numeric order).
 */
function kthLargestNonNegative(values: Float64Array, k: number): number {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
  const hiAt = littleEndian ? 1 : 0, loAt = 1 - hiAt;
  const hist = new Float64Array(65536);
  let remaining = k, hi = 0, lo = 0;
  // Four digits, most significant first: the high word's top and bottom halves, then the low word's.
  for (let pass = 0; pass < 4; pass++) {
    hist.fill(0);
    for (let i = 0; i < values.length; i++) {
      const h = words[2 * i + hiAt]!, l = words[2 * i + loAt]!;
      let digit: number;
      if (pass === 0) digit = h >>> 16;
      else if (pass === 1) {
        if (h >>> 16 !== hi >>> 16) continue;
        digit = h & 0xffff;
      } else if (pass === 2) {
        if (h !== hi) continue;
        digit = l >>> 16;
      } else {
        if (h !== hi || l >>> 16 !== lo >>> 16) continue;
        digit = l & 0xffff;
      }
      hist[digit]!++;
    }
    let d = 65535;
    for (; d > 0; d--) {
      if (hist[d]! >= remaining) break;
      remaining -= hist[d]!;
    }
    if (pass === 0) hi = (d << 16) >>> 0;
    else if (pass === 1) hi = (hi | d) >>> 0;
    else if (pass === 2) lo = (d << 16) >>> 0;
    else lo = (lo | d) >>> 0;
  }
  const out = new Float64Array(1);
  const ow = new Uint32Array(out.buffer);
  ow[hiAt] = hi;
  ow[loAt] = lo;
  return out[0]!;
}

/**
 * Select: a mask (1 = kept) of the floor(n'·topK) elements with the highest variance of δ across the models, n'
 * the number of elements whose variance is not 0. Ties at the cut go to the lower element index.
 */
function selectMask(base: Float32Array, models: Float32Array[], topK: number): { mask: Uint8Array; selected: number } {
  const n = base.length, K = models.length;
  const variance = new Float64Array(n);
  let nonzero = 0;
  for (let i = 0; i < n; i++) {
    const b = base[i]!;
    let mean = 0;
    for (let k = 0; k < K; k++) mean += models[k]![i]! - b;
    mean /= K;
    let v = 0;
    for (let k = 0; k < K; k++) {
      const e = models[k]![i]! - b - mean;
      v += e * e;
    }
    v /= K;
    variance[i] = v;
    if (v !== 0) nonzero++;
  }
  // mergekit: k = int(count_nonzero(var) * select_topk)
  const want = Math.floor(nonzero * topK);
  const mask = new Uint8Array(n);
  if (want === 0) return { mask, selected: 0 };
  const cut = kthLargestNonNegative(variance, want);
  let selected = 0;
  for (let i = 0; i < n; i++) {
    if (variance[i]! > cut) {
      mask[i] = 1;
      selected++;
    }
  }
  for (let i = 0; i < n && selected < want; i++) {
    if (variance[i] === cut) {
      mask[i] = 1;
      selected++;
    }
  }
  return { mask, selected };
}

/** SCE on one tensor's values (see the file comment); checks every input is finite. */
export function sceTensor(name: string, base: Float32Array, models: Float32Array[], opts: { selectTopK?: number; labels?: string[] } = {}): { data: Float32Array; stats: SceTensorStats } {
  const topK = checkTopK(opts.selectTopK ?? 1, 'sceTensor');
  const K = models.length, n = base.length;
  if (K === 0) throw new RangeError('sceTensor: at least one model to merge is needed');
  checkFinite(base, `base tensor ${name}`);
  models.forEach((m, k) => {
    if (m.length !== n) throw new RangeError(`${modelLabel(k, opts.labels)} tensor ${name} holds ${m.length} values, the base's holds ${n}`);
    checkFinite(m, `${modelLabel(k, opts.labels)} tensor ${name}`);
  });

  // Select (skipped for a single model: there is no variance to rank).
  let mask: Uint8Array | undefined;
  let selected = n;
  if (K >= 2 && topK < 1) ({ mask, selected } = selectMask(base, models, topK));

  // Calculate: w_k ∝ Σ δ_k² over the selected elements (mergekit's mean of squares; the 1/n cancels).
  const sq = new Float64Array(K);
  for (let i = 0; i < n; i++) {
    if (mask && mask[i] === 0) continue;
    const b = base[i]!;
    for (let k = 0; k < K; k++) {
      const d = models[k]![i]! - b;
      sq[k] = sq[k]! + d * d;
    }
  }
  const total = sq.reduce((a, b) => a + b, 0);
  const weights = Array.from(sq, (s) => (total > 0 ? s / total : 1 / K));

  // Erase and merge.
  const out = new Float32Array(n);
  const kept = new Array<number>(K).fill(0);
  const delta = new Float64Array(K);
  for (let i = 0; i < n; i++) {
    const b = base[i]!;
    if (mask && mask[i] === 0) {
      out[i] = b;
      continue;
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += delta[k] = models[k]![i]! - b;
    const positive = sum >= 0;
    let num = 0, den = 0;
    for (let k = 0; k < K; k++) {
      const d = delta[k]!;
      if (positive ? d > 0 : d < 0) {
        num += weights[k]! * d;
        den += weights[k]!;
        kept[k] = kept[k]! + 1;
      }
    }
    out[i] = den > 0 ? b + num / den : b;
  }
  return { data: out, stats: { weights, selected, numel: n, kept } };
}

function merge(base: HostWeights, models: HostWeights[], opts: SceOptions, consume: boolean): HostWeights {
  if (!Array.isArray(models) || models.length === 0) throw new RangeError('mergeSce: at least one model to merge is needed');
  const selectTopK = checkTopK(opts.selectTopK ?? 1, 'mergeSce');
  checkCompatible(base, models, 'mergeSce', opts.labels);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of [...base.tensors]) {
    let r: ReturnType<typeof sceTensor>;
    try {
      r = sceTensor(name, t.data, models.map((m) => m.tensors.get(name)!.data), { selectTopK, labels: opts.labels });
    } catch (e) {
      throw e instanceof RangeError ? new RangeError(`mergeSce: ${e.message}`) : e;
    }
    tensors.set(name, { shape: [...t.shape], data: r.data });
    if (consume) {
      // Let the inputs of a merged tensor go, so peak memory stays near that of the inputs.
      base.tensors.delete(name);
      for (const m of models) m.tensors.delete(name);
    }
    opts.onTensor?.(name, r.stats);
  }
  return { config: { ...base.config, ...(base.config.eosIds ? { eosIds: [...base.config.eosIds] } : {}) }, tensors };
}

/**
 * SCE merge of `models` onto `base` (see the file comment). Returns new weights with the base's config; the inputs
 * are not modified. Throws a RangeError naming the model and tensor when configs, tensor names or shapes differ,
 * when any value is NaN or infinite, or when selectTopK is outside (0, 1].
 */
export function mergeSce(base: HostWeights, models: HostWeights[], opts: SceOptions = {}): HostWeights {
  return merge(base, models, opts, false);
}

/** Tokenizer and generation files copied from the base folder into a merged one, when present. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'words.json', 'tokenizer.model', 'vocab.json', 'merges.txt',
  'added_tokens.json', 'chat_template.jinja', 'chat_template.json', 'generation_config.json',
];

/** Copies the tokenizer files (TOKENIZER_FILES) of model folder `from` into folder `to`; returns the names copied. */
export function copyTokenizerFiles(from: string, to: string): string[] {
  const copied: string[] = [];
  if (!existsSync(from) || !statSync(from).isDirectory()) return copied;
  for (const f of TOKENIZER_FILES) {
    const src = join(from, f);
    if (existsSync(src) && statSync(src).isFile()) {
      cpSync(src, join(to, f));
      copied.push(f);
    }
  }
  return copied;
}

function readWeights(path: string, what: string): HostWeights {
  if (!existsSync(path)) throw new Error(`${what}: no model at ${path}`);
  return statSync(path).isDirectory() ? readHfFolder(path) : readLlama2c(path);
}

export interface MergeFoldersOptions {
  method: 'sce';
  /** The base (pivot) model: a Hugging Face folder or a llama2.c .bin file. */
  base: string;
  /** The models to merge onto it (same architecture): folders or .bin files. */
  models: string[];
  /** The output folder; must not exist yet. */
  out: string;
  selectTopK?: number;
  onTensor?: (name: string, stats: SceTensorStats) => void;
}

export interface MergeFoldersResult {
  out: string;
  tensors: number;
  parameters: number;
  /** The tokenizer files copied from the base folder. */
  copied: string[];
}

/**
 * Reads the base and the models, merges them with SCE and writes a Hugging Face folder at `out` (config.json,
 * model.safetensors in f32, and the base folder's tokenizer files). Everything is written into a fresh folder
 * beside it (`out.tmp-XXXXXX`) and renamed to `out` at the end, so `out` is either absent or complete.
 */
export function mergeFolders(opts: MergeFoldersOptions): MergeFoldersResult {
  if (opts.method !== 'sce') throw new RangeError(`mergeFolders: method '${String(opts.method)}' is not supported (sce is)`);
  if (!Array.isArray(opts.models) || opts.models.length === 0) throw new RangeError('mergeFolders: at least one model to merge is needed');
  const selectTopK = checkTopK(opts.selectTopK ?? 1, 'mergeFolders');
  if (typeof opts.out !== 'string' || opts.out === '') throw new RangeError('mergeFolders: out must be a path');
  if (existsSync(opts.out)) throw new Error(`mergeFolders: ${opts.out} already exists; remove it or choose another output`);
  if (!existsSync(opts.base)) throw new Error(`mergeFolders: no base model at ${opts.base}`);
  opts.models.forEach((p, i) => {
    if (!existsSync(p)) throw new Error(`mergeFolders: no model at ${p} (model ${i})`);
  });

  const base = readWeights(opts.base, 'mergeFolders');
  const models = opts.models.map((p) => readWeights(p, 'mergeFolders'));
  let parameters = 0;
  for (const t of base.tensors.values()) parameters += t.data.length;
  const merged = merge(base, models, { selectTopK, labels: opts.models, onTensor: opts.onTensor }, true);

  // A fresh folder of our own beside `out` (never a fixed name: a folder called out + '.tmp' may be an input, or
  // anything else of the user's).
  mkdirSync(dirname(resolve(opts.out)), { recursive: true });
  const tmp = mkdtempSync(`${resolve(opts.out)}.tmp-`);
  let copied: string[] = [];
  try {
    writeHfFolder(tmp, merged);
    copied = copyTokenizerFiles(opts.base, tmp);
    renameSync(tmp, opts.out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { out: opts.out, tensors: merged.tensors.size, parameters, copied };
}
