/**
 * AdamW over a model's parameters (torch.optim.AdamW's update: decoupled weight decay, bias correction). Parameters
 * in f32 are updated in place; bf16/f16 parameters (a model in half precision) get f32 master weights here: the
 * update runs on the master, and the parameter receives it rounded to its dtype, so small updates are not lost.
 */
import { Tensor } from '../native/tensor.js';
import * as ops from '../ops/index.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  /** The f32 master weights of bf16/f16 parameters. */
  master?: Map<string, Float32Array>;
}


export class AdamW {
  readonly options: Required<AdamWOptions>;
  #step = 0;
  readonly #params: Map<string, Tensor>;
  readonly #m = new Map<string, Tensor>();
  readonly #v = new Map<string, Tensor>();
  readonly #master = new Map<string, Tensor>();

  /** params: name → tensor (e.g. `model.parameters()`), f32 or bf16/f16; updated in place by update(). */
  constructor(params: Map<string, Tensor>, options: AdamWOptions) {
    if (!(params instanceof Map) || params.size === 0) throw new TypeError('AdamW: params must be a non-empty Map of tensors');
    if (!(options?.lr > 0)) throw new RangeError('AdamW: lr must be a positive number');
    this.options = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, ...options };
    for (const [name, p] of params) {
      if (!Tensor.isTensor(p)) throw new TypeError(`AdamW: parameter ${name} is not a tensor`);
      if (p.dtype !== 'f32' && p.dtype !== 'bf16' && p.dtype !== 'f16') throw new TypeError(`AdamW: parameter ${name} is ${p.dtype}, not a float tensor`);
    }
    for (const [name, p] of params) {
      if (p.dtype !== 'f32') this.#master.set(name, ops.cast(p, 'f32'));
      this.#m.set(name, Tensor.zeros(p.shape, { device: p.device }));
      this.#v.set(name, Tensor.zeros(p.shape, { device: p.device }));
    }
    this.#params = new Map(params);
  }

  get step(): number {
    return this.#step;
  }

  /** One update from gradients (name → tensor; names without a gradient are left alone). */
  update(grads: Map<string, Tensor>, opts: { lr?: number; gradScale?: number } = {}): void {
    this.#step++;
    const o = this.options;
    for (const [name, p] of this.#params) {
      const g = grads.get(name);
      if (!g) continue;
      const master = this.#master.get(name);
      ops.adamw(master ?? p, g, this.#m.get(name)!, this.#v.get(name)!, {
        lr: opts.lr ?? o.lr, step: this.#step, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, gradScale: opts.gradScale ?? 1,
        paramsCopy: master ? p : undefined,
      });
    }
  }

  /** The moments, the master weights of half-precision parameters and the step count, on the host. */
  async state(): Promise<AdamWState> {
    const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>(), master = new Map<string, Float32Array>();
    for (const [name, t] of this.#m) m.set(name, await t.toFloat32Array());
    for (const [name, t] of this.#v) v.set(name, await t.toFloat32Array());
    for (const [name, t] of this.#master) master.set(name, await t.toFloat32Array());
    return { step: this.#step, m, v, ...(master.size > 0 ? { master } : {}) };
  }

  /** Restores state() output (same parameter names and sizes). */
  loadState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new RangeError('AdamW.loadState: step must be a non-negative integer');
    // Master weights are optional: a state saved without them (or from f32 parameters) keeps the current ones.
    const pairs = [['m', state.m, this.#m], ['v', state.v, this.#v]] as [string, Map<string, Float32Array>, Map<string, Tensor>][];
    if (state.master && state.master.size > 0) pairs.push(['master', state.master, this.#master]);
    for (const [which, src, dst] of pairs) {
      if (!(src instanceof Map)) throw new TypeError(`AdamW.loadState: ${which} must be a Map of Float32Arrays`);
      for (const [name, t] of dst) {
        const data = src.get(name);
        if (!data || data.length !== t.size) throw new RangeError(`AdamW.loadState: ${which} of ${name} is missing or has the wrong size`);
      }
    }
    for (const [, src, dst] of pairs) {
      for (const [name, t] of dst) {
        const fresh = Tensor.from(src.get(name)!, t.shape, { device: t.device });
        t.dispose();
        dst.set(name, fresh);
      }
    }
    this.#step = state.step;
    // The parameters take the restored master weights, rounded to their dtype.
    if (pairs.length > 2) {
      for (const [name, master] of this.#master) {
        const p = this.#params.get(name)!;
        ops.cast(master, p.dtype as 'bf16' | 'f16', { out: p });
      }
    }
  }

  /** Writes state() to a safetensors file (m.<name>, v.<name>; the step in the metadata), atomically. */
  async saveState(path: string): Promise<void> {
    const st = await this.state();
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [which, map] of [['m', st.m], ['v', st.v], ['master', st.master ?? new Map<string, Float32Array>()]] as const) {
      for (const [name, data] of map) tensors.set(`${which}.${name}`, { shape: [...this.#params.get(name)!.shape], data });
    }
    writeSafetensors(path, tensors, { step: String(st.step), optimizer: 'AdamW' });
  }

  /** Restores a saveState() file. */
  loadStateFile(path: string): void {
    const { tensors, metadata } = readSafetensors(path);
    const step = Number(metadata.step);
    if (metadata.optimizer !== 'AdamW' || !Number.isInteger(step)) throw new RangeError(`${path}: not an AdamW state file`);
    const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>(), master = new Map<string, Float32Array>();
    for (const [key, t] of tensors) {
      if (key.startsWith('m.')) m.set(key.slice(2), t.data);
      else if (key.startsWith('v.')) v.set(key.slice(2), t.data);
      else if (key.startsWith('master.')) master.set(key.slice(7), t.data);
    }
    this.loadState({ step, m, v, master });
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values(), ...this.#master.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
    this.#master.clear();
  }
}
