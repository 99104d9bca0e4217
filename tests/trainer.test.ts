// The recipe's trainer: the loop learns, a killed run resumes bitwise, bad steps never touch the weights, bad configs
// and data get clear errors, the tiny worlds' answers follow from their facts, the report renders.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, CausalLM, type ModelConfig } from '../src/index.js';
import { evaluate } from '../src/eval/evaluate.js';
import { renderReport, writeReport } from '../src/eval/report.js';
import { writeHfFolder } from '../src/model/hf.js';
import { initWeights } from '../src/model/init.js';
import { makeTrainConfig } from '../src/rl/config.js';
import { DataError, promptIds, readItems, scoreResponse, type RecipeItem } from '../src/rl/data.js';
import { Random } from '../src/rl/random.js';
import { policyUpdate, rollout } from '../src/rl/step.js';
import { WORLD_TASKS, worldEpisode, worldTokenizer } from '../src/rl/tiny_world.js';
import { passRates, train } from '../src/rl/trainer.js';
import { WordTokenizer } from '../src/tokenizer/word.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'qwenlong-train-'));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

// A toy task a tiny random model learns in a few dozen steps: "say X" → X.
const toyTok = new WordTokenizer(['say', 'red', 'blue', 'green', 'gold', ':']);
const toyItems: RecipeItem[] = ['red', 'blue', 'green', 'gold'].flatMap((c, i) => [
  { id: `${c}-a`, task: i < 2 ? 'warm' : 'cool', prompt: `say ${c} :`, answer: c },
  { id: `${c}-b`, task: i < 2 ? 'warm' : 'cool', prompt: `say : say ${c} :`, answer: c },
]);
function toyHost(seed: number) {
  const config: ModelConfig = {
    architecture: 'llama', vocabSize: toyTok.vocabSize, dim: 32, hiddenDim: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, maxSeqLen: 32,
    ropeTheta: 10000, ropeConvention: 'half', rmsEps: 1e-5, tiedEmbeddings: false, qkNorm: false, qkvBias: false, bosId: 1, eosIds: [2],
  };
  return initWeights(config, { seed, std: 0.1 });
}
const toyConfig = (over = {}) => makeTrainConfig({ algo: 'grpo', group: 8, batch: 8, lr: 1e-2, weightDecay: 0, stages: [{ maxInput: 16, maxOutput: 2, steps: 40 }], checkpointEvery: 5, temperature: 1, topP: 1, ...over });
const strip = (r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).filter(([k]) => !/PerS|Seconds/.test(k)));

