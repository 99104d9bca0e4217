// SCE model merging: the merged tensors must match a plain-loop float64 reference written here, a hand-computed
// example must come out as worked below (sign consensus on the unweighted sum, selection by variance, ties in
// element order), one model must pass through, bad inputs must be refused with the model and tensor named, and
// mergeFolders must write a loadable folder atomically, as must the `merge` command.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { registerMergeCommand } from '../src/cli/merge.js';
import type { ModelConfig } from '../src/model/config.js';
import { readHfFolder, writeHfFolder } from '../src/model/hf.js';
import { loadModel } from '../src/model/index.js';
import { initWeights } from '../src/model/init.js';
import type { HostWeights } from '../src/model/llama2c.js';
import { mergeFolders, mergeSce, sceTensor } from '../src/model/merge.js';
import { WordTokenizer } from '../src/tokenizer/word.js';
import { rng } from './helpers.js';

const config: ModelConfig = {
  architecture: 'qwen2', vocabSize: 23, dim: 16, hiddenDim: 24, layers: 2, heads: 4, kvHeads: 2, headDim: 4, maxSeqLen: 32,
  ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-6, tiedEmbeddings: false, qkNorm: false, qkvBias: true, bosId: 1, eosIds: [2],
};

function clone(w: HostWeights): HostWeights {
  return { config: { ...w.config }, tensors: new Map([...w.tensors].map(([k, t]) => [k, { shape: [...t.shape], data: t.data.slice() }])) };
}

/** The base plus noise of scale `scale` on a fraction `changed` of the elements (the rest left exactly as the base). */
function perturb(base: HostWeights, seed: number, scale = 0.05, changed = 1): HostWeights {
  const r = rng(seed);
  const w = clone(base);
  for (const t of w.tensors.values()) {
    for (let i = 0; i < t.data.length; i++) if (r() < changed) t.data[i] = t.data[i]! + scale * (2 * r() - 1);
  }
  return w;
}

/** SCE in the most direct form, float64 throughout. */
function referenceSce(base: Float32Array, models: Float32Array[], topK: number): number[] {
  const n = base.length, K = models.length;
  const delta: number[][] = [];
  for (let k = 0; k < K; k++) {
    const row: number[] = [];
    for (let i = 0; i < n; i++) row.push(models[k]![i]! - base[i]!);
    delta.push(row);
  }
  if (K > 1 && topK < 1) {
    const variance: number[] = [];
    for (let i = 0; i < n; i++) {
      let mean = 0;
      for (let k = 0; k < K; k++) mean += delta[k]![i]!;
      mean /= K;
      let s = 0;
      for (let k = 0; k < K; k++) s += (delta[k]![i]! - mean) ** 2;
      variance.push(s / K);
    }
    const ranked = [...Array(n).keys()].filter((i) => variance[i] !== 0).sort((a, b) => variance[b]! - variance[a]! || a - b);
    const keep = new Set(ranked.slice(0, Math.floor(ranked.length * topK)));
    for (let i = 0; i < n; i++) if (!keep.has(i)) for (let k = 0; k < K; k++) delta[k]![i] = 0;
  }
  const sq: number[] = [];
  for (let k = 0; k < K; k++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += delta[k]![i]! * delta[k]![i]!;
    sq.push(s);
  }
  let total = 0;
  for (const s of sq) total += s;
  const w = sq.map((s) => (total > 0 ? s / total : 1 / K));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = 0; k < K; k++) sum += delta[k]![i]!;
    const sign = sum >= 0 ? 1 : -1;
    let num = 0, den = 0;
    for (let k = 0; k < K; k++) {
      if (Math.sign(delta[k]![i]!) === sign) {
        num += w[k]! * delta[k]![i]!;
        den += w[k]!;
      }
    }
    out.push(base[i]! + (den > 0 ? num / den : 0));
  }
  return out;
}

