/**
 * The optimizer step and gradient clipping.
 *   adamw: params, m, v (n) f32, updated in place; grads (n) f32/f16/bf16; paramsCopy (n) f16/bf16, optional,
 *   receives the updated weights in the model's dtype. The update is torch.optim.AdamW's (decoupled decay,
 *   bias correction).
 *   gradNorm / clipGrad: the global L2 norm over many tensors (a () f32 tensor on their device); clipGrad also
 *   scales them in place by min(1, maxNorm / (norm + 1e-6)), torch.nn.utils.clip_grad_norm_'s rule.
 */
import { native } from '../native/addon.js';
import { type Tensor, checkTensor } from '../native/tensor.js';
import { checkFinite, checkOptions, outputTensor } from './checks.js';

export interface AdamwOptions {
  /** Learning rate. */
  lr: number;
  /** The step number, from 1 (bias correction). */
  step: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Multiply the gradients first (e.g. a loss-scale or clip factor). Default 1. */
  gradScale?: number;
  /** Also write the updated weights here, rounded to its dtype (f16/bf16). */
  paramsCopy?: Tensor;
}

export function adamw(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, options: AdamwOptions): void {
  const op = 'ops.adamw';
  const opts = checkOptions(op, options);
  for (const [name, t] of [['params', params], ['grads', grads], ['m', m], ['v', v]] as const) checkTensor(t, op, name);
  const copy = opts.paramsCopy === undefined ? null : checkTensor(opts.paramsCopy, op, 'paramsCopy');
  native().adamw(
    params.handle,
    grads.handle,
    m.handle,
    v.handle,
    copy?.handle ?? null,
    checkFinite(op, 'lr', opts.lr),
    checkFinite(op, 'beta1', opts.beta1 ?? 0.9),
    checkFinite(op, 'beta2', opts.beta2 ?? 0.999),
    checkFinite(op, 'eps', opts.eps ?? 1e-8),
    checkFinite(op, 'weightDecay', opts.weightDecay ?? 0.01),
    checkFinite(op, 'step', opts.step),
    checkFinite(op, 'gradScale', opts.gradScale ?? 1),
  );
}

function checkList(op: string, tensors: unknown): Tensor[] {
  if (!Array.isArray(tensors)) throw new TypeError(`${op}: argument 'tensors' must be an array of Tensors`);
  return tensors.map((t, i) => checkTensor(t, op, `tensors[${i}]`));
}

/** √(Σ g²) over all the tensors, as a () f32 tensor on their device. */
export function gradNorm(tensors: Tensor[]): Tensor {
  const list = checkList('ops.gradNorm', tensors);
  const h = native().gradNorm(list.map((t) => t.handle), false);
  return outputTensor(h, [], 'f32', list[0]!.device);
}

/** Scale the tensors in place so their global norm is at most maxNorm; returns the norm before clipping. */
export function clipGrad(tensors: Tensor[], maxNorm: number): Tensor {
  const list = checkList('ops.clipGrad', tensors);
  const h = native().gradNorm(list.map((t) => t.handle), true, checkFinite('ops.clipGrad', 'maxNorm', maxNorm));
  return outputTensor(h, [], 'f32', list[0]!.device);
}
