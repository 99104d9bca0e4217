/** One configuration type for the decoder family the engine runs (Llama-2/3, Qwen2/2.5, Qwen3 dense). */
export interface ModelConfig {
  /** 'llama' (Llama-2/3 and llama2.c) or 'qwen2' / 'qwen3'. */
  architecture: 'llama' | 'qwen2' | 'qwen3';
  vocabSize: number;
  dim: number;
  hiddenDim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  maxSeqLen: number;
  ropeTheta: number;
  /** 'interleaved': pairs (2i, 2i+1) as Meta and llama2.c; 'half': pairs (i, i + D/2) as Hugging Face. */
  ropeConvention: 'interleaved' | 'half';
  rmsEps: number;
  tiedEmbeddings: boolean;
  /** Qwen3: RMSNorm over each head of q and k before RoPE. */
  qkNorm: boolean;
  /** Qwen2: biases on the q, k and v projections. */
  qkvBias: boolean;
  bosId?: number;
  eosIds?: number[];
}

export function checkConfig(c: ModelConfig, what: string): ModelConfig {
  const positive = ['vocabSize', 'dim', 'hiddenDim', 'layers', 'heads', 'kvHeads', 'headDim', 'maxSeqLen'] as const;
  for (const k of positive) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) throw new RangeError(`${what}: config '${k}' must be a positive integer, not ${String(v)}`);
  }
  if (c.heads % c.kvHeads !== 0) throw new RangeError(`${what}: config heads (${c.heads}) must be a multiple of kvHeads (${c.kvHeads})`);
  if (c.headDim % 2 !== 0 || c.headDim > 256) throw new RangeError(`${what}: config headDim (${c.headDim}) must be even and at most 256`);
  if (!(c.ropeTheta > 0) || !(c.rmsEps > 0)) throw new RangeError(`${what}: config ropeTheta and rmsEps must be positive`);
  return c;
}