function maxRelError(x: Float32Array, ref: number[]): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(x[i]! - ref[i]!) / Math.max(Math.abs(ref[i]!), 1e-6);
    if (!(e <= m)) m = e;
  }
  return m;
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'qwenlong-merge-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('mergeSce against the float64 reference', () => {
  const base = initWeights(config, { seed: 1, std: 0.3 });
  for (const K of [2, 3]) {
    for (const topK of [1, 0.5, 0.1]) {
      it(`${K} models, selectTopK ${topK}`, () => {
        // Some elements untouched by some models: zero deltas, zero-variance positions, partial agreement.
        const models = Array.from({ length: K }, (_, k) => perturb(base, 100 + k, 0.05, 0.75));
        const merged = mergeSce(base, models, { selectTopK: topK });
        expect(merged.config).toEqual(base.config);
        expect([...merged.tensors.keys()]).toEqual([...base.tensors.keys()]);
        for (const [name, t] of base.tensors) {
          const got = merged.tensors.get(name)!;
          expect(got.shape).toEqual(t.shape);
          const ref = referenceSce(t.data, models.map((m) => m.tensors.get(name)!.data), topK);
          expect(maxRelError(got.data, ref), name).toBeLessThanOrEqual(1e-6);
        }
      });
    }
  }

  it('selects exactly among many tied and tiny variances', () => {
    // Deltas from a small set of values (many equal variances, ties at every cut) mixed with subnormal-scale ones.
    const n = 6000;
    const r = rng(42);
    const b = new Float32Array(n), ms = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
    const levels = [0, 0.25, -0.25, 0.5, 1e-20, -3e-38, 1e-3];
    for (let i = 0; i < n; i++) {
      b[i] = r() < 0.5 ? 0 : 2 * r() - 1;
      for (const m of ms) m[i] = b[i]! + (r() < 0.8 ? levels[Math.floor(r() * levels.length)]! : 0.1 * (2 * r() - 1));
    }
    for (const topK of [0.9, 0.5, 0.37, 0.1, 0.01, 1e-4]) {
      const { data } = sceTensor('t', b, ms, { selectTopK: topK });
      const ref = referenceSce(b, ms, topK);
      for (let i = 0; i < n; i++) if (Math.abs(data[i]! - ref[i]!) > 1e-6 * Math.max(Math.abs(ref[i]!), 1e-30)) expect([topK, i, data[i]]).toEqual([topK, i, Math.fround(ref[i]!)]);
    }
  });

  it('leaves its inputs untouched', () => {
    const models = [perturb(base, 7), perturb(base, 8)];
    const before = [clone(base), ...models.map(clone)];
    mergeSce(base, models, { selectTopK: 0.3 });
    [base, ...models].forEach((w, j) => {
      for (const [name, t] of w.tensors) expect(t.data).toEqual(before[j]!.tensors.get(name)!.data);
    });
  });
});

