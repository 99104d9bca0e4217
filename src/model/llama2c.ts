/**
 * llama2.c checkpoints (`model.bin`, version 0): seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; a negative vocab_size means the classifier is stored separately), then f32 weights in order:
 * token embedding (V, dim); per layer stacked: attention RMSNorm (L, dim), wq (L, H·hd, dim), wk (L, Hkv·hd, dim),
 * wv (L, Hkv·hd, dim), wo (L, dim, H·hd), FFN RMSNorm (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden),
 * w3 (L, hidden, dim); final RMSNorm (dim); two RoPE tables (seq_len, hd/2) each, unused here; the classifier
 * (V, dim) when not shared. Linear weights are (out, in), as PyTorch stores them. RoPE pairs are interleaved, theta
 * 10000, RMSNorm eps 1e-5.
 */
import { readFileSync } from 'node:fs';
import type { ModelConfig } from './config.js';
import { checkConfig } from './config.js';

export interface HostWeights {
  config: ModelConfig;
  /** Name → (shape, f32 data); names follow Hugging Face's Llama layout. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

export function readLlama2c(path: string): HostWeights {
  const bytes = readFileSync(path);
  return parseLlama2c(bytes, path);
}

export function parseLlama2c(bytes: Uint8Array, what = 'llama2.c checkpoint'): HostWeights {
  const fail = (why: string) => new RangeError(`${what}: ${why}`);
  if (bytes.byteLength < 28) throw fail('shorter than its 28-byte header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [dim, hidden, layers, heads, kvHeads, vocabSigned, seqLen] = Array.from({ length: 7 }, (_, i) => view.getInt32(4 * i, true)) as [number, number, number, number, number, number, number];
  const vocab = Math.abs(vocabSigned);
  if (!(heads > 0) || dim % heads !== 0) throw fail(`header: dim ${dim} is not a multiple of n_heads ${heads}`);
  const config = checkConfig(
    {
      architecture: 'llama', vocabSize: vocab, dim, hiddenDim: hidden, layers, heads, kvHeads, headDim: dim / heads, maxSeqLen: seqLen,
      ropeTheta: 10000, ropeConvention: 'interleaved', rmsEps: 1e-5, tiedEmbeddings: vocabSigned > 0, qkNorm: false, qkvBias: false, bosId: 1, eosIds: [2],
    },
    what,
  );
  const hd = config.headDim;
  const plan: [string, number[]][] = [['model.embed_tokens.weight', [vocab, dim]]];
  const perLayer: [string, number[]][] = [
    ['input_layernorm.weight', [dim]],
    ['self_attn.q_proj.weight', [heads * hd, dim]],
    ['self_attn.k_proj.weight', [kvHeads * hd, dim]],
    ['self_attn.v_proj.weight', [kvHeads * hd, dim]],
    ['self_attn.o_proj.weight', [dim, heads * hd]],
    ['post_attention_layernorm.weight', [dim]],
    ['mlp.gate_proj.weight', [hidden, dim]],
    ['mlp.down_proj.weight', [dim, hidden]],
    ['mlp.up_proj.weight', [hidden, dim]],
  ];
  // Stacked by kind over layers: all layers' attention norms, then all wq, ...
  for (const [name, shape] of perLayer) for (let l = 0; l < layers; l++) plan.push([`model.layers.${l}.${name}`, shape]);
  plan.push(['model.norm.weight', [dim]]);
  plan.push(['rope.freq_cis_real', [seqLen, hd / 2]], ['rope.freq_cis_imag', [seqLen, hd / 2]]);
  if (!config.tiedEmbeddings) plan.push(['lm_head.weight', [vocab, dim]]);
  const floats = plan.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
  const expected = 28 + 4 * floats;
  if (bytes.byteLength < expected) throw fail(`truncated: ${bytes.byteLength} bytes, the header implies ${expected}`);
  if (bytes.byteLength > expected) throw fail(`${bytes.byteLength - expected} bytes beyond the weights the header implies (not a version-0 llama2.c file?)`);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let at = 28;
  for (const [name, shape] of plan) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(at + 4 * i, true);
    at += 4 * n;
    if (name.startsWith('rope.')) continue;
    for (let i = 0; i < n; i++) if (!Number.isFinite(data[i]!)) throw fail(`tensor ${name} holds a non-finite value at element ${i}`);
    tensors.set(name, { shape, data });
  }
  return { config, tensors };
}
