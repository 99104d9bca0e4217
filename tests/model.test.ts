// The policy engine on llama2.c's stories260K (a real pretrained checkpoint, when the shared models folder is
// present): the tokenizer against a Python port of run.c, logits and 200-position greedy continuations against a
// float64 PyTorch forward (scripts/golden/model.py), generation through the KV cache against full recomputation,
// batching, sampling statistics, and corrupt files.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdamW, CausalLM, Llama2cTokenizer, PagedKVCache, Tensor, gatherRows, loadModel, ops, responseRows, scatterRows, type ModelConfig } from '../src/index.js';
import { parseLlama2c } from '../src/model/llama2c.js';
import { parseSafetensors } from '../src/model/safetensors.js';
import { sample, sampleMany } from '../src/model/model.js';
import { native } from '../src/native/addon.js';
import { forEachIsa, gpuRun, maxAbsError, roundToHalfReference } from './helpers.js';
import { Random } from '../src/rl/random.js';

const dir = join(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K');
const present = existsSync(join(dir, 'model.bin')) && existsSync(join(dir, 'tok512.bin'));
if (!present) console.log(`skipping the stories260K tests: ${dir} is absent`);

interface Golden {
  encode: { text: string; ids: number[] }[];
  prompt: number[];
  promptLogits: number[][];
  greedy: { prompt: number[]; ids: number[] }[];
}
const golden = JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', 'stories260k.json'), 'utf8')) as Golden;

/** max |x - ref| / max |ref|. */
function maxRelError(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  let err = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(x[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return err / scale;
}

function logSoftmax(row: ArrayLike<number>): number[] {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]!);
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i]! - m);
  return Array.from(row, (x) => x - m - Math.log(z));
}