describe('SCE by hand', () => {
  // base = [0.5, -1, 2, 0, 1]; task vectors
  //   δ1 = [1, -2,  3,    1,    0.5]   Σδ1² = 1 + 4 + 9 + 1    + 0.25 = 15.25
  //   δ2 = [2,  1, -1, -1.5,   -0.5]   Σδ2² = 4 + 1 + 1 + 2.25 + 0.25 =  8.5    total 23.75
  // Σδ per element = [3, -1, 2, -0.5, 0] → consensus signs [+, -, +, -, + (0 counts as +)]
  //   e0: both agree: (15.25·1 + 8.5·2) / 23.75 = 32.25 / 23.75
  //   e1: only δ1 (-2);  e2: only δ1 (3);  e4: only δ1 (0.5)
  //   e3: only δ2 (-1.5). (Signing by the weighted sum, 15.25·1 − 8.5·1.5 = +2.5, would keep δ1's +1 instead.)
  const base = new Float32Array([0.5, -1, 2, 0, 1]);
  const d1 = [1, -2, 3, 1, 0.5], d2 = [2, 1, -1, -1.5, -0.5];
  const m1 = new Float32Array(base.map((b, i) => b + d1[i]!));
  const m2 = new Float32Array(base.map((b, i) => b + d2[i]!));

  it('erase keeps the deltas that agree with the sign of the unweighted sum', () => {
    const { data, stats } = sceTensor('t', base, [m1, m2]);
    const expected = [0.5 + 32.25 / 23.75, -1 - 2, 2 + 3, 0 - 1.5, 1 + 0.5];
    expected.forEach((e, i) => expect(data[i]).toBeCloseTo(e, 6));
    expect(stats.weights[0]).toBeCloseTo(15.25 / 23.75, 12);
    expect(stats.weights[1]).toBeCloseTo(8.5 / 23.75, 12);
    expect(stats.selected).toBe(5);
    expect(stats.kept).toEqual([4, 2]);
  });

  it('select keeps the highest-variance elements', () => {
    // Population variance over 2 models, (δ1 − δ2)²/4: [0.25, 2.25, 4, 1.5625, 0.25].
    // selectTopK 0.4: floor(5·0.4) = 2 → e2 and e1. Then δ1 = [0, -2, 3, 0, 0], δ2 = [0, 1, -1, 0, 0],
    // weights 13/15 and 2/15; e1 (sum -1) keeps δ1's -2, e2 (sum 2) keeps δ1's 3; the rest stay the base.
    const { data, stats } = sceTensor('t', base, [m1, m2], { selectTopK: 0.4 });
    expect(Array.from(data)).toEqual([0.5, -3, 5, 0, 1]);
    expect(stats.selected).toBe(2);
    expect(stats.weights[0]).toBeCloseTo(13 / 15, 12);
    expect(stats.kept).toEqual([2, 0]);
  });

  it('ties at the cut go to the lower element index', () => {
    // selectTopK 0.8: 4 of 5; e0 and e4 tie at 0.25 for the last place: e0 is kept, e4 dropped.
    // Weights from δ1 = [1, -2, 3, 1, 0], δ2 = [2, 1, -1, -1.5, 0]: 15 and 8.25 (of 23.25).
    const { data, stats } = sceTensor('t', base, [m1, m2], { selectTopK: 0.8 });
    expect(stats.selected).toBe(4);
    expect(data[0]).toBeCloseTo(0.5 + (15 * 1 + 8.25 * 2) / 23.25, 6);
    expect(data[4]).toBe(1);
    expect(Array.from(data.subarray(1, 4))).toEqual([-3, 5, -1.5]);
  });

  it('positions where the models agree exactly (variance 0) are never selected', () => {
    const b = new Float32Array([0, 0, 0, 0]);
    const a = new Float32Array([0.5, 1, 0.25, 0]);
    const c = new Float32Array([0.5, -1, 0.25, 0]);
    // Variances [0, 1, 0, 0]: one non-zero, floor(1·0.99) = 0 → nothing kept; floor(1·1) → all (no selection).
    expect(Array.from(sceTensor('t', b, [a, c], { selectTopK: 0.99 }).data)).toEqual([0, 0, 0, 0]);
    // Without selection: e0 both +0.5 → 0.5; e1 sum 0 → + → a's 1; e2 0.25; e3 no delta.
    expect(Array.from(sceTensor('t', b, [a, c]).data)).toEqual([0.5, 1, 0.25, 0]);
  });

  it('no change at all gives the base', () => {
    const { data, stats } = sceTensor('t', base, [base.slice(), base.slice()], { selectTopK: 0.5 });
    expect(data).toEqual(base);
    expect(stats.weights).toEqual([0.5, 0.5]);
  });
});

describe('one model', () => {
  it('is passed through (no selection, weight 1), whatever selectTopK', () => {
    const base = initWeights(config, { seed: 2, std: 0.3 });
    const model = perturb(base, 9, 0.05, 0.6);
    for (const topK of [1, 0.1]) {
      const stats: number[][] = [];
      const merged = mergeSce(base, [model], { selectTopK: topK, onTensor: (_n, s) => stats.push(s.weights) });
      for (const [name, t] of model.tensors) expect(merged.tensors.get(name)!.data, name).toEqual(t.data);
      for (const w of stats) expect(w).toEqual([1]);
    }
  });
});

describe('selectTopK', () => {
  it('changes exactly floor(n·selectTopK) elements of each tensor', () => {
    const base = initWeights(config, { seed: 3, std: 0.3 });
    const models = [perturb(base, 11, 0.05), perturb(base, 12, 0.05)];
    for (const topK of [0.1, 0.25, 0.5]) {
      const selected = new Map<string, number>();
      const merged = mergeSce(base, models, { selectTopK: topK, onTensor: (name, s) => selected.set(name, s.selected) });
      for (const [name, t] of base.tensors) {
        const got = merged.tensors.get(name)!.data;
        let changed = 0;
        for (let i = 0; i < got.length; i++) if (got[i] !== t.data[i]) changed++;
        const expected = Math.floor(t.data.length * topK);
        expect(changed, name).toBe(expected);
        expect(selected.get(name), name).toBe(expected);
      }
    }
  });

  it('must be in (0, 1]', () => {
    const base = initWeights(config, { seed: 3 });
    const models = [perturb(base, 1), perturb(base, 2)];
    for (const bad of [0, -0.5, 1.5, Number.NaN, Infinity]) expect(() => mergeSce(base, models, { selectTopK: bad })).toThrow(/selectTopK must be a number in \(0, 1\]/);
  });
});

