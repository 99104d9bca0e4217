/**
 * The policy model: a decoder of the Llama/Qwen family run layer by layer on the native ops (no autograd).
 * Inference today: `forward` (full recompute over packed sequences) and `generate` (batched prefill, then decode,
 * through the paged KV cache). Training (backward, AdamW) is the next step of this module.
 */
import { Tensor } from '../native/tensor.js';
import { type Device, defaultDevice, parseDevice } from '../native/device.js';
import * as ops from '../ops/index.js';
import { PagedKVCache } from '../ops/kv_cache.js';
import { Random } from '../rl/random.js';
import type { ModelConfig } from './config.js';
import type { HostWeights } from './llama2c.js';

export interface GenerateOptions {
  /** New tokens per sequence at most (default 256; never past the model's maxSeqLen). */
  maxTokens?: number;
  /** 0 is argmax (default 1). */
  temperature?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP (default 1: off). */
  topP?: number;
  /** Keep the k most likely tokens (default 0: off). */
  topK?: number;
  seed?: number;
  /** Token ids that end a sequence (default the model's EOS ids; BOS too for llama2.c models, as run.c stops). */
  stopIds?: readonly number[];
  /** KV-cache block size (default 16). */
  blockSize?: number;
}

export interface Generation {
  tokens: number[];
  /** log p(token) under the tempered distribution (temperature 0: the untempered one), before top-k/top-p. */
  logprobs: number[];
  /** Entropy (nats) of each step's tempered full-vocabulary distribution, before top-k/top-p. */
  entropies: number[];
  finishReason: 'stop' | 'length';
}

type Weights = Map<string, Tensor>;

export class CausalLM {
  readonly config: ModelConfig;
  readonly device: Device;
  readonly dtype: 'f32' | 'bf16' | 'f16';
  readonly #w: Weights;
  #disposed = false;

  private constructor(config: ModelConfig, weights: Weights, device: Device, dtype: 'f32' | 'bf16' | 'f16') {
    this.config = config;
    this.#w = weights;
    this.device = device;
    this.dtype = dtype;
  }

  /** Uploads host weights. dtype defaults to f32 on the CPU and bf16 on CUDA. */
  static fromHost(host: HostWeights, opts: { device?: Device; dtype?: 'f32' | 'bf16' | 'f16' } = {}): CausalLM {
    const device = opts.device === undefined ? defaultDevice().device : parseDevice(opts.device, 'CausalLM: device');
    const dtype = opts.dtype ?? (device === 'cuda' ? 'bf16' : 'f32');
    const weights: Weights = new Map();
    try {
      for (const [name, t] of host.tensors) {
        // Norm weights stay f32-compatible with the activations' dtype (rmsNorm takes w in x's dtype).
        weights.set(name, Tensor.from(t.data, t.shape, { dtype, device }));
      }
    } catch (e) {
      for (const t of weights.values()) t.dispose();
      throw e;
    }
    return new CausalLM(host.config, weights, device, dtype);
  }

  #weight(name: string): Tensor {
    if (this.#disposed) throw new Error('CausalLM: the model was disposed');
    const t = this.#w.get(name);
    if (!t) throw new Error(`CausalLM: missing weight ${name}`);
    return t;
  }

  /** The LM head (V, dim): the embedding table when tied. */
  get lmHead(): Tensor {
    return this.config.tiedEmbeddings ? this.#weight('model.embed_tokens.weight') : this.#weight('lm_head.weight');
  }