describe.skipIf(!present)('stories260K', () => {
  const load = () => loadModel(join(dir, 'model.bin'), { tokenizer: join(dir, 'tok512.bin'), device: 'cpu' });

  it('the tokenizer encodes as run.c does and decodes back to the text', () => {
    const tok = Llama2cTokenizer.fromFile(join(dir, 'tok512.bin'), 512);
    for (const g of golden.encode) {
      expect(tok.encode(g.text), g.text).toEqual(g.ids);
      expect(tok.decode(tok.encode(g.text))).toBe(g.text);
    }
    expect(tok.encode('hi', { bos: false, eos: true }).at(-1)).toBe(2);
  });

  it('logits of every prompt position match a float64 PyTorch forward', async () => {
    const { model } = load();
    const logits = await model.forward(golden.prompt).toFloat32Array();
    const ref = golden.promptLogits.flat();
    expect(maxRelError(logits, ref)).toBeLessThan(1e-5);
    model.dispose();
  });

  it('greedy generation through the KV cache equals PyTorch token for token over 200 positions', () => {
    const { model, tokenizer } = load();
    for (const g of golden.greedy) {
      const [gen] = model.generate([g.prompt], { temperature: 0, maxTokens: 200 - g.prompt.length, stopIds: [] });
      expect([...g.prompt, ...gen!.tokens]).toEqual(g.ids);
      expect(gen!.finishReason).toBe('length');
    }
    expect(tokenizer!.decode(golden.greedy[0]!.ids)).toMatch(/^Once upon a time, there was a little girl named Lily\./);
    model.dispose();
  });

  it('the KV cache gives what recomputing the whole sequence gives, batched prompts what each alone gives', async () => {
    const { model, tokenizer } = load();
    const prompts = ['Tom had a red', 'The sun was hot and the', 'Once'].map((t) => tokenizer!.encode(t));
    const together = model.generate(prompts, { temperature: 0, maxTokens: 30, stopIds: [] });
    for (const [b, p] of prompts.entries()) {
      const [alone] = model.generate([p], { temperature: 0, maxTokens: 30, stopIds: [] });
      expect(together[b]!.tokens).toEqual(alone!.tokens);
      // recompute: the argmax of a full forward at every step
      const seq = [...p];
      for (let s = 0; s < 30; s++) {
        const logits = await model.forward(seq).toFloat32Array();
        const row = logits.subarray((seq.length - 1) * 512);
        let best = 0;
        for (let i = 1; i < 512; i++) if (row[i]! > row[best]!) best = i;
        seq.push(best);
      }
      expect(together[b]!.tokens).toEqual(seq.slice(p.length));
    }
    model.dispose();
  });

  it("extend's logits go into a caller's buffer when given one, the same values; a wrong buffer is refused by name", () => {
    const { model, tokenizer } = load();
    const c = model.config;
    const prompts = ['Tom had a red', 'The sun was hot and the'].map((t) => Int32Array.from(tokenizer!.encode(t)));
    const caches = [0, 1].map(() => new PagedKVCache({ layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, numBlocks: 16, dtype: model.dtype, device: model.device }));
    for (const cache of caches) [0, 1].forEach((id) => cache.allocate(id));
    const out = new Float32Array(3 * c.vocabSize).fill(NaN);
    const fresh = model.extend(caches[0]!, [0, 1], prompts);
    const into = model.extend(caches[1]!, [0, 1], prompts, out);
    expect(into.logits.buffer).toBe(out.buffer);
    expect(into.logits.length).toBe(2 * c.vocabSize);
    expect(Array.from(into.logits)).toEqual(Array.from(fresh.logits));
    expect(Number.isNaN(out[2 * c.vocabSize])).toBe(true); // past the rows it needs, out is untouched
    // a decode step into the same buffer, against one without
    const next = [Int32Array.of(5), Int32Array.of(7)];
    expect(Array.from(model.extend(caches[1]!, [0, 1], next, out).logits)).toEqual(Array.from(model.extend(caches[0]!, [0, 1], next).logits));
    const lengths = caches.map((cache) => cache.length(0));
    expect(() => model.extend(caches[1]!, [0, 1], next, new Float64Array(2 * c.vocabSize) as unknown as Float32Array)).toThrow(/'out' must be a Float32Array/);
    expect(() => model.extend(caches[1]!, [0, 1], next, new Float32Array(2 * c.vocabSize - 1))).toThrow(/'out' holds 1023 floats/);
    expect(caches.map((cache) => cache.length(0))).toEqual(lengths); // refused before the cache was touched
    for (const cache of caches) cache.dispose();
    model.dispose();
  });

  it('sampled tokens carry the log-probability and entropy of the tempered distribution; seeds repeat', async () => {
    const { model, tokenizer } = load();
    const p = tokenizer!.encode('Lily saw a');
    const opts = { temperature: 0.8, topP: 0.95, maxTokens: 20, seed: 7, stopIds: [] };
    const [a] = model.generate([p], opts);
    const [b] = model.generate([p], opts);
    expect(a!.tokens).toEqual(b!.tokens);
    const logits = await model.forward([...p, ...a!.tokens]).toFloat32Array();
    for (let s = 0; s < a!.tokens.length; s++) {
      const row = logits.subarray((p.length - 1 + s) * 512, (p.length + s) * 512);
      const lp = logSoftmax(Array.from(row, (x) => x / 0.8));
      expect(a!.logprobs[s]!).toBeCloseTo(lp[a!.tokens[s]!]!, 3);
      const entropy = -lp.reduce((e, l) => e + Math.exp(l) * l, 0);
      expect(a!.entropies[s]!).toBeCloseTo(entropy, 3);
    }
    const [k1] = model.generate([p], { temperature: 1, topK: 1, maxTokens: 10, stopIds: [] });
    const [g] = model.generate([p], { temperature: 0, maxTokens: 10, stopIds: [] });
    expect(k1!.tokens).toEqual(g!.tokens);
    model.dispose();
  });

  it('corrupt and truncated checkpoints and tokenizers are refused with the reason', () => {
    const bytes = readFileSync(join(dir, 'model.bin'));
    expect(() => parseLlama2c(bytes.subarray(0, 20))).toThrow(/shorter than its 28-byte header/);
    expect(() => parseLlama2c(bytes.subarray(0, bytes.length - 4))).toThrow(/truncated/);
    expect(() => parseLlama2c(Buffer.concat([bytes, Buffer.alloc(8)]))).toThrow(/beyond the weights/);
    const bad = Buffer.from(bytes);
    bad.writeInt32LE(7, 12); // n_heads = 7 does not divide dim 64
    expect(() => parseLlama2c(bad)).toThrow(/not a multiple of n_heads/);
    const nan = Buffer.from(bytes);
    nan.writeFloatLE(NaN, 28 + 4 * 100);
    expect(() => parseLlama2c(nan)).toThrow(/non-finite value/);
    const tok = readFileSync(join(dir, 'tok512.bin'));
    expect(() => new Llama2cTokenizer(tok.subarray(0, 100))).toThrow(/truncated|too few/);
    expect(() => new Llama2cTokenizer(tok, 1000)).toThrow(/holds 512 tokens, the model has 1000/);
    expect(() => loadModel(join(dir, 'nope.bin'))).toThrow(/no file/);
    expect(() => loadModel(join(dir, 'model.bin'), { dtype: 'f64' as never })).toThrow(/^loadModel: dtype must be 'f32', 'bf16' or 'f16', not 'f64'$/);
    if (!native().info().cuda.available) expect(() => loadModel(join(dir, 'model.bin'), { device: 'cuda' })).toThrow(/^loadModel: device: 'cuda' cannot be used here \(.+\); use 'cpu'$/);
  });

  it('the command line refuses a tokenizer with more ids than the model', () => {
    const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'generate', '--model', join(import.meta.dirname, '..', 'models', 'tiny-sft'), '--tokenizer', join(dir, 'tok512.bin')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--tokenizer .*tok512\.bin: the tokenizer has 512 tokens, more than the model's vocabulary of 64/);
  });

  it("loadModel finds the model's own tokenizer unless told otherwise", () => {
    // tok512.bin sits beside model.bin: found by the vocabulary size
    const { model, tokenizer } = loadModel(join(dir, 'model.bin'));
    expect(tokenizer?.decode(tokenizer.encode('Once upon a time', { bos: false })).trim()).toBe('Once upon a time');
    model.dispose();
    const none = loadModel(join(dir, 'model.bin'), { tokenizer: false });
    expect(none.tokenizer).toBeUndefined();
    none.model.dispose();
  });

  it('refuses bad generation arguments', () => {
    const { model } = load();
    expect(() => model.generate([], {})).toThrow(/non-empty array/);
    expect(() => model.generate([[1, 999]], {})).toThrow(/prompts\[0\]\[1\] = number 999 is not a token id \(an integer in \[0, 512\)\)/);
    // Each of these used to be converted silently into some other token.
    for (const bad of [NaN, 1.5, '7', null, 2 ** 32 + 5]) {
      expect(() => model.generate([[1, bad as number]], {})).toThrow(/CausalLM.generate: prompts\[0\]\[1\] = .* is not a token id/);
      expect(() => model.forward([bad as number])).toThrow(/CausalLM.forward: ids\[0\] = .* is not a token id/);
    }
    expect(() => model.generate([[1]], { seed: 'x' as never })).toThrow(/'seed' must be an integer, not 'x'/);
    expect(() => model.generate([[1]], { stopIds: 3 as never })).toThrow(/'stopIds' must be an array of token ids/);
    expect(() => model.generate([[1]], { topP: 0 })).toThrow(/topP/);
    expect(() => model.generate([[1]], { temperature: -1 })).toThrow(/temperature/);
    expect(() => model.forward([])).toThrow(/no tokens/);
    model.dispose();
    expect(() => model.forward([1])).toThrow(/disposed/);
  });
});

