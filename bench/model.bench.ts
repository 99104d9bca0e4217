/**
 * The policy engine on the CPU: a training step (forward, next-token loss through ops.policyLoss, backward, AdamW)
 * of a 4-layer, d = 256, 8-head model at 4 x 1024 tokens beside the same step in eager PyTorch (same run, same
 * threads); and stories260K (llama2.c) generation tokens/s, greedy batch 1 (as run.c) and sampled batch 16, through
 * the paged KV cache (skipped, with a line saying so, where the shared models folder is absent).
 * With a CUDA device: a Qwen3-0.6B-shaped model with random weights in bf16 (f32 master weights in AdamW): training
 * tokens/s and MFU (model FLOPs per token 6 N + 6 L T d_attn for causal attention, over the card's dense bf16 peak),
 * and decode tokens/s through the paged KV cache.
 * On the CPU also: that model's decode step in bf16, batch 1 and 8, as weight bytes read per second against a memory
 * stream.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { formatProfile, info, profile, synchronize } from '../src/native/runtime.js';
import { AdamW, CausalLM, loadModel } from '../src/model/index.js';
import type { ModelConfig } from '../src/model/config.js';
import { expectedShapes } from '../src/model/hf.js';
import * as ops from '../src/ops/index.js';
import { PagedKVCache } from '../src/ops/kv_cache.js';
import { native } from '../src/native/addon.js';
import { Tensor } from '../src/native/tensor.js';
import { sampleMany } from '../src/model/model.js';
import { Random } from '../src/rl/random.js';
import { torchBench } from '../src/bench/torch.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';
import { seededFloats } from '../src/bench/random.js';


/**
 * One training step on random tokens: forward, next-token loss through ops.policyLoss (advantage 1, token-mean),
 * backward, AdamW; the step returns once the device is done.
 */
function trainStepOf(model: CausalLM, opt: AdamW, B: number, T: number, phases?: Record<string, number>): () => void {
  const V = model.config.vocabSize;
  const ids = Int32Array.from(seededFloats(B * T, 99, 1), (x) => Math.min(V - 1, Math.floor((x + 1) * 0.5 * V)));
  const targets = Int32Array.from(seededFloats(B * T, 98, 1), (x) => Math.min(V - 1, Math.floor((x + 1) * 0.5 * V)));
  const cu = Array.from({ length: B + 1 }, (_, b) => b * T);
  const ones = new Float32Array(B * T).fill(1);
  // With `phases`, each phase ends at a device synchronization and its milliseconds are added under its name.
  let t0 = 0;
  const mark = (name: string) => {
    if (!phases) return;
    if (model.device === 'cuda') synchronize();
    const t = performance.now();
    if (name) phases[name] = (phases[name] ?? 0) + (t - t0);
    t0 = t;
  };
  return () => {
    mark('');
    model.zeroGrad();
    const hidden = model.forward(ids, { cuSeqlens: cu, train: true, returnHidden: true });
    mark('forward ms');
    const r = ops.policyLoss({ hidden, weight: model.lmHead, targets, advantages: ones, cuSeqlens: [0, B * T], aggregation: 'token-mean' });
    mark('loss ms');
    model.backward(r.dHidden!, r.dWeight!);
    mark('backward ms');
    opt.update(model.gradients());
    mark('adamw ms');
    for (const t of [hidden, r.loss, r.nll, r.logp, r.entropy, r.dHidden!, r.dWeight!]) t.dispose();
    if (model.device === 'cuda') synchronize();
  };
}

