/**
 * Fresh weights for a model trained from scratch: every matrix drawn from N(0, std²) (GPT-2's scheme: std 0.02,
 * the projections that write into the residual stream scaled by 1/√(2·layers)), RMSNorm weights 1, biases 0.
 * Deterministic in the seed.
 */
import { Random } from '../rl/random.js';
import { type ModelConfig, checkConfig } from './config.js';
import { expectedShapes } from './hf.js';
import type { HostWeights } from './llama2c.js';

export function initWeights(config: ModelConfig, opts: { seed?: number; std?: number } = {}): HostWeights {
  checkConfig(config, 'initWeights');
  const std = opts.std ?? 0.02;
  if (!(std > 0) || !Number.isFinite(std)) throw new RangeError('initWeights: std must be a positive number');
  const rng = new Random(opts.seed ?? 0);
  const normal = (): number => {
    // Box–Muller on two uniforms in (0, 1]
    const u = 1 - rng.next(), v = rng.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of expectedShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else if (!name.endsWith('.bias')) {
      const s = /o_proj|down_proj/.test(name) ? std / Math.sqrt(2 * config.layers) : std;
      for (let i = 0; i < data.length; i++) data[i] = normal() * s;
    }
    tensors.set(name, { shape, data });
  }
  return { config: { ...config }, tensors };
}