describe('sampling', () => {
  it('temperature 0 is argmax; top-k and top-p keep the head of the distribution', () => {
    const logits = Float32Array.from([0, 3, 1, 2]);
    const rng = new Random(1);
    expect(sample(logits, 0, 0, 1, rng).token).toBe(1);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[sample(logits, 1, 2, 1, rng).token]!++;
    expect(counts[0]! + counts[2]!).toBe(0);
    // p(1) / p(3) = e under top-2
    expect(counts[1]! / counts[3]!).toBeGreaterThan(2.4);
    expect(counts[1]! / counts[3]!).toBeLessThan(3.1);
    for (let i = 0; i < 200; i++) expect(sample(logits, 1, 0, 0.5, rng).token).toBe(1); // p(1) = 0.64 >= 0.5
    const s = sample(logits, 1, 0, 1, rng);
    const lp = logSoftmax(logits);
    expect(s.logprob).toBeCloseTo(lp[s.token]!, 10);
    expect(s.entropy).toBeCloseTo(-lp.reduce((e, l) => e + Math.exp(l) * l, 0), 10);
  });

  it('draws what a full sort of the vocabulary draws, for every top-k / top-p, on flat and peaked rows', () => {
    // The plain definition: probabilities in f64; with top-k or top-p the whole vocabulary sorted (probability
    // descending, index ascending), top-k, then the smallest prefix reaching top-p; one uniform walked along the order.
    const reference = (logits: Float32Array, temperature: number, topK: number, topP: number, u: number) => {
      const x = Array.from(logits, (l) => l / temperature), m = Math.max(...x);
      const e = x.map((v) => Math.exp(v - m)), z = e.reduce((a, b) => a + b, 0), p = e.map((v) => v / z);
      // Plain sampling walks the vocabulary in index order.
      let order = p.map((_, i) => i);
      if (topK > 0 || topP < 1) order.sort((a, b) => p[b]! - p[a]! || a - b);
      if (topK > 0) order = order.slice(0, topK);
      let mass = 0, keep = 0;
      while (keep < order.length && mass < topP) mass += p[order[keep++]!]!;
      if (topP < 1) order = order.slice(0, Math.max(1, keep));
      let r = u * order.reduce((a, i) => a + p[i]!, 0);
      for (const i of order) if ((r -= p[i]!) < 0) return { token: i, p };
      return { token: order.at(-1)!, p };
    };
    const gen = new Random(7);
    let checked = 0;
    for (const V of [1, 5, 1000, 20000]) {
      for (const scale of [0.01, 1, 8, 40]) {
        // Ties on purpose: logits on a coarse grid.
        const logits = Float32Array.from({ length: V }, () => Math.round(gen.next() * 20) * scale / 4);
        for (const [temperature, topK, topP] of [[1, 0, 0.3], [1, 0, 0.95], [0.7, 5, 1], [1, 3000, 0.999], [1.3, 1, 0.5], [1, 0, 1]] as const) {
          for (let draw = 0; draw < 3; draw++) {
            const seed = 100 * checked + draw;
            const got = sample(logits, temperature, topK, topP, new Random(seed));
            const want = reference(logits, temperature, topK, topP, new Random(seed).next());
            expect(got.token, `V ${V} scale ${scale} T ${temperature} k ${topK} p ${topP}`).toBe(want.token);
            expect(got.logprob).toBeCloseTo(Math.log(want.p[want.token]!), 10);
            const h = want.p.reduce((a, q) => (q > 0 ? a - q * Math.log(q) : a), 0);
            expect(Math.abs(got.entropy - h)).toBeLessThan(1e-9 * Math.max(1, h));
          }
          checked++;
        }
      }
    }
  });
});

