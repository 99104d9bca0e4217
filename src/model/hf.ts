/**
 * Hugging Face model folders: `config.json` and `model.safetensors` (or shards listed by
 * `model.safetensors.index.json`), Llama's tensor names. Writing produces the same layout, so a model trained
 * here loads elsewhere. Hugging Face's Llama rotates (i, i + D/2) pairs; a model whose RoPE pairs are interleaved
 * (Meta, llama2.c) has its q and k projection rows permuted on the way out so both conventions compute the same.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ModelConfig, checkConfig } from './config.js';
import type { HostWeights } from './llama2c.js';
import { type HostTensor, readSafetensors, writeSafetensors } from './safetensors.js';

export function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>([['model.embed_tokens.weight', [c.vocabSize, c.dim]], ['model.norm.weight', [c.dim]]]);
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [c.dim]);
    m.set(`${p}post_attention_layernorm.weight`, [c.dim]);
    m.set(`${p}self_attn.q_proj.weight`, [c.heads * c.headDim, c.dim]);
    m.set(`${p}self_attn.k_proj.weight`, [c.kvHeads * c.headDim, c.dim]);
    m.set(`${p}self_attn.v_proj.weight`, [c.kvHeads * c.headDim, c.dim]);
    m.set(`${p}self_attn.o_proj.weight`, [c.dim, c.heads * c.headDim]);
    m.set(`${p}mlp.gate_proj.weight`, [c.hiddenDim, c.dim]);
    m.set(`${p}mlp.up_proj.weight`, [c.hiddenDim, c.dim]);
    m.set(`${p}mlp.down_proj.weight`, [c.dim, c.hiddenDim]);
    if (c.qkNorm) {
      m.set(`${p}self_attn.q_norm.weight`, [c.headDim]);
      m.set(`${p}self_attn.k_norm.weight`, [c.headDim]);
    }
    if (c.qkvBias) {
      m.set(`${p}self_attn.q_proj.bias`, [c.heads * c.headDim]);
      m.set(`${p}self_attn.k_proj.bias`, [c.kvHeads * c.headDim]);
      m.set(`${p}self_attn.v_proj.bias`, [c.kvHeads * c.headDim]);
    }
  }
  if (!c.tiedEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.dim]);
  return m;
}

export function readHfFolder(dir: string): HostWeights {
  const what = `${dir}`;
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new Error(`${what}: no config.json`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch {
    throw new RangeError(`${what}: config.json is not JSON`);
  }
  const type = String(raw.model_type ?? '');
  if (type !== 'llama' && type !== 'qwen2' && type !== 'qwen3') throw new RangeError(`${what}: model_type '${type}' is not supported (llama, qwen2 and qwen3 are)`);
  if (type === 'llama' && raw.attention_bias === true) throw new RangeError(`${what}: attention_bias on a llama model is not supported`);
  if (raw.rope_scaling) throw new RangeError(`${what}: rope_scaling is not supported yet`);
  const num = (k: string, dflt?: number): number => {
    const v = raw[k] ?? dflt;
    if (typeof v !== 'number') throw new RangeError(`${what}: config.json needs a number '${k}'`);
    return v;
  };
  const heads = num('num_attention_heads');
  const config = checkConfig(
    {
      architecture: type as ModelConfig['architecture'], vocabSize: num('vocab_size'), dim: num('hidden_size'), hiddenDim: num('intermediate_size'), layers: num('num_hidden_layers'),
      heads, kvHeads: num('num_key_value_heads', heads), headDim: num('head_dim', num('hidden_size') / heads), maxSeqLen: num('max_position_embeddings', 2048),
      ropeTheta: num('rope_theta', 10000), ropeConvention: 'half', rmsEps: num('rms_norm_eps', 1e-6), tiedEmbeddings: raw.tie_word_embeddings === true,
      qkNorm: type === 'qwen3', qkvBias: type === 'qwen2', bosId: typeof raw.bos_token_id === 'number' ? raw.bos_token_id : undefined,
      eosIds: typeof raw.eos_token_id === 'number' ? [raw.eos_token_id] : Array.isArray(raw.eos_token_id) ? (raw.eos_token_id as number[]) : undefined,
    },
    what,
  );
  const files: string[] = [];
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map;
    if (!map) throw new RangeError(`${index}: no weight_map`);
    files.push(...new Set(Object.values(map)));
  } else {
    files.push('model.safetensors');
  }
  const all = new Map<string, HostTensor>();
  for (const f of files) {
    const path = join(dir, f);
    if (!existsSync(path)) throw new Error(`${what}: missing weights file ${f}`);
    for (const [name, t] of readSafetensors(path).tensors) all.set(name, t);
  }
  const tensors = new Map<string, HostTensor>();
  for (const [name, shape] of expectedShapes(config)) {
    const t = all.get(name);
    if (!t) throw new RangeError(`${what}: the weights have no tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new RangeError(`${what}: ${name} has shape [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`);
    tensors.set(name, t);
  }
  return { config, tensors };
}

/** Interleaved RoPE pairs (2i, 2i+1) to Hugging Face's (i, i + D/2): rows of each head reordered. */
function interleavedToHalf(t: HostTensor, heads: number, headDim: number): HostTensor {
  const cols = t.shape[1]!, half = headDim / 2;
  const out = new Float32Array(t.data.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let e = 0; e < 2; e++) {
        const src = (h * headDim + 2 * i + e) * cols, dst = (h * headDim + e * half + i) * cols;
        out.set(t.data.subarray(src, src + cols), dst);
      }
  return { shape: t.shape, data: out };
}

/** Writes config.json and model.safetensors (f32) into `dir` (created if needed); each file lands atomically. */
export function writeHfFolder(dir: string, host: HostWeights): void {
  const c = host.config;
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, HostTensor>();
  for (const [name] of expectedShapes(c)) {
    let t = host.tensors.get(name);
    if (!t) throw new Error(`writeHfFolder: no tensor ${name}`);
    if (c.ropeConvention === 'interleaved' && /self_attn\.q_proj/.test(name)) t = interleavedToHalf(t, c.heads, c.headDim);
    if (c.ropeConvention === 'interleaved' && /self_attn\.k_proj/.test(name)) t = interleavedToHalf(t, c.kvHeads, c.headDim);
    tensors.set(name, t);
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const arch = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM' }[c.architecture];
  const config = {
    architectures: [arch], model_type: c.architecture, vocab_size: c.vocabSize, hidden_size: c.dim, intermediate_size: c.hiddenDim,
    num_hidden_layers: c.layers, num_attention_heads: c.heads, num_key_value_heads: c.kvHeads, head_dim: c.headDim,
    max_position_embeddings: c.maxSeqLen, rope_theta: c.ropeTheta, rms_norm_eps: c.rmsEps, tie_word_embeddings: c.tiedEmbeddings,
    hidden_act: 'silu', torch_dtype: 'float32', ...(c.bosId !== undefined ? { bos_token_id: c.bosId } : {}),
    ...(c.eosIds ? { eos_token_id: c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds } : {}),
  };
  const tmp = join(dir, `config.json.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(tmp, join(dir, 'config.json'));
}