describe('input checks', () => {
  const base = initWeights(config, { seed: 4 });

  it('needs at least one model', () => {
    expect(() => mergeSce(base, [])).toThrow(/at least one model/);
  });

  it('refuses configs that differ', () => {
    const other = initWeights({ ...config, hiddenDim: 32 }, { seed: 4 });
    expect(() => mergeSce(base, [perturb(base, 1), other])).toThrow(/model 1 has config hiddenDim = 32, the base has 24/);
    const arch = perturb(base, 1);
    arch.config.architecture = 'llama';
    expect(() => mergeSce(base, [arch])).toThrow(/model 0 has config architecture = llama/);
  });

  it('refuses tensors that differ in shape, are missing or are extra', () => {
    const name = 'model.layers.1.mlp.up_proj.weight';
    const shaped = perturb(base, 1);
    shaped.tensors.set(name, { shape: [config.dim, config.hiddenDim], data: new Float32Array(config.dim * config.hiddenDim) });
    expect(() => mergeSce(base, [perturb(base, 2), shaped])).toThrow(/model 1 tensor model\.layers\.1\.mlp\.up_proj\.weight has shape \[16, 24\], the base has \[24, 16\]/);
    const missing = perturb(base, 1);
    missing.tensors.delete(name);
    expect(() => mergeSce(base, [missing])).toThrow(/model 0 has no tensor model\.layers\.1\.mlp\.up_proj\.weight/);
    const extra = perturb(base, 1);
    extra.tensors.set('lm_head.bias', { shape: [config.vocabSize], data: new Float32Array(config.vocabSize) });
    expect(() => mergeSce(base, [extra])).toThrow(/model 0 has a tensor lm_head\.bias the base does not have/);
  });

  it('refuses NaN and infinities, naming the tensor', () => {
    const nan = perturb(base, 1);
    nan.tensors.get('model.norm.weight')!.data[3] = Number.NaN;
    expect(() => mergeSce(base, [perturb(base, 2), nan])).toThrow(/model 1 tensor model\.norm\.weight has a non-finite value \(NaN\) at element 3/);
    const inf = clone(base);
    inf.tensors.get('model.embed_tokens.weight')!.data[0] = -Infinity;
    expect(() => mergeSce(inf, [perturb(base, 2)])).toThrow(/base tensor model\.embed_tokens\.weight has a non-finite value \(-Infinity\)/);
  });
});