describe('batched sampling', () => {
  it('sampleMany draws what sample draws row by row (one shared generator, mixed options), natively where it can', () => {
    const gen = new Random(11);
    forEachIsa((isa) => {
      for (const V of [1, 3, 517, 30011, 151936]) {
        const rows = 9;
        const logits = Float32Array.from({ length: rows * V }, () => (gen.next() - 0.5) * 12);
        if (V > 1) logits[2 * V] = Number.NEGATIVE_INFINITY; // a token that can never be drawn
        const options = [[1, 0, 1], [0, 0, 1], [0.7, 0, 1], [1, 5, 1], [1.3, 0, 0.8], [1, 0, 1], [0, 0, 1], [2, 0, 1], [0.7, 0, 1]] as const;
        const requests = options.map(([temperature, topK, topP], row) => ({ row: rows - 1 - row, temperature, topK, topP }));
        for (const seed of [1, 2, 3]) {
          const a = new Random(seed), b = new Random(seed);
          const batch = sampleMany(logits, V, requests.map((r) => ({ ...r, rng: a })));
          requests.forEach((r, i) => {
            const one = sample(logits.subarray(r.row * V, (r.row + 1) * V), r.temperature, r.topK, r.topP, b);
            expect(batch[i]!.token, `${isa} V ${V} row ${r.row}`).toBe(one.token);
            expect(Math.abs(batch[i]!.logprob - one.logprob)).toBeLessThan(1e-12 * Math.max(1, Math.abs(one.logprob)));
            expect(Math.abs(batch[i]!.entropy - one.entropy)).toBeLessThan(1e-12 * Math.max(1, one.entropy));
          });
          expect(a.next()).toBe(b.next()); // both generators advanced alike
        }
      }
    });
  });

  it('the native sampler: every ISA gives the same bits; rows of -inf, NaN, infinities and tiny temperatures as the reference does', () => {
    const gen = new Random(3);
    const V = 1000;
    const rows: Float32Array[] = [
      Float32Array.from({ length: V }, () => (gen.next() - 0.5) * 40),
      Float32Array.from({ length: V }, (_, i) => (i % 7 === 0 ? Number.NEGATIVE_INFINITY : gen.next() * 5)), // some never drawn
      new Float32Array(V).fill(Number.NEGATIVE_INFINITY), // nothing finite
      Float32Array.from({ length: V }, (_, i) => (i === 500 ? Number.POSITIVE_INFINITY : 1)),
      Float32Array.from({ length: V }, (_, i) => (i === 3 ? Number.NaN : 1)),
      Float32Array.from({ length: V }, (_, i) => (i < 900 ? -800 : 0)), // terms below exp(-708)
      new Float32Array(V).fill(2), // flat: every draw walks the blocks
    ];
    const logits = new Float32Array(rows.length * V);
    rows.forEach((r, i) => logits.set(r, i * V));
    for (const temperature of [1, 0, 0.37, 1e-30]) {
      const results: string[] = [];
      forEachIsa((isa) => {
        const rng = new Random(9), ref = new Random(9);
        const picks = sampleMany(logits, V, rows.map((_, row) => ({ row, temperature, topK: 0, topP: 1, rng })));
        picks.forEach((pick, row) => {
          const one = sample(logits.subarray(row * V, (row + 1) * V), temperature, 0, 1, ref);
          expect(pick.token, `${isa} T ${temperature} row ${row}`).toBe(one.token);
          for (const [got, want] of [[pick.logprob, one.logprob], [pick.entropy, one.entropy]] as const) {
            if (Number.isFinite(want)) expect(Math.abs(got - want), `${isa} T ${temperature} row ${row}`).toBeLessThan(1e-12 * Math.max(1, Math.abs(want)));
            else expect(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)), `${isa} T ${temperature} row ${row}: ${got} vs ${want}`).toBe(true);
          }
        });
        results.push(JSON.stringify(picks));
      });
      expect(new Set(results).size, `T ${temperature}: every ISA the same bits`).toBe(1);
    }
  });

  it('the native sampler refuses malformed arguments with the argument named', () => {
    const l = new Float32Array(8), f = (n: number) => new Float64Array(n), i = (n: number) => new Int32Array(n);
    const call = (...args: unknown[]) => (native() as unknown as { sampleRows: (...a: unknown[]) => void }).sampleRows(...args);
    expect(() => call(l, 3, i(1), 1, f(1), i(1), f(1), f(1))).toThrow(/not a multiple of vocab/);
    expect(() => call(l, 4, Int32Array.of(2), 1, f(1), i(1), f(1), f(1))).toThrow(/rows\[0\] = 2 is outside \[0, 2\)/);
    expect(() => call(l, 4, i(1), 1, Float64Array.of(1), i(1), f(1), f(1))).toThrow(/uniforms\[0\]/);
    expect(() => call(l, 4, i(2), 1, f(2), i(1), f(2), f(2))).toThrow(/'tokens' has 1/);
    expect(() => call(new Float64Array(8), 4, i(1), 1, f(1), i(1), f(1), f(1))).toThrow(/'logits' must be a Float32Array/);
    expect(() => call(l, 4, i(1), -1, f(1), i(1), f(1), f(1))).toThrow(/temperature/);
    expect(() => call(l, 0, i(1), 1, f(1), i(1), f(1), f(1))).toThrow(/vocab/);
    // Outputs that share memory with the inputs: the row indices are read once, checked, then sampled.
    const V = 1000, rows = 64, logits = Float32Array.from({ length: 2 * V }, (_, k) => Math.sin(k));
    const shared = new Int32Array(rows); // rows[k] = k % 2, and the tokens land on top of them
    shared.forEach((_, k) => (shared[k] = k % 2));
    const u = Float64Array.from({ length: rows }, (_, k) => (k + 0.5) / rows);
    const lp = f(rows), ent = f(rows);
    call(logits, V, shared, 1, u, shared, lp, ent);
    for (let k = 0; k < rows; k++) {
      expect(shared[k]).toBeGreaterThanOrEqual(0);
      expect(shared[k]).toBeLessThan(V);
      expect(Number.isFinite(lp[k]!) && Number.isFinite(ent[k]!)).toBe(true);
    }
  });
});

