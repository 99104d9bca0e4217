/**
 * The policy model: a decoder of the Llama/Qwen family run layer by layer on the native ops (no autograd).
 * `forward` (full recompute over packed sequences, keeping what `backward` needs), `generate` (batched prefill, then
 * decode, through a paged KV cache) and `extend` (one packed step over a caller's cache: what the Engine schedules).
 */
import { native } from '../native/addon.js';
import { Tensor } from '../native/tensor.js';
import { type Device, defaultDevice, describe, usableDevice } from '../native/device.js';
import * as ops from '../ops/index.js';
import { PagedKVCache } from '../ops/kv_cache.js';
import { Random } from '../rl/random.js';
import type { ModelConfig } from './config.js';
import type { HostWeights } from './llama2c.js';
import { writeHfFolder } from './hf.js';

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

/** The sampling options checked (defaults filled), naming the calling op; `minTokens` is maxTokens' least value. */
export function checkSampling(op: string, o: GenerateOptions, minTokens: number): { maxTokens: number; temperature: number; topP: number; topK: number } {
  const maxTokens = o.maxTokens ?? 256, temperature = o.temperature ?? 1, topP = o.topP ?? 1, topK = o.topK ?? 0;
  if (!Number.isInteger(maxTokens) || maxTokens < minTokens) throw new RangeError(`${op}: 'maxTokens' must be an integer >= ${minTokens}, not ${String(o.maxTokens)}`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`${op}: 'temperature' must be a finite number >= 0, not ${String(temperature)}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`${op}: 'topP' must be in (0, 1], not ${String(topP)}`);
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`${op}: 'topK' must be a non-negative integer, not ${String(topK)}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new TypeError(`${op}: 'seed' must be an integer, not ${describe(o.seed)}`);
  if (o.stopIds !== undefined && (!Array.isArray(o.stopIds) || !o.stopIds.every((t) => Number.isInteger(t)))) {
    throw new TypeError(`${op}: 'stopIds' must be an array of token ids, not ${describe(o.stopIds)}`);
  }
  if (o.blockSize !== undefined && (!Number.isInteger(o.blockSize) || o.blockSize < 1)) throw new RangeError(`${op}: 'blockSize' must be a positive integer, not ${describe(o.blockSize)}`);
  return { maxTokens, temperature, topP, topK };
}

/** The device and weight dtype a model goes to, checked (naming `op`) before any weight is read or copied. */
export function modelPlacement(op: string, opts: { device?: unknown; dtype?: unknown }): { device: Device; dtype: 'f32' | 'bf16' | 'f16' } {
  const device = usableDevice(opts.device, `${op}: device`) ?? defaultDevice().device;
  const dtype = opts.dtype ?? (device === 'cuda' ? 'bf16' : 'f32');
  if (dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'f16') throw new TypeError(`${op}: dtype must be 'f32', 'bf16' or 'f16', not ${describe(dtype)}`);
  return { device, dtype };
}

/**
 * Token ids checked and packed: every id an integer in [0, vocabSize) (NaN, 1.5, '7' or 2^32 + 5 would otherwise be
 * converted silently into some other token).
 */
export function tokenIds(what: string, ids: unknown, vocabSize: number): Int32Array {
  if (!(ids instanceof Int32Array) && !Array.isArray(ids)) throw new TypeError(`${what} must be an array of token ids, not ${describe(ids)}`);
  const list = ids as ArrayLike<unknown>;
  for (let i = 0; i < list.length; i++) {
    const t = list[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw new RangeError(`${what}[${i}] = ${describe(t)} is not a token id (an integer in [0, ${vocabSize}))`);
    }
  }
  return ids instanceof Int32Array ? ids : Int32Array.from(list as ArrayLike<number>);
}

/** The ids that end a generation by default: the model's EOS ids, and BOS for llama2.c models (as run.c stops). */
export function defaultStopIds(c: ModelConfig): number[] {
  return [...(c.eosIds ?? []), ...(c.architecture === 'llama' && c.bosId !== undefined ? [c.bosId] : [])];
}

interface LayerNames {
  inputNorm: string;
  proj: Record<'q' | 'k' | 'v', string>;
  bias: Record<'q' | 'k' | 'v', string>;
  qNorm: string;
  kNorm: string;
  o: string;
  postNorm: string;
  gate: string;
  up: string;
  down: string;
}

export class CausalLM {
  readonly config: ModelConfig;
  readonly device: Device;
  readonly dtype: 'f32' | 'bf16' | 'f16';
  readonly #w: Weights;
  readonly #grads: Weights = new Map();
  readonly #layerNames: LayerNames[] = [];
  #acts: { ids: Tensor; cu: Int32Array; positions: Tensor; layers: Map<string, Tensor>[]; xFinal: Tensor; rrmsFinal: Tensor } | undefined;
  #disposed = false;

  private constructor(config: ModelConfig, weights: Weights, device: Device, dtype: 'f32' | 'bf16' | 'f16') {
    this.config = config;
    this.#w = weights;
    this.device = device;
    this.dtype = dtype;
  }

  /** Uploads host weights. dtype defaults to f32 on the CPU and bf16 on CUDA. */
  static fromHost(host: HostWeights, opts: { device?: Device; dtype?: 'f32' | 'bf16' | 'f16' } = {}): CausalLM {
    const { device, dtype } = modelPlacement('CausalLM.fromHost', opts);
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

  /** Layer l's weight names, made once (forward, decode and backward look them up on every call). */
  #namesOf(l: number): LayerNames {
    let n = this.#layerNames[l];
    if (!n) {
      const p = `model.layers.${l}.`;
      const proj = (x: string) => `${p}self_attn.${x}_proj.weight`, bias = (x: string) => `${p}self_attn.${x}_proj.bias`;
      n = {
        inputNorm: `${p}input_layernorm.weight`,
        proj: { q: proj('q'), k: proj('k'), v: proj('v') },
        bias: { q: bias('q'), k: bias('k'), v: bias('v') },
        qNorm: `${p}self_attn.q_norm.weight`,
        kNorm: `${p}self_attn.k_norm.weight`,
        o: proj('o'),
        postNorm: `${p}post_attention_layernorm.weight`,
        gate: `${p}mlp.gate_proj.weight`,
        up: `${p}mlp.up_proj.weight`,
        down: `${p}mlp.down_proj.weight`,
      };
      this.#layerNames[l] = n;
    }
    return n;
  }

  /** y = x Wᵀ for a (T, in) x and an (out, in) W. */
  #linear(x: Tensor, name: string): Tensor {
    return ops.matmul(x, this.#weight(name), { transB: true });
  }

  /**
   * One decoder layer over T packed tokens. `attend(q, k, v)` gets q (T, H, hd) and k, v (T, Hkv, hd) after RoPE
   * and returns the attention output (T, H, hd) (and its lse when training): full causal attention, or attention
   * over the KV cache. With `acts`, the activations the backward needs are kept there instead of freed.
   */
  #layer(l: number, x: Tensor, positions: Tensor, attend: (q: Tensor, k: Tensor, v: Tensor) => { out: Tensor; lse?: Tensor }, acts?: Map<string, Tensor>): Tensor {
    const c = this.config, T = x.shape[0]!, w = this.#namesOf(l);
    const tmp: Tensor[] = [];
    const keep = <X extends Tensor>(t: X, name?: string): X => {
      if (acts && name) acts.set(name, t);
      else tmp.push(t);
      return t;
    };
    try {
      const { y: h, rrms } = ops.rmsNorm(x, this.#weight(w.inputNorm), { eps: c.rmsEps });
      keep(h, 'h');
      keep(rrms, 'rrms');
      const proj = (n: 'q' | 'k' | 'v') => {
        const y = keep(this.#linear(h, w.proj[n]));
        if (c.qkvBias) this.#addBias(y, w.bias[n]);
        return y;
      };
      const q2 = proj('q'), k2 = proj('k'), v2 = proj('v');
      let q = keep(q2.reshape([T, c.heads, c.headDim]), c.qkNorm ? 'qpre' : 'q');
      let k = keep(k2.reshape([T, c.kvHeads, c.headDim]), c.qkNorm ? 'kpre' : 'k');
      const v = keep(v2.reshape([T, c.kvHeads, c.headDim]), 'v');
      if (c.qkNorm) {
        // Qwen3: RMSNorm over each head of q and k, before RoPE
        const qn = ops.rmsNorm(q, this.#weight(w.qNorm), { eps: c.rmsEps });
        const kn = ops.rmsNorm(k, this.#weight(w.kNorm), { eps: c.rmsEps });
        q = keep(qn.y, 'q');
        keep(qn.rrms, 'qrrms');
        k = keep(kn.y, 'k');
        keep(kn.rrms, 'krrms');
      }
      const rope = { convention: c.ropeConvention, theta: c.ropeTheta, positions };
      ops.rope(q, { ...rope, out: q });
      ops.rope(k, { ...rope, out: k });
      const { out: att, lse } = attend(q, k, v);
      keep(att, 'att');
      if (lse) keep(lse, 'lse');
      const att2 = keep(att.reshape([T, c.heads * c.headDim]), 'att2');
      const o = keep(this.#linear(att2, w.o));
      const x1 = keep(ops.add(x, o), 'x1');
      const { y: h2, rrms: r2 } = ops.rmsNorm(x1, this.#weight(w.postNorm), { eps: c.rmsEps });
      keep(h2, 'h2');
      keep(r2, 'rrms2');
      const g = keep(this.#linear(h2, w.gate), 'g');
      const u = keep(this.#linear(h2, w.up), 'u');
      const a = keep(ops.swiglu(g, u), 'a');
      const d = keep(this.#linear(a, w.down));
      return ops.add(x1, d);
    } finally {
      for (const t of tmp) t.dispose();
    }
  }

  /** y (T, out) += bias (out) on every row, in place. */
  #addBias(y: Tensor, name: string): void {
    const b = this.#weight(name);
    const table = b.reshape([1, b.size]);
    const zeros = Tensor.zeros([y.shape[0]!], { dtype: 'i32', device: this.device });
    try {
      const rows = ops.embedding(zeros, table);
      ops.add(y, rows, { out: y });
      rows.dispose();
    } finally {
      zeros.dispose();
      table.dispose();
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
   * sequence), or with `returnHidden` the hidden states after the final norm (T, dim): the LM head's input, what
   * `ops.policyLoss` takes with `model.lmHead`. With `train`, the activations are kept for `backward`; with
   * `recompute` too, only each layer's input is kept and backward() recomputes the rest layer by layer (activation
   * memory of one layer instead of all, for a second forward's arithmetic).
   */
  forward(ids: Int32Array | readonly number[], opts: { cuSeqlens?: Int32Array | readonly number[]; returnHidden?: boolean; train?: boolean; recompute?: boolean } = {}): Tensor {
    const tokens = tokenIds('CausalLM.forward: ids', ids, this.config.vocabSize);
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
    this.#dropActivations();
    const positions = Tensor.from(pos, [T], { dtype: 'i32', device: this.device });
    const layers: Map<string, Tensor>[] = [];
    let x = this.#embed(tokens);
    try {
      for (let l = 0; l < this.config.layers; l++) {
        // recompute: keep only each layer's input; backward() runs the layer again to get the rest
        const acts = opts.train && !opts.recompute ? new Map<string, Tensor>([['x', x]]) : undefined;
        const next = this.#layer(l, x, positions, this.#fullAttention(cu, !!acts), acts);
        if (acts) layers.push(acts);
        else if (opts.train) layers.push(new Map([['x', x]]));
        else x.dispose();
        x = next;
      }
      if (!opts.returnHidden && !opts.train) return this.#head(x);
      const { y, rrms } = ops.rmsNorm(x, this.#weight('model.norm.weight'), { eps: this.config.rmsEps });
      if (opts.train) {
        this.#acts = { ids: Tensor.from(tokens, [T], { dtype: 'i32', device: this.device }), cu, positions, layers: [...layers], xFinal: x, rrmsFinal: rrms };
        x = undefined as unknown as Tensor;
        layers.length = 0;
        return opts.returnHidden ? y : this.#logitsOf(y);
      }
      rrms.dispose();
      return y;
    } finally {
      x?.dispose();
      for (const m of layers) for (const t of m.values()) t.dispose();
      if (!this.#acts || this.#acts.positions !== positions) positions.dispose();
    }
  }

  /** Causal attention over packed sequences; keeps the lse (for the backward) when asked. */
  #fullAttention(cu: Int32Array, keepLse: boolean): (q: Tensor, k: Tensor, v: Tensor) => { out: Tensor; lse?: Tensor } {
    return (q, k, v) => {
      const r = ops.attention(q, k, v, { causal: true, cuSeqlensQ: cu, cuSeqlensK: cu });
      if (keepLse) return r;
      r.lse.dispose();
      return { out: r.out };
    };
  }

  #logitsOf(hidden: Tensor): Tensor {
    try {
      return ops.matmul(hidden, this.lmHead, { transB: true, outDtype: 'f32' });
    } finally {
      hidden.dispose();
    }
  }

  #dropActivations(): void {
    const a = this.#acts;
    if (!a) return;
    this.#acts = undefined;
    for (const m of a.layers) for (const t of m.values()) t.dispose();
    for (const t of [a.ids, a.positions, a.xFinal, a.rrmsFinal]) t.dispose();
  }

  /** f32 gradients, by parameter name, accumulated by backward() until zeroGrad(). */
  gradients(): Map<string, Tensor> {
    if (this.#grads.size === 0) for (const [name, w] of this.#w) this.#grads.set(name, Tensor.zeros(w.shape, { device: this.device }));
    return new Map(this.#grads);
  }

  zeroGrad(): void {
    for (const [name, g] of this.#grads) {
      g.dispose();
      this.#grads.set(name, Tensor.zeros(this.#w.get(name)!.shape, { device: this.device }));
    }
  }

  /**
   * Backpropagates from the gradient of the last training forward's hidden states (T, dim) and, optionally, of the
   * LM head (V, dim) (from `ops.policyLoss`; a tied head's goes to the embedding), adding into gradients().
   * dHidden may be f32 for a bf16/f16 model (it is cast). Frees the activations.
   */
  backward(dHidden: Tensor, dLmHead?: Tensor): void {
    const a = this.#acts;
    if (!a) throw new Error('CausalLM.backward: no training forward to go back through (call forward(ids, { train: true }) first)');
    const c = this.config, T = a.ids.size;
    if (!Tensor.isTensor(dHidden) || dHidden.ndim !== 2 || dHidden.shape[0] !== T || dHidden.shape[1] !== c.dim) throw new RangeError(`CausalLM.backward: dHidden must be (${T}, ${c.dim})`);
    const grads = this.gradients();
    const grad = (name: string) => grads.get(name)!;
    const tmp: Tensor[] = [];
    const keep = <X extends Tensor>(t: X): X => (tmp.push(t), t);
    /** dW (out, in) += dy^T x for y = x W^T; returns dx = dy W. */
    const linearBack = (dy: Tensor, x: Tensor, name: string, dxOut?: Tensor, accumulate = false): Tensor => {
      ops.matmul(dy, x, { transA: true, out: grad(name), beta: 1, outDtype: 'f32' });
      return ops.matmul(dy, this.#weight(name), accumulate ? { out: dxOut!, beta: 1 } : {});
    };
    try {
      if (dLmHead) {
        const head = c.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
        ops.add(grad(head), dLmHead, { out: grad(head) });
      }
      // final norm (the policy loss gives dHidden in f32: a half-precision model takes it in its own dtype)
      const dh = dHidden.dtype === this.dtype ? dHidden : keep(ops.cast(dHidden, this.dtype));
      let dx = ops.rmsNormBackward(dh, a.xFinal, this.#weight('model.norm.weight'), a.rrmsFinal, { dwOut: grad('model.norm.weight'), accumulate: true }).dx;
      const rope = { convention: c.ropeConvention, theta: c.ropeTheta, positions: a.positions };
      for (let l = c.layers - 1; l >= 0; l--) {
        const m = a.layers[l]!, w = this.#namesOf(l), act = (n: string) => m.get(n)!;
        if (m.size === 1) this.#layer(l, act('x'), a.positions, this.#fullAttention(a.cu, true), m).dispose(); // recompute
        // MLP: x2 = x1 + down(swiglu(gate(h2), up(h2)))
        const da = keep(linearBack(dx, act('a'), w.down));
        const { dgate, dup } = ops.swigluBackward(da, act('g'), act('u'));
        keep(dgate);
        keep(dup);
        const dh2 = keep(linearBack(dgate, act('h2'), w.gate));
        linearBack(dup, act('h2'), w.up, dh2, true);
        const dn2 = keep(ops.rmsNormBackward(dh2, act('x1'), this.#weight(w.postNorm), act('rrms2'), { dwOut: grad(w.postNorm), accumulate: true }).dx);
        const dx1 = keep(ops.add(dx, dn2));
        dx.dispose();
        // attention: x1 = x + o(att(rope(q(h)), rope(k(h)), v(h)))
        const datt = keep(linearBack(dx1, act('att2'), w.o));
        const datt3 = keep(datt.reshape([T, c.heads, c.headDim]));
        const { dq, dk, dv } = ops.attentionBackward(datt3, act('q'), act('k'), act('v'), act('att'), act('lse'), { causal: true, cuSeqlensQ: a.cu, cuSeqlensK: a.cu });
        keep(dq);
        keep(dk);
        keep(dv);
        ops.ropeBackward(dq, { ...rope, out: dq });
        ops.ropeBackward(dk, { ...rope, out: dk });
        let dqp = dq, dkp = dk;
        if (c.qkNorm) {
          dqp = keep(ops.rmsNormBackward(dq, act('qpre'), this.#weight(w.qNorm), act('qrrms'), { dwOut: grad(w.qNorm), accumulate: true }).dx);
          dkp = keep(ops.rmsNormBackward(dk, act('kpre'), this.#weight(w.kNorm), act('krrms'), { dwOut: grad(w.kNorm), accumulate: true }).dx);
        }
        const dq2 = keep(dqp.reshape([T, c.heads * c.headDim]));
        const dk2 = keep(dkp.reshape([T, c.kvHeads * c.headDim]));
        const dv2 = keep(dv.reshape([T, c.kvHeads * c.headDim]));
        if (c.qkvBias) {
          const ones = keep(Tensor.from(new Float32Array(T).fill(1), [1, T], { dtype: dq2.dtype, device: this.device }));
          for (const [n, d] of [['q', dq2], ['k', dk2], ['v', dv2]] as const) {
            const g = grad(w.bias[n]);
            const g2 = keep(g.reshape([1, g.size]));
            ops.matmul(ones, d, { out: g2, beta: 1, outDtype: 'f32' });
          }
        }
        const dh = keep(linearBack(dq2, act('h'), w.proj.q));
        linearBack(dk2, act('h'), w.proj.k, dh, true);
        linearBack(dv2, act('h'), w.proj.v, dh, true);
        const dn1 = keep(ops.rmsNormBackward(dh, act('x'), this.#weight(w.inputNorm), act('rrms'), { dwOut: grad(w.inputNorm), accumulate: true }).dx);
        dx = ops.add(dx1, dn1);
        for (const t of tmp.splice(0)) t.dispose();
        for (const t of m.values()) t.dispose(); // this layer's activations are done with
        m.clear();
      }
      ops.embeddingBackward(dx, a.ids, c.vocabSize, { out: grad('model.embed_tokens.weight'), accumulate: true });
      dx.dispose();
    } finally {
      for (const t of tmp) t.dispose();
      this.#dropActivations();
    }
  }

  /**
   * Continues every prompt (token ids): prefill of all prompts together, then one decode step per new token for the
   * sequences still running, through a paged KV cache sized for the longest run.
   */
  generate(prompts: readonly (readonly number[])[], options: GenerateOptions = {}): Generation[] {
    const c = this.config;
    if (!Array.isArray(prompts) || prompts.length === 0) throw new TypeError('CausalLM.generate: prompts must be a non-empty array of token arrays');
    const { maxTokens, temperature, topP, topK } = checkSampling('CausalLM.generate', options, 0);
    const stop = new Set(options.stopIds ?? defaultStopIds(c));
    const rng = new Random(options.seed ?? 0);
    const limit = prompts.map((p, b) => {
      if (!Array.isArray(p) || p.length === 0) throw new TypeError(`CausalLM.generate: prompts[${b}] must be a non-empty array of token ids`);
      if (p.length > c.maxSeqLen) throw new RangeError(`CausalLM.generate: prompts[${b}] has ${p.length} tokens, the model takes ${c.maxSeqLen}`);
      return Math.min(maxTokens, c.maxSeqLen - p.length);
    });
    const packed = prompts.map((p, b) => tokenIds(`CausalLM.generate: prompts[${b}]`, p, c.vocabSize));
    const blockSize = options.blockSize ?? 16;
    const numBlocks = prompts.reduce((n, p, b) => n + Math.ceil((p.length + limit[b]!) / blockSize), 0) + 1;
    const cache = new PagedKVCache({ layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, blockSize, numBlocks, dtype: this.dtype, device: this.device });
    const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], entropies: [], finishReason: 'length' as const }));
    try {
      // Prefill: every prompt at once; logits of each prompt's last position.
      const ids = prompts.map((_, b) => b);
      ids.forEach((b) => cache.allocate(b));
      const logits = new Float32Array(prompts.length * c.vocabSize); // every step's logits, in turn
      let step = this.extend(cache, ids, packed, logits);
      let running = ids.filter((b) => limit[b]! > 0);
      for (;;) {
        const next: number[] = [];
        const chosen: number[] = [];
        const live = new Set(running);
        const rows = [...step.ids.entries()].filter(([, b]) => live.has(b));
        const picks = sampleMany(step.logits, c.vocabSize, rows.map(([row]) => ({ row, temperature, topK, topP, rng })));
        for (const [k, [, b]] of rows.entries()) {
          const pick = picks[k]!;
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
        step = this.extend(cache, running, chosen.map((t) => Int32Array.of(t)), logits);
      }
      return out;
    } finally {
      cache.dispose();
    }
  }

  /**
   * Appends tokens[i] to sequence ids[i] of `cache` (every layer, one packed forward: prefills and decode steps mix)
   * and returns the logits (f32, ids.length × V) of each sequence's last new token. The cache must match the model
   * (layers, kvHeads, headDim, dtype, device). Throws before touching the cache when its pool cannot hold the tokens.
   * `out`: where the logits go (its first ids.length × V elements; the result is a view of them), so that a decode
   * loop reuses one buffer instead of allocating (and zero-filling) a new one a step: 9.7 MB at 16 × 151,936.
   */
  extend(cache: PagedKVCache, ids: readonly number[], tokens: readonly Int32Array[], out?: Float32Array): { ids: number[]; logits: Float32Array } {
    const c = this.config;
    if (!Array.isArray(ids) || !Array.isArray(tokens) || ids.length === 0 || ids.length !== tokens.length) {
      throw new TypeError('CausalLM.extend: ids and tokens must be non-empty arrays of the same length');
    }
    if (out !== undefined) {
      if (!(out instanceof Float32Array)) throw new TypeError(`CausalLM.extend: argument 'out' must be a Float32Array, not ${describe(out)}`);
      if (out.length < ids.length * c.vocabSize) {
        throw new RangeError(`CausalLM.extend: argument 'out' holds ${out.length} floats, the logits of ${ids.length} sequences need ${ids.length * c.vocabSize}`);
      }
    }
    if (cache.layers !== c.layers || cache.kvHeads !== c.kvHeads || cache.headDim !== c.headDim || cache.device !== this.device) {
      throw new TypeError(`CausalLM.extend: the cache (${cache.layers} layers, ${cache.kvHeads}×${cache.headDim}, ${cache.device}) does not match the model (${c.layers} layers, ${c.kvHeads}×${c.headDim}, ${this.device})`);
    }
    const lens = tokens.map((t, i) => {
      if (!(t instanceof Int32Array) || t.length === 0) throw new TypeError(`CausalLM.extend: tokens[${i}] must be a non-empty Int32Array`);
      tokenIds(`CausalLM.extend: tokens[${i}]`, t, c.vocabSize);
      if (cache.length(ids[i]!) + t.length > c.maxSeqLen) throw new RangeError(`CausalLM.extend: sequence ${ids[i]} would reach ${cache.length(ids[i]!) + t.length} tokens, the model takes ${c.maxSeqLen}`);
      return t.length;
    });
    const need = ids.reduce((n, id, i) => n + cache.blocksNeeded(id, lens[i]!), 0);
    const free = cache.freeBlocks;
    if (need > free) throw new RangeError(`CausalLM.extend: the tokens need ${need} more cache blocks, ${free} are free`);
    return this.#extend(cache, [...ids], tokens, lens, out);
  }

  #extend(cache: PagedKVCache, ids: number[], tokens: readonly Int32Array[], lens: number[], out?: Float32Array): { ids: number[]; logits: Float32Array } {
    const c = this.config;
    const cu = new Int32Array(ids.length + 1);
    lens.forEach((n, i) => (cu[i + 1] = cu[i]! + n));
    const T = cu[ids.length]!;
    const all = new Int32Array(T), pos = new Int32Array(T), last = new Int32Array(ids.length);
    ids.forEach((id, i) => {
      all.set(tokens[i]!, cu[i]!);
      const start = cache.length(id);
      for (let t = 0; t < lens[i]!; t++) pos[cu[i]! + t] = start + t;
      last[i] = cu[i + 1]! - 1;
    });
    let x = this.#embed(all); // checks every id before the cache is touched
    const positions = Tensor.from(pos, [T], { dtype: 'i32', device: this.device });
    const lastRows = Tensor.from(last, [ids.length], { dtype: 'i32', device: this.device });
    try {
      ids.forEach((id, i) => cache.reserve(id, lens[i]!));
      for (let l = 0; l < c.layers; l++) {
        const next = this.#layer(l, x, positions, (q, k, v) => {
          cache.write(ids, l, k, v);
          return { out: ops.pagedAttention(q, cache, l, ids, { cuSeqlensQ: cu }) };
        });
        x.dispose();
        x = next;
      }
      const h = ops.embedding(lastRows, x); // the last new row of each sequence
      try {
        const logits = this.#head(h);
        try {
          const n = ids.length * c.vocabSize;
          return { ids, logits: logits.readInto(out ? out.subarray(0, n) : new Float32Array(n)) };
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

  /** The weights on the host (f32), as loaded or trained. */
  async hostWeights(): Promise<HostWeights> {
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, t] of this.#w) tensors.set(name, { shape: [...t.shape], data: await t.toFloat32Array() });
    return { config: { ...this.config }, tensors };
  }

  /** Saves a Hugging Face folder (config.json + model.safetensors, Llama names) that loadModel and transformers read. */
  async save(dir: string): Promise<void> {
    writeHfFolder(dir, await this.hostWeights());
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#dropActivations();
    for (const t of [...this.#w.values(), ...this.#grads.values()]) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

let sampleScratch = new Float64Array(0);

/**
 * One token from logits: temperature 0 is argmax; otherwise softmax(logits / T), then top-k, then top-p, then a
 * draw. logprob and entropy are of the tempered full distribution (temperature 0: of softmax(logits)).
 *
 * The kept tokens are the longest-probability prefix of the order (probability descending, index ascending); the
 * draw walks them in that order (plain sampling: in index order). With top-k or top-p only the tokens at or above a
 * threshold are sorted: the threshold falls by 16x until they hold the k tokens or the nucleus, so a 150K-token
 * vocabulary costs a few linear passes, not a full sort.
 */
export function sample(logits: Float32Array, temperature: number, topK: number, topP: number, rng: Random): Pick {
  return sampleWith(logits, temperature, topK, topP, temperature > 0 ? rng.next() : 0);
}

export interface Pick {
  token: number;
  logprob: number;
  entropy: number;
}

/** One row to sample from a batch's logits: its row, its sampling options and its generator. */
export interface SampleRequest {
  row: number;
  temperature: number;
  topK: number;
  topP: number;
  rng: Random;
}

/**
 * A token for each request, as `sample` would draw it from logits.subarray(row * V, (row + 1) * V) with the request's
 * generator (each generator advances once per request with temperature > 0, in request order). Rows without top-k
 * or top-p (the common case, and the costly one at a 150K vocabulary) are sampled natively, spread over the CPU
 * threads; the rest go through `sample`'s TypeScript.
 */
export function sampleMany(logits: Float32Array, V: number, requests: readonly SampleRequest[]): Pick[] {
  const picks: Pick[] = new Array(requests.length);
  const uniforms = requests.map((r) => (r.temperature > 0 ? r.rng.next() : 0));
  const byTemperature = new Map<number, number[]>(); // the rows sampled natively, by temperature
  requests.forEach((r, i) => {
    if (r.topK > 0 || r.topP < 1) picks[i] = sampleWith(logits.subarray(r.row * V, (r.row + 1) * V), r.temperature, r.topK, r.topP, uniforms[i]!);
    else {
      const list = byTemperature.get(r.temperature);
      if (list) list.push(i);
      else byTemperature.set(r.temperature, [i]);
    }
  });
  for (const [temperature, idx] of byTemperature) {
    const n = idx.length;
    const tokens = new Int32Array(n), logprobs = new Float64Array(n), entropies = new Float64Array(n);
    native().sampleRows(logits, V, Int32Array.from(idx, (i) => requests[i]!.row), temperature, Float64Array.from(idx, (i) => uniforms[i]!), tokens, logprobs, entropies);
    idx.forEach((i, k) => (picks[i] = { token: tokens[k]!, logprob: logprobs[k]!, entropy: entropies[k]! }));
  }
  return picks;
}

/** `sample` with its uniform drawn already (ignored at temperature 0). */
export function sampleWith(logits: Float32Array, temperature: number, topK: number, topP: number, u: number): Pick {
  const V = logits.length;
  const inv = temperature > 0 ? 1 / temperature : 1;
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[i]! * inv);
  if (sampleScratch.length < V) sampleScratch = new Float64Array(V);
  const p = sampleScratch;
  let z = 0;
  for (let i = 0; i < V; i++) z += p[i] = Math.exp(logits[i]! * inv - max);
  // Entropy as sum p_i (lse - x_i): every term is non-negative, and no logarithm per token.
  const lse = max + Math.log(z);
  let entropy = 0, pmax = 0;
  for (let i = 0; i < V; i++) {
    const pi = (p[i]! /= z);
    if (pi > 0) entropy += pi * (lse - logits[i]! * inv);
    if (pi > pmax) pmax = pi;
  }
  let token = 0;
  if (temperature === 0) {
    for (let i = 1; i < V; i++) if (logits[i]! > logits[token]!) token = i;
  } else if (topK <= 0 && topP >= 1) {
    let total = 0;
    for (let i = 0; i < V; i++) total += p[i]!;
    let r = u * total;
    token = V - 1;
    for (let i = 0; i < V; i++) {
      r -= p[i]!;
      if (r < 0) {
        token = i;
        break;
      }
    }
  } else {
    const order = keptTokens(p, V, topK, topP, pmax);
    let total = 0;
    for (const i of order) total += p[i]!;
    let r = u * total;
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

/** The top-k, then top-p prefix of the tokens by (probability descending, index ascending). */
function keptTokens(p: Float64Array, V: number, topK: number, topP: number, pmax: number): number[] {
  for (let t = pmax / 16, round = 0; ; t /= 16, round++) {
    // After six rounds (t below pmax / 16^6) every token is a candidate: a few linear passes at most, then one sort.
    const all = !(t > 0) || round >= 6;
    const cand: number[] = [];
    for (let i = 0; i < V; i++) if (all || p[i]! >= t) cand.push(i);
    if (!all && topK > 0 && cand.length < topK && cand.length < V) continue;
    cand.sort((a, b) => p[b]! - p[a]! || a - b);
    let order = topK > 0 ? cand.slice(0, topK) : cand;
    if (topP < 1) {
      let mass = 0, keep = 0;
      while (keep < order.length && mass < topP) mass += p[order[keep++]!]!;
      // The nucleus ran past the candidates: a lower threshold may hold it (unless top-k already cut the order).
      if (mass < topP && !all && order.length === cand.length && cand.length < V) continue;
      order = order.slice(0, Math.max(1, keep));
    }
    return order;
  }
}
