/**
 * The policy engine on the CPU: a training step (forward, next-token loss through ops.policyLoss, backward, AdamW)
 * of a 4-layer, d = 256, 8-head model at 4 x 1024 tokens beside the same step in eager PyTorch (same run, same
 * threads); and stories260K (llama2.c) generation tokens/s, greedy batch 1 (as run.c) and sampled batch 16, through
 * the paged KV cache (skipped, with a line saying so, where the shared models folder is absent).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { info } from '../src/native/runtime.js';
import { AdamW, CausalLM, loadModel } from '../src/model/index.js';
import type { ModelConfig } from '../src/model/config.js';
import * as ops from '../src/ops/index.js';
import { torchBench } from '../src/bench/torch.js';
import type { BenchRecord, BenchSuite } from '../src/bench/types.js';
import { seededFloats } from '../src/bench/random.js';


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
  const ids = Int32Array.from(seededFloats(B * T, 99, 1), (x) => Math.floor((x + 1) * 1023.99));
  const targets = Int32Array.from(seededFloats(B * T, 98, 1), (x) => Math.floor((x + 1) * 1023.99));
  const cu = Array.from({ length: B + 1 }, (_, b) => b * T);
  const ones = new Float32Array(B * T).fill(1);
  const step = () => {
    model.zeroGrad();
    const hidden = model.forward(ids, { cuSeqlens: cu, train: true, returnHidden: true });
    const r = ops.policyLoss({ hidden, weight: model.lmHead, targets, advantages: ones, cuSeqlens: [0, B * T], aggregation: 'token-mean' });
    model.backward(r.dHidden!, r.dWeight!);
    opt.update(model.gradients());
    for (const t of [hidden, r.loss, r.nll, r.logp, r.entropy, r.dHidden!, r.dWeight!]) t.dispose();
  };
  const r = await ctx.time(step, { warmup: 1, minSamples: 3, minTimeMs: 0 });
  opt.dispose();
  model.dispose();
  const figures: Record<string, number | string> = { 'tokens/s': (B * T) / (r.medianMs / 1000) };
  const torch = torchBench([{ op: 'train_step', V: 2048, dim: 256, hidden: 688, layers: 4, heads: 8, B, T }], threads, ctx.quick);
  const t = torch?.[0];
  if (t) {
    figures['torch ms'] = t.medianMs;
    figures['torch tokens/s'] = (B * T) / (t.medianMs / 1000);
    figures['vs torch'] = t.medianMs / r.medianMs;
  }
  return { suite: 'model', case: `train step 4 layers d=256 8 heads, ${B}x${T} tokens, f32 (${threads} threads)`, medianMs: r.medianMs, samples: r.samples, figures };
}

const dir = join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'stories260K');

const suite: BenchSuite = {
  name: 'model',
  description: 'training step beside PyTorch, and stories260K generation tokens/s (CPU)',
  async run(ctx) {
    const records: BenchRecord[] = [];
    records.push(await trainStep(ctx, info().cpu.threads));
    const modelDir = [dir, join(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K')].find((d) => existsSync(join(d, 'model.bin')));
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