describe('train', () => {
  it('raises the reward of an easy task well above its start', async () => {
    const runDir = tempDir();
    const res = await train({ runDir, model: toyHost(6), tokenizer: toyTok, items: toyItems, config: toyConfig(), device: 'cpu' });
    const r = res.records.map((x) => x.rewardMean);
    const first = (r[0]! + r[1]! + r[2]!) / 3, last = (r[37]! + r[38]! + r[39]!) / 3;
    expect(first).toBeLessThan(0.25); // the right word, then the end, by chance
    expect(last).toBeGreaterThan(first + 0.5);
    expect(res.finished).toBe(true);
    expect(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(40);
    // difficulty binning: the trained model solves (nearly) everything, the untrained one (nearly) nothing
    const rate = (m: CausalLM) => [...passRates(m, toyItems, (it) => toyTok.encode(it.prompt!, { bos: true }), toyTok, { k: 8, maxTokens: 2, temperature: 1, topP: 1, seed: 3 }).values()];
    const fresh = CausalLM.fromHost(toyHost(6), { device: 'cpu' });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(rate(res.model))).toBeGreaterThan(0.8);
    expect(mean(rate(fresh))).toBeLessThan(0.3);
    fresh.dispose();
    res.model.dispose();
    // a binned run records the pass rates once and leaves the always-solved prompts out
    const binned = tempDir();
    const run2 = await train({ runDir: binned, model: toyHost(6), tokenizer: toyTok, items: toyItems, config: toyConfig({ binK: 4, stages: [{ maxInput: 16, maxOutput: 2, steps: 1 }] }), device: 'cpu' });
    run2.model.dispose();
    const bins = JSON.parse(readFileSync(join(binned, 'bins.json'), 'utf8')) as Record<string, number>;
    expect(Object.keys(bins).sort()).toEqual(toyItems.map((i) => i.id).sort());
    expect(Object.values(bins).every((r) => r >= 0 && r <= 1 && Number.isInteger(r * 4))).toBe(true);
  }, 60_000);

  it('resumes from a checkpoint exactly as if it never stopped', async () => {
    const config = toyConfig({ algo: 'aepo', stages: [{ maxInput: 16, maxOutput: 3, steps: 6 }, { maxInput: 16, maxOutput: 3, steps: 5, tasks: ['warm'] }], batch: 4, retrospective: 0.5, checkpointEvery: 4, entropyLow: 0.5, entropyHigh: 1.5 });
    const a = tempDir(), b = tempDir();
    const whole = await train({ runDir: a, model: toyHost(9), tokenizer: toyTok, items: toyItems, config, device: 'cpu' });
    const wa = await whole.model.hostWeights();
    whole.model.dispose();
    // three sittings: stopped mid-interval (checkpoint at 3), at an interval (4… 7 → checkpoint 7), then the rest
    for (const maxSteps of [3, 4, undefined]) {
      const part = await train({ runDir: b, model: toyHost(9), tokenizer: toyTok, items: toyItems, config, device: 'cpu', resume: true, maxSteps });
      if (maxSteps !== undefined) expect(part.finished).toBe(false);
      if (maxSteps === undefined) {
        const wb = await part.model.hostWeights();
        for (const [name, t] of wa.tensors) expect(Buffer.from(wb.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
      }
      part.model.dispose();
    }
    const lines = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => strip(JSON.parse(l)));
    expect(lines(b)).toEqual(lines(a));
  }, 60_000);

  it('resumes after a SIGKILL of the command line', async () => {
    const root = tempDir();
    const modelDir = join(root, 'model');
    writeHfFolder(modelDir, toyHost(3));
    toyTok.save(join(modelDir, 'words.json'));
    const data = join(root, 'data.jsonl');
    writeFileSync(data, toyItems.map((i) => `${JSON.stringify(i)}\n`).join(''));
    const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
    const args = (out: string) => [cli, 'train', '--model', modelDir, '--data', data, '--out', out, '--algo', 'grpo', '--steps', '14', '--batch', '4', '--group', '4', '--lr', '0.01', '--max-output', '3', '--checkpoint-every', '2', '--device', 'cpu', '--no-progress', '--no-report'];
    execFileSync(process.execPath, args(join(root, 'straight')), { stdio: 'pipe' });
    const killed = join(root, 'killed');
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, args(killed), { stdio: 'ignore' });
      const timer = setInterval(() => {
        const m = join(killed, 'metrics.jsonl');
        if (existsSync(m) && readFileSync(m, 'utf8').split('\n').length > 7) {
          clearInterval(timer);
          child.kill('SIGKILL');
        }
      }, 5);
      child.on('exit', (code, signal) => {
        clearInterval(timer);
        if (signal === 'SIGKILL') resolve();
        else reject(new Error(`the run ended by itself (code ${code}) before it could be killed`));
      });
    });
    execFileSync(process.execPath, [...args(killed), '--resume'], { stdio: 'pipe' });
    const weights = (d: string) => readFileSync(join(d, 'final', 'model.safetensors'));
    expect(weights(killed).equals(weights(join(root, 'straight')))).toBe(true);
    // the final model and the checkpoint carry the starting model's tokenizer: each loads alone
    for (const d of [join(killed, 'final'), join(killed, 'checkpoint')]) expect(readFileSync(join(d, 'words.json'), 'utf8')).toBe(readFileSync(join(modelDir, 'words.json'), 'utf8'));
  }, 90_000);

  it('skips a step with a non-finite reward or loss and leaves the weights alone', async () => {
    const model = CausalLM.fromHost(toyHost(2), { device: 'cpu' });
    const opt = new AdamW(model.parameters(), { lr: 0.1 });
    const before = await model.hostWeights();
    const prompts = [{ ids: [1, 4, 5, 9], taskId: 't', score: () => NaN }];
    const rs = rollout(model, prompts, { group: 4, maxTokens: 2, seed: 1 });
    const m = await policyUpdate(model, opt, rs);
    expect(m.skipped).toMatch(/reward of rollout 0 is NaN/);
    // a NaN weight makes the loss NaN
    const host = toyHost(2);
    host.tensors.get('lm_head.weight')!.data[3] = NaN;
    const bad = CausalLM.fromHost(host, { device: 'cpu' });
    const opt2 = new AdamW(bad.parameters(), { lr: 0.1 });
    const rs2 = rollout(model, [{ ids: [1, 4, 5, 9], taskId: 't', score: (r) => r.length }], { group: 4, maxTokens: 3, seed: 2 }).map((r, i) => ({ ...r, reward: i }));
    const badBefore = await bad.hostWeights();
    const m2 = await policyUpdate(bad, opt2, rs2);
    expect(m2.skipped).toMatch(/loss|gradient/);
    expect(opt2.step).toBe(0);
    for (const [w, ref] of [[await model.hostWeights(), before], [await bad.hostWeights(), badBefore]] as const) {
      for (const [name, t] of ref.tensors) expect(Buffer.from(w.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    }
    for (const x of [opt, opt2]) x.dispose();
    model.dispose();
    bad.dispose();
  });

  it('refuses bad configurations and data with errors that name the problem', () => {
    expect(() => makeTrainConfig({ group: 0 })).toThrow(/'group' must be an integer/);
    expect(() => makeTrainConfig({ algo: 'ppo' as never })).toThrow(/unknown algorithm 'ppo'/);
    expect(() => makeTrainConfig({ entropyLow: 2, entropyHigh: 1 })).toThrow(/entropyHigh/);
    expect(() => makeTrainConfig({ stages: [] })).toThrow(/stages/);
    expect(() => makeTrainConfig({ stages: [{ maxInput: 10, maxOutput: 0, steps: 1 }] })).toThrow(/stages\[0\]\.maxOutput/);
    expect(() => makeTrainConfig({ batch: 2, minibatches: 4 })).toThrow(/minibatches/);
    expect(() => makeTrainConfig({ grup: 4 } as never)).toThrow(/unknown field 'grup' \(known: algo, .*group,/);
    expect(() => makeTrainConfig({ stages: [{ maxInput: 10, maxOutput: 5, steps: 1, step: 2 }] } as never)).toThrow(/unknown field 'stages\[0\]\.step'/);
    const d = tempDir(), f = join(d, 'bad.jsonl');
    writeFileSync(f, '{"task":"a","prompt":"x","answer":"y"}\n{"task":"a","prompt":"x"}\n');
    expect(() => readItems(f)).toThrow(DataError);
    expect(() => readItems(f)).toThrow(/bad\.jsonl:2: "answer"/);
    writeFileSync(f, '{"task":"a","prompt":"x","answer":"y"}\nnot json\n');
    expect(() => readItems(f)).toThrow(/bad\.jsonl:2: not JSON/);
    expect(() => readItems(join(d, 'missing.jsonl'))).toThrow(/cannot read/);
  });

  it('runs the dapo arm: equal-reward groups dropped before the update, several clipped minibatches', async () => {
    const runDir = tempDir();
    const res = await train({ runDir, model: toyHost(6), tokenizer: toyTok, items: toyItems, config: toyConfig({ algo: 'dapo', stages: [{ maxInput: 16, maxOutput: 2, steps: 12 }] }), device: 'cpu' });
    expect(res.records.some((r) => r.droppedGroups > 0)).toBe(true);
    for (const r of res.records) {
      expect(r.droppedGroups).toBe(r.zeroVarianceGroups);
      if (r.droppedGroups === 8) expect(r.skipped).toMatch(/equal rewards/);
      else expect(r.skipped).toBeNull();
    }
    const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as { minibatches: number; aggregation: string };
    expect(config).toMatchObject({ minibatches: 4, aggregation: 'token-mean' });
    res.model.dispose();
  });

  it('asks the judge only when the rule check fails, and trains on its verdict', async () => {
    const asked: string[] = [];
    const judge = async (x: { question: string; answer: string; prediction: string }) => {
      asked.push(x.prediction);
      return x.answer === 'red' ? 1 : 0; // a lenient judge for one answer
    };
    const res = await train({ runDir: tempDir(), model: toyHost(6), tokenizer: toyTok, items: toyItems, config: toyConfig({ stages: [{ maxInput: 16, maxOutput: 2, steps: 2 }] }), device: 'cpu', judge });
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.length).toBeLessThan(2 * 64); // never for rollouts the rule already scored 1
    const warm = res.records.map((r) => r.rewardByTask.warm!);
    expect(Math.max(...warm)).toBeGreaterThan(0.4); // every "say red" rollout now scores 1
    res.model.dispose();
  });

  it('refuses to start afresh over an earlier run unless told to overwrite it', async () => {
    const runDir = tempDir();
    const config = toyConfig({ binK: 2, stages: [{ maxInput: 16, maxOutput: 2, steps: 2 }], checkpointEvery: 1 });
    (await train({ runDir, model: toyHost(1), tokenizer: toyTok, items: toyItems, config, device: 'cpu' })).model.dispose();
    writeFileSync(join(runDir, 'notes.txt'), 'mine');
    const before = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8');
    await expect(train({ runDir, model: toyHost(2), tokenizer: toyTok, items: toyItems, config, device: 'cpu' })).rejects.toThrow(
      /already holds a run \(metrics\.jsonl, checkpoint\): continue it with resume \(--resume\), choose another folder, or replace it with overwrite \(--overwrite\)/,
    );
    expect(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')).toBe(before);
    // overwrite: the earlier run's files go (its difficulty bins too, which belong to another starting model)
    const again = await train({ runDir, model: toyHost(2), tokenizer: toyTok, items: toyItems, config: { ...config, stages: [{ maxInput: 16, maxOutput: 2, steps: 1 }] }, device: 'cpu', overwrite: true });
    again.model.dispose();
    expect(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
    expect((JSON.parse(readFileSync(join(runDir, 'checkpoint', 'trainer.json'), 'utf8')) as { step: number }).step).toBe(1);
    expect(existsSync(join(runDir, 'bins.json'))).toBe(true);
    expect(readFileSync(join(runDir, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('refuses a damaged checkpoint with an error naming the file', async () => {
    const runDir = tempDir();
    const config = toyConfig({ stages: [{ maxInput: 16, maxOutput: 2, steps: 2 }], checkpointEvery: 1 });
    (await train({ runDir, model: toyHost(1), tokenizer: toyTok, items: toyItems, config, device: 'cpu', maxSteps: 1 })).model.dispose();
    writeFileSync(join(runDir, 'checkpoint', 'trainer.json'), '{"version": 1, "st');
    await expect(train({ runDir, model: toyHost(1), tokenizer: toyTok, items: toyItems, config, device: 'cpu', resume: true })).rejects.toThrow(/trainer\.json: cannot be read as JSON/);
  });

  it('refuses a stage no prompt fits and duplicate ids', async () => {
    const config = toyConfig({ stages: [{ maxInput: 2, maxOutput: 3, steps: 1 }] });
    const n = toyItems.length;
    await expect(train({ runDir: tempDir(), model: toyHost(1), tokenizer: toyTok, items: toyItems, config, device: 'cpu' })).rejects.toThrow(
      new RegExp(`stage 0 has no prompts: of ${n} items, ${n} are longer than maxInput 2, 0 leave no room for maxOutput 3`),
    );
    const window = toyHost(1).config.maxSeqLen;
    const tooLong = toyConfig({ stages: [{ maxInput: 16, maxOutput: window, steps: 1 }] });
    await expect(train({ runDir: tempDir(), model: toyHost(1), tokenizer: toyTok, items: toyItems, config: tooLong, device: 'cpu' })).rejects.toThrow(
      new RegExp(`${n} leave no room for maxOutput ${window} in the model's window of ${window} \\(maxOutput alone fills it\\)`),
    );
    await expect(train({ runDir: tempDir(), model: toyHost(1), tokenizer: toyTok, items: [toyItems[0]!, toyItems[0]!], config: toyConfig(), device: 'cpu' })).rejects.toThrow(/two items have the id/);
  });
});

describe('the tiny preset', () => {
  it('runs end to end from the packaged checkpoint (a few steps) and ends with the held-out line', () => {
    const out = join(tempDir(), 'run');
    const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'train', '--preset', 'tiny', '--steps', '3', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // stderr is not a terminal here: progress comes as lines (about every tenth of the run; here every step)
    expect(r.stderr.match(/^train step \d\/3: reward \d\.\d{3}, entropy (\d\.\d{3}|–), aepo (on|off), \d+\.\d\d s\/step$/gm)).toHaveLength(3);
    const stdout = r.stdout;
    const lines = stdout.trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(/^held-out accuracy: before=0\.\d{3} after=0\.\d{3}$/);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { before: { macro: number; byTask: Record<string, { n: number }> } };
    expect(Object.values(summary.before.byTask).map((t) => t.n)).toEqual([300, 300, 300, 300]);
    expect(lines[lines.length - 1]).toContain(`before=${summary.before.macro.toFixed(3)}`);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    expect(existsSync(join(out, 'final', 'model.safetensors'))).toBe(true);
  }, 120_000);

  it('refuses a model or data beside the preset, and an unknown preset', () => {
    const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
    const run = (...a: string[]) => {
      try {
        execFileSync(process.execPath, [cli, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return '';
      } catch (e) {
        return String((e as { stderr: string }).stderr);
      }
    };
    expect(run('train', '--preset', 'tiny', '--model', 'x')).toMatch(/leave out --model and --data/);
    expect(run('train', '--preset', 'huge')).toMatch(/unknown preset 'huge'/);
    expect(run('train', '--model', 'x')).toMatch(/needs --model and --data/);
    expect(run('train', '--preset', 'tiny', '--group', '0')).toMatch(/--group must be an integer ≥ 1/);
    expect(run('eval')).toMatch(/eval needs --data/);
    // a preset that brings its own tokenizer refuses one it would ignore
    expect(run('train', '--preset', 'tiny', '--tokenizer', 'x')).toMatch(/--tokenizer: --preset tiny brings its own tokenizer/);
    expect(run('sft', '--preset', 'tiny', '--tokenizer', 'x', '--out', 'x')).toMatch(/--tokenizer: --preset tiny brings its own tokenizer/);
    expect(run('sft', '--agent', 'memory', '--tokenizer', 'x', '--out', 'x')).toMatch(/--tokenizer: --agent memory brings its own tokenizer/);
  });
});

describe('tiny worlds', () => {
  // An independent solver: read the facts back from the prompt text and answer the question from them.
  function solve(prompt: string): string[] {
    const [factText, question] = prompt.split(' question : ');
    const owns = new Map<string, string[]>(), place = new Map<string, string>(), job = new Map<string, string>();
    for (const f of factText!.split(' . ').map((s) => s.replace(/ \.$/, ''))) {
      let m;
      if ((m = /^(\w+) owns the (\w+)$/.exec(f))) owns.set(m[1]!, [...(owns.get(m[1]!) ?? []), m[2]!]);
      else if ((m = /^the (\w+) is in the (\w+)$/.exec(f))) place.set(m[1]!, m[2]!);
      else if ((m = /^(\w+) is a (\w+)$/.exec(f))) job.set(m[1]!, m[2]!);
      else throw new Error(`unparsed fact: ${f}`);
    }
    const ownerOf = (t: string) => [...owns].find(([, l]) => l.includes(t))![0];
    let m;
    if ((m = /^where is the thing that (\w+) owns \?/.exec(question!))) return owns.get(m[1]!)!.map((t) => place.get(t)!);
    if ((m = /^where is the (\w+) \?/.exec(question!))) return [place.get(m[1]!)!];
    if ((m = /^what job has the owner of the (\w+) \?/.exec(question!))) return [job.get(ownerOf(m[1]!))!];
    if ((m = /^what does (\w+) own \?/.exec(question!))) return owns.get(m[1]!)!;
    throw new Error(`unparsed question: ${question}`);
  }

  it('asks questions whose gold answers follow from the facts, in a closed vocabulary', () => {
    const tok = worldTokenizer();
    const rng = new Random(11);
    for (let i = 0; i < 400; i++) {
      const e = worldEpisode(rng, WORLD_TASKS[i % 4]!);
      expect(solve(e.prompt).sort()).toEqual(e.answer.slice().sort());
      expect(tok.encode(e.prompt).includes(3)).toBe(false); // no <unk>
      expect(scoreResponse({ id: 'x', task: e.task, answer: e.task === 'items' ? e.answer : e.answer[0]! }, e.target)).toBe(1);
    }
    expect(tok.vocabSize).toBeLessThan(100);
  });

  it('scores answers by shape: exact for one word, list F1 for lists; listing candidates earns nothing', () => {
    const one: RecipeItem = { id: '1', task: 'locate', prompt: 'p', answer: 'attic' };
    expect(scoreResponse(one, 'attic')).toBe(1);
    expect(scoreResponse(one, 'attic , barn')).toBe(0);
    const list: RecipeItem = { id: '2', task: 'items', prompt: 'p', answer: ['key', 'lamp'] };
    expect(scoreResponse(list, 'key , lamp')).toBe(1);
    expect(scoreResponse(list, 'key')).toBeCloseTo(2 / 3, 12);
  });

  it('middle-truncates long prompts to the window, keeping the head and the question at the end', () => {
    const tok = new WordTokenizer(['a', 'b', 'q']);
    const item: RecipeItem = { id: '1', task: 't', prompt: `a ${'b '.repeat(50)}q`, answer: 'a' };
    const p = promptIds(item, tok, { window: 12, maxTokens: 2 });
    expect(p.ids).toHaveLength(10);
    expect(p.truncated).toBe(53 - 10);
    expect(p.ids.slice(0, 2)).toEqual([1, tok.encode('a')[0]]);
    expect(p.ids[9]).toBe(tok.encode('q')[0]);
  });
});

describe('evaluate and report', () => {
  it('scores greedy answers per task and renders a report of a run', async () => {
    const runDir = tempDir();
    const res = await train({ runDir, model: toyHost(5), tokenizer: toyTok, items: toyItems, config: toyConfig({ stages: [{ maxInput: 16, maxOutput: 3, steps: 4 }] }), device: 'cpu' });
    const r = evaluate(res.model, toyTok, toyItems, { maxTokens: 3 });
    // bad options and items are named, before any generation
    expect(() => evaluate(res.model, toyTok, toyItems, { window: 1e6 })).toThrow(/window must be an integer above maxTokens \(32\) and at most the model's 32 tokens, not 1000000/);
    expect(() => evaluate(res.model, toyTok, toyItems, { maxTokens: 3, batch: 0 })).toThrow(/batch must be a positive integer/);
    expect(() => evaluate(res.model, toyTok, toyItems, { maxTokens: 3, buckets: [] })).toThrow(/buckets must be a non-empty list/);
    expect(() => evaluate(res.model, toyTok, [{ ...toyItems[0]!, answer: NaN }], { maxTokens: 3 })).toThrow(/items\[0\] "answer" must be a string, a finite number/);
    // the same answers decoded by hand
    const gens = res.model.generate(toyItems.map((i) => toyTok.encode(i.prompt!, { bos: true })), { maxTokens: 3, temperature: 0, stopIds: [2] });
    const manual = toyItems.map((it, i) => scoreResponse(it, toyTok.decode(gens[i]!.tokens.filter((t) => t !== 2))));
    expect(r.predictions.map((p) => p.score)).toEqual(manual);
    expect(r.byTask.warm!.n).toBe(4);
    expect(r.macro).toBeCloseTo((r.byTask.warm!.score + r.byTask.cool!.score) / 2, 12);
    res.model.dispose();
    const html = renderReport(runDir);
    expect(html).toMatch(/^<!doctype html>/);
    expect((html.match(/<svg /g) ?? []).length).toBe(6);
    expect(html).not.toMatch(/NaN|undefined/);
    expect(existsSync(writeReport(runDir))).toBe(true);
    expect(() => renderReport(tempDir())).toThrow(/no metrics\.jsonl/);
    // damaged or empty run files are named; the report may not replace a run file
    const damaged = tempDir();
    writeFileSync(join(damaged, 'metrics.jsonl'), readFileSync(join(runDir, 'metrics.jsonl')));
    writeFileSync(join(damaged, 'config.json'), '{ broken');
    expect(() => renderReport(damaged)).toThrow(/report: .*config\.json is not JSON/);
    const empty = tempDir();
    writeFileSync(join(empty, 'metrics.jsonl'), '');
    expect(() => renderReport(empty)).toThrow(/metrics\.jsonl has no steps yet/);
    expect(() => writeReport(runDir, join(runDir, 'metrics.jsonl'))).toThrow(/one of the run's own files/);
    expect(existsSync(writeReport(runDir, join(runDir, 'new', 'folder', 'r.html')))).toBe(true);
  });

  it('the eval command checks its flags and output path before evaluating', () => {
    const dir = tempDir();
    const data = join(dir, 'items.jsonl');
    writeFileSync(data, toyItems.map((i) => `${JSON.stringify(i)}\n`).join(''));
    const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
    const run = (...a: string[]) => spawnSync(process.execPath, [cli, 'eval', ...a], { encoding: 'utf8' });
    const same = run('--data', data, '--out', data);
    expect(same.stderr).toMatch(/--out: .*items\.jsonl is also an input of this command/);
    expect(readFileSync(data, 'utf8').trim().split('\n')).toHaveLength(toyItems.length);
    expect(run('--preset', 'tiny', '--data', data).stderr).toMatch(/give --preset or --data, not both/);
    expect(run('--preset', 'bogus').stderr).toMatch(/unknown preset 'bogus'/);
    expect(run('--data', data, '--out', dir).stderr).toMatch(/is a folder; give a file path/);
  });
});