describe.runIf(present && gpuRun())('stories260K on CUDA (bf16)', () => {
  it('logits match the float64 forward within bf16 rounding; generation runs through the CUDA KV cache', async () => {
    const { model, tokenizer } = loadModel(join(dir, 'model.bin'), { tokenizer: join(dir, 'tok512.bin'), device: 'cuda', dtype: 'bf16' });
    const logits = await model.forward(golden.prompt).toFloat32Array();
    const ref = golden.promptLogits.flat();
    expect(maxRelError(logits, ref)).toBeLessThan(5e-2);
    const [g] = model.generate([tokenizer!.encode('Once upon a time')], { temperature: 0, maxTokens: 40, stopIds: [] });
    expect(g!.tokens.length).toBe(40);
    expect(g!.logprobs.every((x) => Number.isFinite(x) && x <= 0)).toBe(true);
    model.dispose();
  });
});

interface TinyGolden {
  config: ModelConfig;
  lens: number[];
  ids: number[];
  R: number[];
  logits: number[];
  params: Record<string, { shape: number[]; data: number[] }>;
  grads: Record<string, number[]>;
  targets: number[];
  adamLosses: number[];
}

const tinyGolden = (variant: string) => JSON.parse(readFileSync(join(import.meta.dirname, 'goldens', `tiny_${variant}.json`), 'utf8')) as TinyGolden;

/**
 * Next-token training on a tiny golden's two packed sequences (the policy loss with advantage 1, token-mean over all
 * targets, as cross_entropy's mean): each step's loss, and the first step's gradients when asked.
 */
async function trainTiny(model: CausalLM, opt: AdamW, g: TinyGolden, steps: number, keepGrads = false) {
  const T = g.ids.length, cuSeqlens = [0, g.lens[0]!, T];
  const losses: number[] = [];
  const grads = new Map<string, Float32Array>();
  for (let step = 0; step < steps; step++) {
    model.zeroGrad();
    const hidden = model.forward(g.ids, { cuSeqlens, train: true, returnHidden: true });
    const r = ops.policyLoss({ hidden, weight: model.lmHead, targets: g.targets, advantages: new Float32Array(T).fill(1), cuSeqlens: [0, T], aggregation: 'token-mean' });
    losses.push(await r.nll.item());
    model.backward(r.dHidden!, r.dWeight!);
    if (keepGrads && step === 0) for (const [name, t] of model.gradients()) grads.set(name, await t.toFloat32Array());
    opt.update(model.gradients());
    for (const t of [hidden, r.loss, r.nll, r.logp, r.entropy, r.dHidden!, r.dWeight!]) t.dispose();
  }
  return { losses, grads };
}

/** trainTiny on a fresh model from the golden's parameters (AdamW lr 1e-2, decay 0.01) on a device, in a dtype. */
async function trainFresh(g: TinyGolden, device: 'cpu' | 'cuda', dtype: 'f32' | 'bf16', steps: number, keepGrads = false) {
  const tensors = new Map(Object.entries(g.params).map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]));
  const model = CausalLM.fromHost({ config: g.config, tensors }, { device, dtype });
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
  try {
    return await trainTiny(model, opt, g, steps, keepGrads);
  } finally {
    opt.dispose();
    model.dispose();
  }
}