  /** The named weights (Hugging Face names). */
  parameters(): Map<string, Tensor> {
    return new Map(this.#w);
  }

  /** y = x Wᵀ for a (T, in) x and an (out, in) W. */
  #linear(x: Tensor, name: string): Tensor {
    return ops.matmul(x, this.#weight(name), { transB: true });
  }

  /**
   * One decoder layer over T packed tokens. `attend(q, k, v)` gets q (T, H, hd) and k, v (T, Hkv, hd) after RoPE
   * and returns the attention output (T, H, hd): full causal attention, or attention over the KV cache.
   */
  #layer(l: number, x: Tensor, positions: Tensor, attend: (q: Tensor, k: Tensor, v: Tensor) => Tensor): Tensor {
    const c = this.config, T = x.shape[0]!, p = `model.layers.${l}.`;
    const tmp: Tensor[] = [];
    const keep = <X extends Tensor>(t: X): X => (tmp.push(t), t);
    try {
      const { y: h, rrms } = ops.rmsNorm(x, this.#weight(`${p}input_layernorm.weight`), { eps: c.rmsEps });
      keep(h);
      keep(rrms);
      const q2 = keep(this.#linear(h, `${p}self_attn.q_proj.weight`));
      const k2 = keep(this.#linear(h, `${p}self_attn.k_proj.weight`));
      const v2 = keep(this.#linear(h, `${p}self_attn.v_proj.weight`));
      const q = keep(q2.reshape([T, c.heads, c.headDim]));
      const k = keep(k2.reshape([T, c.kvHeads, c.headDim]));
      const v = keep(v2.reshape([T, c.kvHeads, c.headDim]));
      const rope = { convention: c.ropeConvention, theta: c.ropeTheta, positions };
      ops.rope(q, { ...rope, out: q });
      ops.rope(k, { ...rope, out: k });
      const att = keep(attend(q, k, v));
      const o = keep(this.#linear(keep(att.reshape([T, c.heads * c.headDim])), `${p}self_attn.o_proj.weight`));
      const x1 = keep(ops.add(x, o));
      const { y: h2, rrms: r2 } = ops.rmsNorm(x1, this.#weight(`${p}post_attention_layernorm.weight`), { eps: c.rmsEps });
      keep(h2);
      keep(r2);
      const g = keep(this.#linear(h2, `${p}mlp.gate_proj.weight`));
      const u = keep(this.#linear(h2, `${p}mlp.up_proj.weight`));
      const a = keep(ops.swiglu(g, u));
      const d = keep(this.#linear(a, `${p}mlp.down_proj.weight`));
      return ops.add(x1, d);
    } finally {
      for (const t of tmp) t.dispose();
    }
  }

  /** Final norm and LM head on (n, dim) hidden states: logits (n, V) f32. */
  #head(x: Tensor): Tensor {
    const { y, rrms } = ops.rmsNorm(x, this.#weight('model.norm.weight'), { eps: this.config.rmsEps });
    try {
      return ops.matmul(y, this.lmHead, { transB: true, outDtype: 'f32' });
    } finally {
      y.dispose();
      rrms.dispose();
    }
  }

  #embed(ids: Int32Array): Tensor {
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i]! >= 0 && ids[i]! < this.config.vocabSize)) throw new RangeError(`CausalLM: token ids[${i}] = ${ids[i]} is outside [0, ${this.config.vocabSize})`);
    }
    const t = Tensor.from(ids, [ids.length], { dtype: 'i32', device: this.device });
    try {
      return ops.embedding(t, this.#weight('model.embed_tokens.weight'));
    } finally {
      t.dispose();
    }
  }

  /**
   * Logits (T, V) f32 of every position of packed sequences (`cuSeqlens`: B + 1 prefix sums; default one
   * sequence), or the final hidden states (T, dim) before the final norm with `returnHidden`.
   */
  forward(ids: Int32Array | readonly number[], opts: { cuSeqlens?: Int32Array | readonly number[]; returnHidden?: boolean } = {}): Tensor {
    const tokens = Int32Array.from(ids);
    const T = tokens.length;
    if (T === 0) throw new RangeError('CausalLM.forward: no tokens');
    const cu = Int32Array.from(opts.cuSeqlens ?? [0, T]);
    if (cu[0] !== 0 || cu[cu.length - 1] !== T) throw new RangeError(`CausalLM.forward: cuSeqlens must run from 0 to ${T}`);
    const pos = new Int32Array(T);
    for (let b = 0; b + 1 < cu.length; b++) {
      if (cu[b + 1]! < cu[b]!) throw new RangeError('CausalLM.forward: cuSeqlens must be non-decreasing');
      if (cu[b + 1]! - cu[b]! > this.config.maxSeqLen) throw new RangeError(`CausalLM.forward: a sequence of ${cu[b + 1]! - cu[b]!} tokens is longer than the model's ${this.config.maxSeqLen}`);
      for (let t = cu[b]!; t < cu[b + 1]!; t++) pos[t] = t - cu[b]!;
    }
    const positions = Tensor.from(pos, [T], { dtype: 'i32', device: this.device });
    let x = this.#embed(tokens);
    try {
      for (let l = 0; l < this.config.layers; l++) {
        const next = this.#layer(l, x, positions, (q, k, v) => ops.attention(q, k, v, { causal: true, cuSeqlensQ: cu, cuSeqlensK: cu }).out);
        x.dispose();
        x = next;
      }
      if (opts.returnHidden) {
        const h = x;
        x = undefined as unknown as Tensor;
        return h;
      }
      return this.#head(x);
    } finally {
      x?.dispose();
      positions.dispose();
    }
  }

  /**
   * Continues every prompt (token ids): prefill of all prompts together, then one decode step per new token for the
   * sequences still running, through a paged KV cache sized for the longest run.
   */
  generate(prompts: readonly (readonly number[])[], options: GenerateOptions = {}): Generation[] {
    const c = this.config;
    if (!Array.isArray(prompts) || prompts.length === 0) throw new TypeError('CausalLM.generate: prompts must be a non-empty array of token arrays');
    const maxTokens = options.maxTokens ?? 256;
    const temperature = options.temperature ?? 1;
    const topP = options.topP ?? 1, topK = options.topK ?? 0;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new RangeError('CausalLM.generate: maxTokens must be a non-negative integer');
    if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError('CausalLM.generate: temperature must be a finite number >= 0');
    if (!(topP > 0 && topP <= 1)) throw new RangeError('CausalLM.generate: topP must be in (0, 1]');
    if (!Number.isInteger(topK) || topK < 0) throw new RangeError('CausalLM.generate: topK must be a non-negative integer');
    const stop = new Set(options.stopIds ?? [...(c.eosIds ?? []), ...(c.architecture === 'llama' && c.bosId !== undefined ? [c.bosId] : [])]);
    const rng = new Random(options.seed ?? 0);
    const B = prompts.length;
    const limit = prompts.map((p, b) => {
      if (!Array.isArray(p) || p.length === 0) throw new TypeError(`CausalLM.generate: prompts[${b}] must be a non-empty array of token ids`);
      if (p.length > c.maxSeqLen) throw new RangeError(`CausalLM.generate: prompts[${b}] has ${p.length} tokens, the model takes ${c.maxSeqLen}`);
      return Math.min(maxTokens, c.maxSeqLen - p.length);
    });
    const blockSize = options.blockSize ?? 16;
    const numBlocks = prompts.reduce((n, p, b) => n + Math.ceil((p.length + limit[b]!) / blockSize), 0) + 1;
    const cache = new PagedKVCache({ layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, blockSize, numBlocks, dtype: this.dtype, device: this.device });
    const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], entropies: [], finishReason: 'length' as const }));
    try {
      // Prefill: every prompt at once; logits of each prompt's last position.
      const ids = prompts.map((_, b) => b);
      ids.forEach((b) => cache.allocate(b));
      let step = this.#cachedStep(cache, ids, prompts.map((p) => Int32Array.from(p)));
      let running = ids.filter((b) => limit[b]! > 0);
      for (;;) {
        const next: number[] = [];
        const chosen: number[] = [];
        for (const [row, b] of step.ids.entries()) {
          if (!running.includes(b)) continue;
          const pick = sample(step.logits.subarray(row * c.vocabSize, (row + 1) * c.vocabSize), temperature, topK, topP, rng);
          const g = out[b]!;
          g.tokens.push(pick.token);
          g.logprobs.push(pick.logprob);
          g.entropies.push(pick.entropy);
          if (stop.has(pick.token)) g.finishReason = 'stop';
          else if (g.tokens.length < limit[b]!) {
            next.push(b);
            chosen.push(pick.token);
          }
        }
        running = next;
        if (running.length === 0) break;
        step = this.#cachedStep(cache, running, chosen.map((t) => Int32Array.of(t)));
      }
      return out;
    } finally {
      cache.dispose();
    }
  }

  /** Appends tokens[i] to sequence ids[i] of the cache (all layers) and returns the logits of each one's last new token. */
  #cachedStep(cache: PagedKVCache, ids: number[], tokens: Int32Array[]): { ids: number[]; logits: Float32Array } {
    const c = this.config;
    const lens = tokens.map((t) => t.length);
    const cu = new Int32Array(ids.length + 1);
    lens.forEach((n, i) => (cu[i + 1] = cu[i]! + n));
    const T = cu[ids.length]!;
    const all = new Int32Array(T), pos = new Int32Array(T), last = new Int32Array(ids.length);
    ids.forEach((id, i) => {
      all.set(tokens[i]!, cu[i]!);
      const start = cache.length(id);
      for (let t = 0; t < lens[i]!; t++) pos[cu[i]! + t] = start + t;
      last[i] = cu[i + 1]! - 1;
      cache.reserve(id, lens[i]!);
    });
    const positions = Tensor.from(pos, [T], { dtype: 'i32', device: this.device });
    const lastRows = Tensor.from(last, [ids.length], { dtype: 'i32', device: this.device });
    let x = this.#embed(all);
    try {
      for (let l = 0; l < c.layers; l++) {
        const next = this.#layer(l, x, positions, (q, k, v) => {
          cache.write(ids, l, k, v);
          return ops.pagedAttention(q, cache, l, ids, { cuSeqlensQ: cu });
        });
        x.dispose();
        x = next;
      }
      const h = ops.embedding(lastRows, x); // the last new row of each sequence
      try {
        const logits = this.#head(h);
        try {
          return { ids, logits: logits.handle.read(new Float32Array(ids.length * c.vocabSize)) };
        } finally {
          logits.dispose();
        }
      } finally {
        h.dispose();
      }
    } finally {
      x.dispose();
      positions.dispose();
      lastRows.dispose();
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.#w.values()) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * One token from logits: temperature 0 is argmax; otherwise softmax(logits / T), then top-k, then top-p, then a
 * draw. logprob and entropy are of the tempered full distribution (temperature 0: of softmax(logits)).
 */
export function sample(logits: Float32Array, temperature: number, topK: number, topP: number, rng: Random): { token: number; logprob: number; entropy: number } {
  const V = logits.length;
  const inv = temperature > 0 ? 1 / temperature : 1;
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[i]! * inv);
  const p = new Float64Array(V);
  let z = 0;
  for (let i = 0; i < V; i++) z += p[i] = Math.exp(logits[i]! * inv - max);
  let entropy = 0;
  for (let i = 0; i < V; i++) {
    p[i]! /= z;
    if (p[i]! > 0) entropy -= p[i]! * Math.log(p[i]!);
  }
  let token = 0;
  if (temperature === 0) {
    for (let i = 1; i < V; i++) if (logits[i]! > logits[token]!) token = i;
  } else {
    let order = Array.from({ length: V }, (_, i) => i);
    if (topK > 0 || topP < 1) order.sort((a, b) => p[b]! - p[a]! || a - b);
    if (topK > 0) order = order.slice(0, topK);
    if (topP < 1) {
      let mass = 0, keep = 0;
      while (keep < order.length && mass < topP) mass += p[order[keep++]!]!;
      order = order.slice(0, Math.max(1, keep));
    }
    let total = 0;
    for (const i of order) total += p[i]!;
    let r = rng.next() * total;
    token = order[order.length - 1]!;
    for (const i of order) {
      r -= p[i]!;
      if (r < 0) {
        token = i;
        break;
      }
    }
  }
  return { token, logprob: Math.log(p[token]!), entropy };
}