async function trainStep(ctx: Parameters<BenchSuite['run']>[0], threads: number): Promise<BenchRecord> {
  const [B, T] = ctx.quick ? [2, 256] : [4, 1024];
  const config: ModelConfig = {
    architecture: 'llama', vocabSize: 2048, dim: 256, hiddenDim: 688, layers: 4, heads: 8, kvHeads: 8, headDim: 32, maxSeqLen: 1024,
    ropeTheta: 10000, ropeConvention: 'interleaved', rmsEps: 1e-5, tiedEmbeddings: true, qkNorm: false, qkvBias: false,
  };
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let seed = 1;
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [2048, 256]], ['model.norm.weight', [256]]];
  for (let l = 0; l < 4; l++) {
    const p = `model.layers.${l}.`;
    shapes.push([`${p}input_layernorm.weight`, [256]], [`${p}post_attention_layernorm.weight`, [256]]);
    for (const n of ['q', 'k', 'v', 'o']) shapes.push([`${p}self_attn.${n}_proj.weight`, [256, 256]]);
    shapes.push([`${p}mlp.gate_proj.weight`, [688, 256]], [`${p}mlp.up_proj.weight`, [688, 256]], [`${p}mlp.down_proj.weight`, [256, 688]]);
  }
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    tensors.set(name, { shape, data: shape.length === 1 ? new Float32Array(n).fill(1) : seededFloats(n, seed++, 0.035) });
  }
  const model = CausalLM.fromHost({ config, tensors }, { device: 'cpu' });
  const opt = new AdamW(model.parameters(), { lr: 1e-4 });
  const r = await ctx.time(trainStepOf(model, opt, B, T), { warmup: 1, minSamples: 3, minTimeMs: 0 });
  const opFigures = profiled(ctx, 'CPU train step', trainStepOf(model, opt, B, T));
  opt.dispose();
  model.dispose();
  const figures: Record<string, number | string> = { 'tokens/s': (B * T) / (r.medianMs / 1000), ...opFigures };
  const torch = torchBench([{ op: 'train_step', V: 2048, dim: 256, hidden: 688, layers: 4, heads: 8, B, T }], threads, ctx.quick);
  const t = torch?.[0];
  if (t) {
    figures['torch ms'] = t.medianMs;
    figures['torch tokens/s'] = (B * T) / (t.medianMs / 1000);
    figures['vs torch'] = t.medianMs / r.medianMs;
  }
  return { suite: 'model', case: `train step 4 layers d=256 8 heads, ${B}x${T} tokens, f32 (${threads} threads)`, medianMs: r.medianMs, samples: r.samples, figures };
}

/** Dense bf16 tensor-core peak (no sparsity) of the cards we know, from the vendors' data sheets. */
function bf16Peak(name: string): number | undefined {
  if (/H100.*PCIe/i.test(name)) return 756e12;
  if (/H100|H200|GH200/i.test(name)) return 989.4e12;
  if (/A100/i.test(name)) return 312e12;
  if (/L40S/i.test(name)) return 362e12;
  return undefined;
}

/** Qwen3-0.6B's shape (28 layers, d 1024, 16 q heads / 8 kv heads of 128, SwiGLU 3072, vocab 151,936, tied head). */
const QWEN3_06B: ModelConfig = {
  architecture: 'qwen3', vocabSize: 151936, dim: 1024, hiddenDim: 3072, layers: 28, heads: 16, kvHeads: 8, headDim: 128, maxSeqLen: 40960,
  ropeTheta: 1e6, ropeConvention: 'half', rmsEps: 1e-6, tiedEmbeddings: true, qkNorm: true, qkvBias: false,
};

/** One more run of `step` under the op profiler: the table goes to the log, the six costliest ops to the figures. */
function profiled(ctx: Parameters<BenchSuite['run']>[0], what: string, step: () => unknown): Record<string, number> {
  const p = profile(step);
  ctx.log(`op profile of one ${what}:\n${formatProfile(p, 16)}`);
  const figures: Record<string, number> = {};
  for (const o of p.ops.slice(0, 6)) figures[`${o.op} ms`] = o.deviceMs;
  figures['outside ops ms'] = p.wallMs - p.ops.reduce((a, o) => a + o.hostMs, 0);
  return figures;
}

/** The extra figures, or a note saying why there are none (the main figure stays). */
function splitOrNote(f: () => Record<string, number | string>): Record<string, number | string> {
  try {
    return f();
  } catch (e) {
    return { 'split not measured': (e as Error).message };
  }
}

/** A decode step's two halves, over 16 steps after the prefill: the forward (logits on the host) and the sampling. */
function decodeSplit(model: CausalLM, prompts: number[][], tokens: number, log: (line: string) => void): Record<string, number | string> {
  const c = model.config, V = c.vocabSize, ids = prompts.map((_, b) => b), steps = Math.min(16, tokens);
  const cache = new PagedKVCache({
    layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, blockSize: 16, dtype: model.dtype, device: model.device,
    numBlocks: prompts.reduce((n, p) => n + Math.ceil((p.length + steps + 2) / 16), 1),
  });
  try {
    ids.forEach((b) => cache.allocate(b));
    let step = model.extend(cache, ids, prompts.map((p) => Int32Array.from(p)));
    const rng = new Random(1);
    let sampling = 0, forward = 0;
    for (let i = 0; i < steps; i++) {
      const a = performance.now();
      const next = sampleMany(step.logits, V, ids.map((row) => ({ row, temperature: 1, topK: 0, topP: 1, rng }))).map((p) => Int32Array.of(p.token));
      const b = performance.now();
      step = model.extend(cache, ids, next);
      forward += performance.now() - b;
      sampling += b - a;
    }
    const next = ids.map(() => Int32Array.of(1));
    const p = profile(() => model.extend(cache, ids, next));
    log(`op profile of one decode step (batch ${ids.length}):\n${formatProfile(p, 16)}`);
    const top = p.ops.slice(0, 4).map((o) => `${o.op} ${o.deviceMs.toFixed(2)} ms x${o.calls}`).join(', ');
    return { 'forward ms/step': forward / steps, 'sampling ms/step': sampling / steps, 'one step: outside ops ms': p.wallMs - p.ops.reduce((a, o) => a + o.hostMs, 0), 'one step: top ops': top };
  } finally {
    cache.dispose();
  }
}