describe.each(['llama', 'qwen3', 'qwen2'])('training forward and backward against PyTorch autograd (tiny random %s, two packed sequences)', (variant) => {
  it('logits and the gradient of every parameter match float64 autograd', async () => {
    const g = tinyGolden(variant);
    const tensors = new Map(Object.entries(g.params).map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]));
    const model = CausalLM.fromHost({ config: g.config, tensors }, { device: 'cpu' });
    const T = g.ids.length, V = g.config.vocabSize;
    const cuSeqlens = [0, g.lens[0]!, T];
    const hidden = model.forward(g.ids, { cuSeqlens, train: true, returnHidden: true });
    const R = Tensor.from(g.R, [T, V], { device: 'cpu' });
    const logits = ops.matmul(hidden, model.lmHead, { transB: true });
    const rel = maxRelError;
    expect(rel(await logits.toFloat32Array(), g.logits)).toBeLessThan(1e-5);
    const dHidden = ops.matmul(R, model.lmHead);
    const dLmHead = ops.matmul(R, hidden, { transA: true });
    model.backward(dHidden, dLmHead);
    const grads = model.gradients();
    expect([...grads.keys()].sort()).toEqual(Object.keys(g.grads).sort());
    for (const [name, ref] of Object.entries(g.grads)) expect(rel(await grads.get(name)!.toFloat32Array(), ref), name).toBeLessThan(2e-5);
    expect(() => model.backward(dHidden, dLmHead)).toThrow(/no training forward/);
    // a second step accumulates; zeroGrad clears
    const h2 = model.forward(g.ids, { cuSeqlens, train: true, returnHidden: true });
    model.backward(dHidden, dLmHead);
    const twice = await model.gradients().get('model.layers.0.self_attn.q_proj.weight')!.toFloat32Array();
    expect(rel(twice, g.grads['model.layers.0.self_attn.q_proj.weight']!.map((x) => 2 * x))).toBeLessThan(2e-5);
    model.zeroGrad();
    expect((await model.gradients().get('model.norm.weight')!.toFloat32Array()).every((x) => x === 0)).toBe(true);
    // activation recompute: the same gradients, bit for bit
    const h3 = model.forward(g.ids, { cuSeqlens, train: true, recompute: true, returnHidden: true });
    model.backward(dHidden, dLmHead);
    for (const [name, ref] of Object.entries(g.grads)) expect(rel(await model.gradients().get(name)!.toFloat32Array(), ref), `${name} (recompute)`).toBeLessThan(2e-5);
    model.zeroGrad();
    const h4 = model.forward(g.ids, { cuSeqlens, train: true, returnHidden: true });
    model.backward(dHidden, dLmHead);
    const plain = await model.gradients().get('model.layers.1.mlp.up_proj.weight')!.toFloat32Array();
    model.zeroGrad();
    const h5 = model.forward(g.ids, { cuSeqlens, train: true, recompute: true, returnHidden: true });
    model.backward(dHidden, dLmHead);
    expect(Array.from(await model.gradients().get('model.layers.1.mlp.up_proj.weight')!.toFloat32Array())).toEqual(Array.from(plain));
    for (const t of [h3, h4, h5]) t.dispose();
    for (const t of [hidden, R, logits, dHidden, dLmHead, h2]) t.dispose();
    model.dispose();
  });

  it('five AdamW steps on the next-token loss (the policy-loss op with advantage 1) track PyTorch', async () => {
    const g = tinyGolden(variant);
    const tensors = new Map(Object.entries(g.params).map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]));
    const model = CausalLM.fromHost({ config: g.config, tensors }, { device: 'cpu' });
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
    const { losses } = await trainTiny(model, opt, g, 5);
    for (let i = 0; i < 5; i++) expect(Math.abs(losses[i]! - g.adamLosses[i]!) / g.adamLosses[i]!, `step ${i}`).toBeLessThan(1e-4);
    const state = await opt.state();
    expect(state.step).toBe(5);
    const again = new AdamW(model.parameters(), { lr: 1e-2 });
    again.loadState(state);
    expect(again.step).toBe(5);
    expect(() => again.loadState({ step: 1, m: new Map(), v: new Map() })).toThrow(/missing or has the wrong size/);
    // through a file: a third optimizer from opt's saved state continues exactly as opt does
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-opt-'));
    try {
      await opt.saveState(join(dir, 'adamw.safetensors'));
      const third = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
      third.loadStateFile(join(dir, 'adamw.safetensors'));
      const s3 = await third.state();
      expect(s3.step).toBe(5);
      for (const [name, data] of state.m) expect(Array.from(s3.m.get(name)!)).toEqual(Array.from(data));
      third.dispose();
      writeFileSync(join(dir, 'bad.safetensors'), Buffer.alloc(4));
      expect(() => again.loadStateFile(join(dir, 'bad.safetensors'))).toThrow(/shorter than its 8-byte header/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    opt.dispose();
    again.dispose();
    model.dispose();
  });
});