describe('mergeFolders', () => {
  function setup() {
    const dir = tempDir();
    const base = initWeights(config, { seed: 6, std: 0.3 });
    const models = [perturb(base, 21, 0.05), perturb(base, 22, 0.05, 0.5)];
    writeHfFolder(join(dir, 'base'), base);
    models.forEach((m, i) => writeHfFolder(join(dir, `m${i}`), m));
    const words = Array.from({ length: config.vocabSize - 4 }, (_, i) => `w${i}`);
    new WordTokenizer(words).save(join(dir, 'base', 'words.json'));
    writeFileSync(join(dir, 'base', 'tokenizer_config.json'), '{"model_max_length": 32}\n');
    return { dir, base, models, paths: [join(dir, 'm0'), join(dir, 'm1')] };
  }

  it('writes a folder that reads back as the in-memory merge and loads as a working model', async () => {
    const { dir, base, models, paths } = setup();
    const out = join(dir, 'merged');
    // The base model sits in a folder named like a temporary of the output: it must be read, never removed.
    cpSync(join(dir, 'base'), `${out}.tmp`, { recursive: true });
    const seen: string[] = [];
    const r = mergeFolders({ method: 'sce', base: `${out}.tmp`, models: paths, out, selectTopK: 0.5, onTensor: (n) => seen.push(n) });
    expect(r.tensors).toBe(base.tensors.size);
    expect(seen.length).toBe(base.tensors.size);
    expect(r.copied.sort()).toEqual(['tokenizer_config.json', 'words.json']);
    expect(readdirSync(`${out}.tmp`).sort()).toEqual(readdirSync(join(dir, 'base')).sort());
    expect(readdirSync(dir).filter((n) => n.startsWith('merged.tmp-'))).toEqual([]);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer_config.json', 'words.json']);

    const expected = mergeSce(base, models, { selectTopK: 0.5 });
    const back = readHfFolder(out);
    expect(back.config).toEqual(base.config);
    for (const [name, t] of expected.tensors) expect(back.tensors.get(name)!.data, name).toEqual(t.data);

    const { model, tokenizer } = loadModel(out, { device: 'cpu', tokenizer: out });
    try {
      expect(tokenizer!.encode('w0 w1 w2').length).toBeGreaterThan(0);
      const logits = await model.forward([1, 5, 9, 4]).toFloat32Array();
      expect(logits.length).toBe(4 * config.vocabSize);
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it('refuses a missing input, an existing output and another method, and leaves nothing behind on failure', () => {
    const { dir, paths } = setup();
    const out = join(dir, 'out');
    expect(() => mergeFolders({ method: 'sce', base: join(dir, 'nope'), models: paths, out })).toThrow(/no base model at .*nope/);
    expect(() => mergeFolders({ method: 'sce', base: join(dir, 'base'), models: [paths[0]!, join(dir, 'gone')], out })).toThrow(/no model at .*gone \(model 1\)/);
    expect(() => mergeFolders({ method: 'sce', base: join(dir, 'base'), models: paths, out: join(dir, 'm0') })).toThrow(/already exists/);
    expect(() => mergeFolders({ method: 'ties' as 'sce', base: join(dir, 'base'), models: paths, out })).toThrow(/method 'ties' is not supported/);
    // A model of another size: refused, naming its path, and no output folder appears.
    const small = initWeights({ ...config, dim: 8, headDim: 2 }, { seed: 1 });
    writeHfFolder(join(dir, 'small'), small);
    expect(() => mergeFolders({ method: 'sce', base: join(dir, 'base'), models: [paths[0]!, join(dir, 'small')], out })).toThrow(/model 1 \(.*small\) has config dim = 8/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.startsWith('out.tmp'))).toEqual([]);
  });
});

describe('the merge command', () => {
  function program(): Command {
    const p = new Command();
    p.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    registerMergeCommand(p);
    return p;
  }

  it('merges end to end and prints a JSON summary', async () => {
    const dir = tempDir();
    const base = initWeights(config, { seed: 8, std: 0.3 });
    const models = [perturb(base, 31), perturb(base, 32)];
    writeHfFolder(join(dir, 'base'), base);
    models.forEach((m, i) => writeHfFolder(join(dir, `m${i}`), m));
    const out = join(dir, 'merged');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await program().parseAsync(['node', 'qwenlong', 'merge', '--method', 'sce', '--base', join(dir, 'base'), '--models', join(dir, 'm0'), join(dir, 'm1'), '--out', out, '--select-top-k', '0.25', '--json']);
      const summary = JSON.parse(String(log.mock.calls[0]![0])) as { method: string; selectTopK: number; models: number; tensors: number };
      expect(summary).toMatchObject({ method: 'sce', selectTopK: 0.25, models: 2, tensors: base.tensors.size });
    } finally {
      log.mockRestore();
    }
    const expected = mergeSce(base, models, { selectTopK: 0.25 });
    const back = readHfFolder(out);
    for (const [name, t] of expected.tensors) expect(back.tensors.get(name)!.data, name).toEqual(t.data);
  });

  it('gives clear errors for missing folders and bad options', async () => {
    const dir = tempDir();
    writeHfFolder(join(dir, 'base'), initWeights(config, { seed: 1 }));
    const run = (...args: string[]) => program().parseAsync(['node', 'qwenlong', 'merge', ...args]);
    await expect(run('--base', join(dir, 'none'), '--models', join(dir, 'base'), '--out', join(dir, 'o'))).rejects.toThrow(/--base: no model at/);
    await expect(run('--base', join(dir, 'base'), '--models', join(dir, 'none'), '--out', join(dir, 'o'))).rejects.toThrow(/--models: no model at/);
    await expect(run('--base', join(dir, 'base'), '--models', join(dir, 'base'), '--out', join(dir, 'base'))).rejects.toThrow(/--out: .* already exists/);
    await expect(run('--base', join(dir, 'base'), '--models', join(dir, 'base'), '--out', join(dir, 'o'), '--select-top-k', '2')).rejects.toThrow(/--select-top-k must be a number in \(0, 1\]/);
    await expect(run('--method', 'ties', '--base', join(dir, 'base'), '--models', join(dir, 'base'), '--out', join(dir, 'o'))).rejects.toThrow(/ties/);
    await expect(run('--base', join(dir, 'base'), '--out', join(dir, 'o'))).rejects.toThrow(/--models/);
  });
});
