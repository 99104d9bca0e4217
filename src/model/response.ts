/**
 * The one-token shift between a causal LM's hidden states and the tokens they predict: for packed sequences of
 * prompt + response, the row t predicts token t + 1, so the response tokens of a sequence are predicted by the rows
 * from its last prompt position to its second-to-last position. `responseRows` lists those rows and their targets;
 * `gatherRows` picks them out of the hidden states for `ops.policyLoss`, and `scatterRows` puts the loss's
 * gradient back in place (zeros elsewhere) for `CausalLM.backward`.
 */
import { Tensor } from '../native/tensor.js';
import * as ops from '../ops/index.js';

export interface ResponseRows {
  /** Rows of the packed hidden states that predict a response token, in order. */
  rows: Int32Array;
  /** The response token each row predicts. */
  targets: Int32Array;
  /** Response lengths as prefix sums (B + 1): the policy loss's cuSeqlens. */
  cuSeqlens: Int32Array;
}

export function responseRows(ids: ArrayLike<number>, cuSeqlens: ArrayLike<number>, promptLens: ArrayLike<number>): ResponseRows {
  const B = cuSeqlens.length - 1;
  if (B < 1 || promptLens.length !== B) throw new RangeError(`responseRows: ${promptLens.length} prompt lengths for ${B} sequences`);
  const rows: number[] = [], targets: number[] = [];
  const cu = new Int32Array(B + 1);
  for (let b = 0; b < B; b++) {
    const s = cuSeqlens[b]!, e = cuSeqlens[b + 1]!, p = promptLens[b]!;
    if (!(Number.isInteger(p) && p >= 1 && p <= e - s)) throw new RangeError(`responseRows: prompt length ${p} of sequence ${b} must be in [1, ${e - s}]`);
    for (let t = s + p; t < e; t++) {
      rows.push(t - 1);
      targets.push(ids[t]!);
    }
    cu[b + 1] = rows.length;
  }
  return { rows: Int32Array.from(rows), targets: Int32Array.from(targets), cuSeqlens: cu };
}

/** hidden[rows] as a new (rows, dim) tensor. */
export function gatherRows(hidden: Tensor, rows: Int32Array): Tensor {
  const idx = Tensor.from(rows, [rows.length], { dtype: 'i32', device: hidden.device });
  try {
    return ops.embedding(idx, hidden);
  } finally {
    idx.dispose();
  }
}

/** A (total, dim) f32 tensor holding dRows at `rows` (summed where a row repeats) and zeros elsewhere. */
export function scatterRows(dRows: Tensor, rows: Int32Array, total: number): Tensor {
  const idx = Tensor.from(rows, [rows.length], { dtype: 'i32', device: dRows.device });
  try {
    return ops.embeddingBackward(dRows, idx, total);
  } finally {
    idx.dispose();
  }
}