/** The Qwen3-0.6B-shaped model in bf16 with seeded random weights (4 layers when quick), and its parameter count. */
function qwen3Shaped(quick: boolean, device: 'cpu' | 'cuda'): { model: CausalLM; config: ModelConfig; params: number } {
  const config: ModelConfig = quick ? { ...QWEN3_06B, layers: 4 } : QWEN3_06B;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let seed = 1, params = 0;
  for (const [name, shape] of expectedShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    params += n;
    tensors.set(name, { shape, data: name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : seededFloats(n, seed++, 0.035) });
  }
  return { model: CausalLM.fromHost({ config, tensors }, { device, dtype: 'bf16' }), config, params };
}

/**
 * CPU decode of a Qwen3-0.6B-shaped model in bf16 (random weights; 4 layers with --quick): one step (every sequence
 * one token, through the paged KV cache) after a 64-token prompt, batch 1 and 8. A step reads every weight once, so
 * the figure beside it is the weights' bytes over the step's time, against a read-only stream over 1 GiB in the same
 * run (what the memory gives one pass).
 */
async function cpuDecode(ctx: Parameters<BenchSuite['run']>[0], threads: number): Promise<BenchRecord[]> {
  const { model, config, params } = qwen3Shaped(ctx.quick, 'cpu');
  const streamFloats = 1 << 28;  // 1 GiB
  const stream = Tensor.from(seededFloats(streamFloats, 5), [streamFloats], { device: 'cpu' });
  const records: BenchRecord[] = [];
  const name = `Qwen3-0.6B-shaped${ctx.quick ? ' (4 layers)' : ''}`;
  try {
    for (const batch of [1, 8]) {
      const ids = Array.from({ length: batch }, (_, b) => b);
      const prompt = Int32Array.from({ length: 64 }, (_, i) => (i * 7919) % config.vocabSize);
      const cache = new PagedKVCache({ layers: config.layers, kvHeads: config.kvHeads, headDim: config.headDim, blockSize: 16, dtype: 'bf16', device: 'cpu', numBlocks: batch * 8 + 1 });
      const logits = new Float32Array(batch * config.vocabSize);
      try {
        ids.forEach((b) => cache.allocate(b));
        model.extend(cache, ids, ids.map(() => prompt), logits);
        const next = ids.map((b) => Int32Array.of(b + 1));
        // At most 64 more tokens fit: 2 warm-up steps and 16 timed ones (fewer with --quick).
        const r = await ctx.time(() => model.extend(cache, ids, next, logits), { warmup: 2, minSamples: 16, minTimeMs: 0 });
        const s = await ctx.time(() => native().readStream(stream.handle), { warmup: 1, minSamples: 4, minTimeMs: 0 });
        const weightGBs = (params * 2) / (r.medianMs / 1000) / 1e9, streamGBs = (streamFloats * 4) / (s.medianMs / 1000) / 1e9;
        records.push({
          suite: 'model',
          case: `${name} decode step, batch ${batch} after a 64-token prompt, bf16 (CPU, ${threads} threads)`,
          medianMs: r.medianMs,
          samples: r.samples,
          figures: { 'tokens/s': batch / (r.medianMs / 1000), 'weights GB/s': weightGBs, 'stream GB/s': streamGBs, 'of stream': weightGBs / streamGBs },
        });
      } finally {
        cache.dispose();
      }
    }
  } finally {
    stream.dispose();
    model.dispose();
  }
  return records;
}