describe('AdamW on half-precision parameters', () => {
  it('keeps f32 master weights: the master follows the f32 update exactly, the parameter is its rounding', async () => {
    const n = 257, lr = 1e-4, rng = new Random(7);
    // Even elements near 1 (bf16 spacing 2^-7, far above a step of ~lr), odd ones near 0.01 (spacing 2^-14).
    const init = Float32Array.from({ length: n }, (_, i) => roundToHalfReference((i % 2 ? 0.01 : 1) * (1 + rng.next()), 'bf16'));
    const p = Tensor.from(init, [n], { dtype: 'bf16', device: 'cpu' });
    const ref = Tensor.from(init, [n], { device: 'cpu' });
    const [rm, rv] = [Tensor.zeros([n], { device: 'cpu' }), Tensor.zeros([n], { device: 'cpu' })];
    const opt = new AdamW(new Map([['w', p]]), { lr, weightDecay: 0.01 });
    for (let step = 1; step <= 5; step++) {
      const g = Tensor.from(Float32Array.from({ length: n }, () => rng.next() - 0.5), [n], { device: 'cpu' });
      opt.update(new Map([['w', g]]));
      ops.adamw(ref, g, rm, rv, { lr, step, weightDecay: 0.01 });
      g.dispose();
    }
    const state = await opt.state();
    const master = state.master!.get('w')!, want = await ref.toFloat32Array(), got = await p.toFloat32Array();
    expect(Array.from(master)).toEqual(Array.from(want));
    // Near 1 the master has moved while its rounding has not (a bf16-only update would have lost those steps);
    // near 0.01 the parameter itself has moved.
    expect(master.some((x, i) => i % 2 === 0 && Math.abs(x - init[i]!) > 2e-4)).toBe(true);
    expect(got.some((x, i) => i % 2 === 1 && x !== init[i])).toBe(true);
    for (let i = 0; i < n; i++) expect(got[i]).toBe(roundToHalfReference(master[i]!, 'bf16'));
    // The master travels with the state: another optimizer over another bf16 tensor takes it and rounds it in.
    const q = Tensor.from(new Float32Array(n), [n], { dtype: 'bf16', device: 'cpu' });
    const again = new AdamW(new Map([['w', q]]), { lr });
    again.loadState(state);
    expect(Array.from(await q.toFloat32Array())).toEqual(Array.from(got));
    expect(Array.from((await again.state()).master!.get('w')!)).toEqual(Array.from(master));
    expect(() => new AdamW(new Map([['ids', Tensor.from([1, 2], [2], { dtype: 'i32', device: 'cpu' })]]), { lr })).toThrow(/parameter ids is i32, not a float tensor/);
    for (const t of [p, ref, rm, rv, q]) t.dispose();
    opt.dispose();
    again.dispose();
  });
});

describe('training in bf16 with f32 master weights', () => {
  it('a tiny Qwen3 trained in bf16 follows the f32 run: the policy loss\'s f32 dHidden is cast, AdamW keeps masters', async () => {
    const g = tinyGolden('qwen3');
    const full = (await trainFresh(g, 'cpu', 'f32', 8)).losses, half = (await trainFresh(g, 'cpu', 'bf16', 8)).losses;
    expect(full[7]!).toBeLessThan(full[0]! * 0.8);
    for (let i = 0; i < 8; i++) expect(Math.abs(half[i]! - full[i]!) / full[i]!, `step ${i}: ${half[i]} vs ${full[i]}`).toBeLessThan(2e-2);
  });

  it.runIf(gpuRun())('on CUDA: f32 gradients equal the CPU\'s, and bf16 training follows the CPU f32 run', async () => {
    const g = tinyGolden('qwen3');
    const ref = await trainFresh(g, 'cpu', 'f32', 8, true), gpu = await trainFresh(g, 'cuda', 'f32', 1, true), half = await trainFresh(g, 'cuda', 'bf16', 8);
    for (const [name, want] of ref.grads) {
      const scale = Math.max(1e-6, ...Array.from(want, Math.abs));
      expect(maxAbsError(gpu.grads.get(name)!, want) / scale, name).toBeLessThan(1e-3);
    }
    for (let i = 0; i < 8; i++) expect(Math.abs(half.losses[i]! - ref.losses[i]!) / ref.losses[i]!, `step ${i}`).toBeLessThan(3e-2);
  });
});

