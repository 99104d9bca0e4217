/** AdamW over a model's parameters (torch.optim.AdamW's update: decoupled weight decay, bias correction). */
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
}

export class AdamW {
  readonly options: Required<AdamWOptions>;
  #step = 0;
  readonly #params: Map<string, Tensor>;
  readonly #m = new Map<string, Tensor>();
  readonly #v = new Map<string, Tensor>();

  /** params: name → f32 tensor (e.g. `model.parameters()`); updated in place by step(). */
  constructor(params: Map<string, Tensor>, options: AdamWOptions) {
    if (!(params instanceof Map) || params.size === 0) throw new TypeError('AdamW: params must be a non-empty Map of tensors');
    if (!(options?.lr > 0)) throw new RangeError('AdamW: lr must be a positive number');
    this.options = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, ...options };
    for (const [name, p] of params) {
      if (!Tensor.isTensor(p)) throw new TypeError(`AdamW: parameter ${name} is not a tensor`);
      if (p.dtype !== 'f32') throw new TypeError(`AdamW: parameter ${name} is ${p.dtype}; the optimizer updates f32 (master) weights`);
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
      ops.adamw(p, g, this.#m.get(name)!, this.#v.get(name)!, {
        lr: opts.lr ?? o.lr, step: this.#step, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, gradScale: opts.gradScale ?? 1,
      });
    }
  }

  /** The moments and step count, on the host. */
  async state(): Promise<AdamWState> {
    const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
    for (const [name, t] of this.#m) m.set(name, await t.toFloat32Array());
    for (const [name, t] of this.#v) v.set(name, await t.toFloat32Array());
    return { step: this.#step, m, v };
  }

  /** Restores state() output (same parameter names and sizes). */
  loadState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new RangeError('AdamW.loadState: step must be a non-negative integer');
    for (const [which, src, dst] of [['m', state.m, this.#m], ['v', state.v, this.#v]] as const) {
      for (const [name, t] of dst) {
        const data = src.get(name);
        if (!data || data.length !== t.size) throw new RangeError(`AdamW.loadState: ${which} of ${name} is missing or has the wrong size`);
      }
    }
    for (const [src, dst] of [[state.m, this.#m], [state.v, this.#v]] as const) {
      for (const [name, t] of dst) {
        const fresh = Tensor.from(src.get(name)!, t.shape, { device: t.device });
        t.dispose();
        dst.set(name, fresh);
      }
    }
    this.#step = state.step;
  }

  /** Writes state() to a safetensors file (m.<name>, v.<name>; the step in the metadata), atomically. */
  async saveState(path: string): Promise<void> {
    const st = await this.state();
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [which, map] of [['m', st.m], ['v', st.v]] as const) {
      for (const [name, data] of map) tensors.set(`${which}.${name}`, { shape: [...this.#params.get(name)!.shape], data });
    }
    writeSafetensors(path, tensors, { step: String(st.step), optimizer: 'AdamW' });
  }

  /** Restores a saveState() file. */
  loadStateFile(path: string): void {
    const { tensors, metadata } = readSafetensors(path);
    const step = Number(metadata.step);
    if (metadata.optimizer !== 'AdamW' || !Number.isInteger(step)) throw new RangeError(`${path}: not an AdamW state file`);
    const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
    for (const [key, t] of tensors) {
      if (key.startsWith('m.')) m.set(key.slice(2), t.data);
      else if (key.startsWith('v.')) v.set(key.slice(2), t.data);
    }
    this.loadState({ step, m, v });
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
  }
}