async function gpuRecords(ctx: Parameters<BenchSuite['run']>[0], skipGenerate: boolean): Promise<BenchRecord[]> {
  const card = info().cuda.devices[0]!;
  const { model, config, params } = qwen3Shaped(ctx.quick, 'cuda');
  const records: BenchRecord[] = [];
  const name = `Qwen3-0.6B-shaped${ctx.quick ? ' (4 layers)' : ''}`;
  {
    const [B, T] = ctx.quick ? [2, 512] : [4, 2048];
    const opt = new AdamW(model.parameters(), { lr: 1e-5 });
    const r = await ctx.time(trainStepOf(model, opt, B, T), { warmup: 1, minSamples: 3, minTimeMs: 0 });
    const tokensPerSec = (B * T) / (r.medianMs / 1000);
    // Matmul FLOPs: 6 per parameter per token (the tied embedding counts once, as the LM head); causal attention
    // 12 L T d / 2 per token (QK^T and PV, forward and backward).
    const flopsPerToken = 6 * params + 6 * config.layers * T * config.heads * config.headDim;
    const peak = bf16Peak(card.name);
    const figures: Record<string, number | string> = { 'tokens/s': tokensPerSec, 'TFLOP/s': (flopsPerToken * tokensPerSec) / 1e12 };
    if (peak) figures.MFU = (flopsPerToken * tokensPerSec) / peak;
    else figures.MFU = `unknown peak for ${card.name}`;
    // Where the step's time goes: three more steps, each phase closed by a synchronization (mean per step).
    const phases: Record<string, number> = {};
    const step = trainStepOf(model, opt, B, T, phases);
    for (let i = 0; i < 3; i++) step();
    for (const [k, v] of Object.entries(phases)) figures[k] = v / 3;
    Object.assign(figures, profiled(ctx, `${name} train step`, trainStepOf(model, opt, B, T)));
    opt.dispose();
    records.push({ suite: 'model', case: `${name} train step, ${B}x${T} tokens, bf16 + f32 master (${card.name})`, medianMs: r.medianMs, samples: r.samples, figures });
  }
  if (!skipGenerate) {
    const [batch, tokens] = ctx.quick ? [4, 32] : [16, 128];
    const prompt = Array.from({ length: 64 }, (_, i) => (i * 7919) % config.vocabSize);
    const prompts = Array.from({ length: batch }, () => prompt);
    const r = await ctx.time(() => { model.generate(prompts, { temperature: 1, maxTokens: tokens, stopIds: [], seed: 1 }); synchronize(); }, { warmup: 1, minSamples: 3, minTimeMs: 0 });
    records.push({
      suite: 'model',
      case: `${name} generate batch ${batch} x ${tokens} tokens after a 64-token prompt, temperature 1, bf16 (${card.name})`,
      medianMs: r.medianMs,
      samples: r.samples,
      figures: { 'tokens/s': (batch * tokens) / (r.medianMs / 1000), 'ms/step': r.medianMs / tokens, ...splitOrNote(() => decodeSplit(model, prompts, tokens, (line) => ctx.log(line))) },
    });
  }
  model.dispose();
  return records;
}

const dir = join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'stories260K');

const suite: BenchSuite = {
  name: 'model',
  description: 'training step beside PyTorch, a Qwen3-0.6B-shaped bf16 decode step against a memory stream, and stories260K generation tokens/s (CPU)',
  async run(ctx) {
    const records: BenchRecord[] = [];
    // MODEL_BENCH_SKIP=cpu,generate leaves out the CPU cases and the GPU decode (a short GPU loan: training only);
    // train and decode leave out the CPU training step and the CPU decode step.
    const skip = new Set((process.env.MODEL_BENCH_SKIP ?? '').split(','));
    if (skip.has('cpu')) ctx.log('MODEL_BENCH_SKIP: the CPU cases are left out');
    else {
      if (skip.has('train')) ctx.log('MODEL_BENCH_SKIP: the CPU training step is left out');
      else records.push(await trainStep(ctx, info().cpu.threads));
      if (skip.has('decode')) ctx.log('MODEL_BENCH_SKIP: the CPU decode cases are left out');
      else records.push(...(await cpuDecode(ctx, info().cpu.threads)));
    }
    if (info().cuda.devices.length > 0) records.push(...(await gpuRecords(ctx, skip.has('generate'))));
    else ctx.log('no CUDA device: the Qwen3-0.6B-shaped GPU cases are skipped');
    const modelDir = [dir, join(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K')].find((d) => existsSync(join(d, 'model.bin')));
    if (skip.has('cpu')) return records;
    if (!modelDir) {
      ctx.log('stories260K is absent (shared/models/stories260K): nothing to time');
      return records;
    }
    const { model, tokenizer } = loadModel(join(modelDir, 'model.bin'), { tokenizer: join(modelDir, 'tok512.bin'), device: 'cpu' });
    const threads = info().cpu.threads;
    const prompt = tokenizer!.encode('Once upon a time');
    for (const [batch, temperature, tokens] of [[1, 0, ctx.quick ? 64 : 256], [16, 1, ctx.quick ? 32 : 128]] as const) {
      const prompts = Array.from({ length: batch }, () => prompt);
      const r = await ctx.time(() => model.generate(prompts, { temperature, maxTokens: tokens, stopIds: [], seed: 1 }), { warmup: 1, minSamples: 3, minTimeMs: 0 });
      const generated = batch * tokens;
      records.push({
        suite: 'model',
        case: `stories260K generate batch ${batch} x ${tokens} tokens, temperature ${temperature} (${threads} threads)`,
        medianMs: r.medianMs,
        samples: r.samples,
        figures: { 'tokens/s': generated / (r.medianMs / 1000), 'ms/step': r.medianMs / tokens },
      });
    }
    model.dispose();
    return records;
  },
};

export default suite;
