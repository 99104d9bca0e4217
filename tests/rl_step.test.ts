// The RL update end to end on a toy task a tiny random policy can learn in a few steps: the reward is the fraction
// of response tokens equal to a target token that depends on the prompt. GRPO-style steps (group advantages by task,
// the fused policy loss over the response rows, backward, clipping, AdamW) must raise the mean reward well above
// chance; AEPO's switch is fed the rollouts' entropies.
import { describe, expect, it } from 'vitest';
import { AdamW, AepoController, CausalLM, rlStep, type ModelConfig, type RlPrompt } from '../src/index.js';
import { rng } from './helpers.js';

function tinyPolicy(seed: number): CausalLM {
  const config: ModelConfig = {
    architecture: 'llama', vocabSize: 12, dim: 16, hiddenDim: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 4, maxSeqLen: 32,
    ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-5, tiedEmbeddings: false, qkNorm: false, qkvBias: false,
  };
  const r = rng(seed);
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [12, 16]], ['model.norm.weight', [16]], ['lm_head.weight', [12, 16]]];
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}.`;
    shapes.push([`${p}input_layernorm.weight`, [16]], [`${p}post_attention_layernorm.weight`, [16]]);
    shapes.push([`${p}self_attn.q_proj.weight`, [16, 16]], [`${p}self_attn.k_proj.weight`, [8, 16]], [`${p}self_attn.v_proj.weight`, [8, 16]], [`${p}self_attn.o_proj.weight`, [16, 16]]);
    shapes.push([`${p}mlp.gate_proj.weight`, [32, 16]], [`${p}mlp.up_proj.weight`, [32, 16]], [`${p}mlp.down_proj.weight`, [16, 32]]);
  }
  const tensors = new Map(shapes.map(([n, s]) => {
    const size = s.reduce((a, b) => a * b, 1);
    return [n, { shape: s, data: Float32Array.from({ length: size }, () => (s.length === 1 ? 1 : (r() - 0.5) * 0.4)) }] as const;
  }));
  return CausalLM.fromHost({ config, tensors: new Map(tensors) }, { device: 'cpu' });
}

describe('rlStep', () => {
  it('raises the reward of a toy task from chance to most of the maximum in 25 updates', async () => {
    const model = tinyPolicy(3);
    const opt = new AdamW(model.parameters(), { lr: 2e-2, weightDecay: 0 });
    // prompt [1, a] asks for token 4 + (a mod 3) repeated; two task types
    const prompts: RlPrompt[] = [2, 3, 5, 6].map((a) => ({
      ids: [1, a],
      taskId: a % 2 === 0 ? 'even' : 'odd',
      score: (resp) => resp.filter((t) => t === 4 + (a % 3)).length / resp.length,
    }));
    const aepo = new AepoController({ entropyLow: 0.2, entropyHigh: 2.6 });
    const history: number[] = [];
    for (let step = 0; step < 25; step++) {
      const m = await rlStep(model, opt, prompts, { group: 8, maxTokens: 6, temperature: 1, topP: 1, stopIds: [], seed: step, aepo, clipNorm: 1 });
      history.push(m.rewardMean);
      expect(m.rollouts).toBe(32);
      expect(Number.isFinite(m.gradNorm) && m.gradNorm >= 0).toBe(true); // 0 once every group's rewards agree
      expect(m.batchEntropy).not.toBeNull();
      expect(Object.keys(m.rewardByTask).sort()).toEqual(['even', 'odd']);
    }
    const first = history.slice(0, 3).reduce((a, b) => a + b) / 3, last = history.slice(-3).reduce((a, b) => a + b) / 3;
    expect(first).toBeLessThan(0.35); // about 1/12 per token at the start
    expect(last).toBeGreaterThan(0.6);
    opt.dispose();
    model.dispose();
  }, 60_000);

  it('refuses bad input', async () => {
    const model = tinyPolicy(1);
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    await expect(rlStep(model, opt, [])).rejects.toThrow(/no prompts/);
    const skipped = await rlStep(model, opt, [{ ids: [1], taskId: 0, score: () => NaN }], { group: 2, maxTokens: 2 });
    expect(skipped.skipped).toMatch(/reward of rollout 0 is NaN/);
    expect(opt.step).toBe(0);
    await expect(rlStep(model, opt, [{ ids: [1], taskId: 0, score: () => 0 }], { group: 0 })).rejects.toThrow(/group/);
    // named before any sampling
    await expect(rlStep(model, opt, [{ ids: [1], taskId: 0 } as never])).rejects.toThrow(/rollout: prompts\[0\]\.score must be a function/);
    await expect(rlStep(model, opt, [{ ids: [1, 1.5], taskId: 0, score: () => 0 }])).rejects.toThrow(/rollout: prompts\[0\]\.ids\[1\] = number 1.5 is not a token id/);
    await expect(rlStep(model, opt, [{ ids: [1], score: () => 0 } as never])).rejects.toThrow(/prompts\[0\]\.taskId must be a string or a number/);
    await expect(rlStep(model, opt, [{ ids: [1], taskId: 0, score: () => '1' as never }], { group: 2, maxTokens: 2 })).rejects.toThrow(/prompts\[0\]\.score returned '1', not a number/);
    expect(opt.step).toBe(0);
    opt.dispose();
    model.dispose();
  });
});