describe('response rows (the one-token shift) for the policy loss', () => {
  it('the loss on gathered response rows, scattered back, equals the loss over all rows with prompts masked', async () => {
    const g = tinyGolden('llama');
    const T = g.ids.length, cu = [0, g.lens[0]!, T], prompts = [3, 5];
    const hidden = Tensor.from(Float32Array.from({ length: T * 32 }, (_, i) => Math.sin(i * 0.7) * 0.3), [T, 32], { device: 'cpu' });
    const head = Tensor.from(Float32Array.from({ length: 40 * 32 }, (_, i) => Math.cos(i * 0.3) * 0.3), [40, 32], { device: 'cpu' });
    const r = responseRows(g.ids, cu, prompts);
    expect(Array.from(r.cuSeqlens)).toEqual([0, g.lens[0]! - 3, T - 3 - 5]);
    expect(Array.from(r.rows.slice(0, 2))).toEqual([2, 3]);
    expect(Array.from(r.targets.slice(0, 2))).toEqual([g.ids[3], g.ids[4]]);
    const adv = new Float32Array(r.rows.length).fill(0.5);
    const sub = gatherRows(hidden, r.rows);
    const a = ops.policyLoss({ hidden: sub, weight: head, targets: r.targets, advantages: adv, cuSeqlens: r.cuSeqlens, aggregation: 'token-mean' });
    const dFull = scatterRows(a.dHidden!, r.rows, T);
    // the same through every row: targets shifted by one, prompt rows and each sequence's last row masked out
    const targets = new Int32Array(T), mask = new Float32Array(T), advFull = new Float32Array(T).fill(0.5);
    for (let i = 0; i < r.rows.length; i++) {
      targets[r.rows[i]!] = r.targets[i]!;
      mask[r.rows[i]!] = 1;
    }
    const b = ops.policyLoss({ hidden, weight: head, targets, advantages: advFull, cuSeqlens: [0, T], tokenMask: mask, aggregation: 'token-mean' });
    expect(await a.loss.item()).toBeCloseTo(await b.loss.item(), 6);
    const x = await dFull.toFloat32Array(), y = await b.dHidden!.toFloat32Array();
    for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThan(1e-6);
    const wx = await a.dWeight!.toFloat32Array(), wy = await b.dWeight!.toFloat32Array();
    for (let i = 0; i < wx.length; i++) expect(Math.abs(wx[i]! - wy[i]!)).toBeLessThan(1e-6);
    expect(() => responseRows(g.ids, cu, [0, 5])).toThrow(/prompt length 0 of sequence 0/);
  });
});

describe('Hugging Face folders and safetensors', () => {
  const tiny = (variant = 'llama') => {
    const g = tinyGolden(variant);
    const tensors = new Map(Object.entries(g.params).map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]));
    return { g, model: CausalLM.fromHost({ config: { ...g.config, bosId: 1, eosIds: [2] }, tensors }, { device: 'cpu' }) };
  };

  it.each(['llama', 'qwen3', 'qwen2'])('%s: save then load gives the same logits (llama2.c-style interleaved RoPE rows are permuted to Hugging Face pairs)', async (variant) => {
    const { g, model } = tiny(variant);
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-hf-'));
    try {
      await model.save(dir);
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(cfg).toMatchObject({ model_type: variant, hidden_size: 16, num_key_value_heads: 2, tie_word_embeddings: g.config.tiedEmbeddings });
      const { model: back } = loadModel(dir, { device: 'cpu' });
      expect(back.config.ropeConvention).toBe('half');
      const a = await model.forward(g.ids, { cuSeqlens: [0, g.lens[0]!, g.ids.length] }).toFloat32Array();
      const b = await back.forward(g.ids, { cuSeqlens: [0, g.lens[0]!, g.ids.length] }).toFloat32Array();
      let err = 0;
      for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i]! - b[i]!));
      expect(err).toBeLessThan(1e-5);
      back.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      model.dispose();
    }
  });

  it('refuses corrupt files and mismatched configs with the reason', async () => {
    const { model } = tiny();
    const dir = mkdtempSync(join(tmpdir(), 'qwenlong-hf-'));
    try {
      await model.save(dir);
      const st = readFileSync(join(dir, 'model.safetensors'));
      expect(() => parseSafetensors(st.subarray(0, 4))).toThrow(/shorter than its 8-byte header/);
      expect(() => parseSafetensors(st.subarray(0, st.length - 16))).toThrow(/data_offsets/);
      const badJson = Buffer.from(st);
      badJson[8] = 0x78; // 'x' where the header's '{' was
      expect(() => parseSafetensors(badJson)).toThrow(/header is not JSON/);
      const huge = Buffer.from(st);
      huge.writeBigUInt64LE(BigInt(st.length), 0);
      expect(() => parseSafetensors(huge)).toThrow(/runs past the file/);
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 50 }));
      expect(() => loadModel(dir)).toThrow(/mlp.gate_proj.weight has shape \[32, 16\], config.json implies \[50, 16\]/);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'gpt2' }));
      expect(() => loadModel(dir)).toThrow(/model_type 'gpt2' is not supported/);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'qwen3' }));
      expect(() => loadModel(dir)).toThrow(/no tensor model.layers.0.self_attn.q_norm.weight/);
      writeFileSync(join(dir, 'config.json'), '{ not json');
      expect(() => loadModel(dir)).toThrow(/config.json is not JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      model.dispose();
    }
  });
});
