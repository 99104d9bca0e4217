// Output safety: what `synth` refuses before any work (an output that is an input, a folder, or a finished file
// without --overwrite; a damaged knowledge graph), the locks that keep two runs off one output or work folder,
// and what a failed or interrupted run leaves behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { synthesize, type SynthOptions } from '../../src/synth/pipeline.js';
import { SynthError } from '../../src/synth/errors.js';
import { validateQuestion } from '../../src/synth/schema.js';
import { readLines, repoRoot, runCli, tempFolders } from './helpers.js';

const fresh = tempFolders();

// The CLI's --world takes its seed from --seed: the same world as `--world people=16,… --seed safe`.
const world = { seed: 'safe', people: 16, cities: 5, countries: 2, organizations: 4 };
const small = (out: string, extra: Partial<SynthOptions> = {}): SynthOptions => ({ inputs: [], out, count: 6, targetTokens: 1000, seed: 'safe', world, ...extra });
/** Every entry under `dir`, relative, sorted: what a run left behind. */
const listing = (dir: string) => (fs.readdirSync(dir, { recursive: true }) as string[]).sort();

describe('the output is checked before any work', () => {
  it('refuses an output that is one of the inputs (also through a link), leaving the input as it was', async () => {
    const dir = fresh('same-input');
    const input = path.join(dir, 'in.md');
    const text = `# Notes\n\n${'Governor Aldo Pike visited Varna in 1887. '.repeat(40)}\n`;
    fs.writeFileSync(input, text);
    fs.symlinkSync(input, path.join(dir, 'link.md'));
    for (const out of [input, path.join(dir, 'link.md')]) {
      await expect(synthesize({ inputs: [input], out, count: 2, targetTokens: 300 })).rejects.toThrow(/--out .*: is one of the inputs/);
      await expect(synthesize({ inputs: [dir], out, count: 2, targetTokens: 300, overwrite: true })).rejects.toThrow(/is one of the inputs/);
    }
    const r = await runCli([input, '--out', input, '--count', '2', '--target-tokens', '300', '--no-progress']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: --out .*in\.md: is one of the inputs/);
    expect(fs.readFileSync(input, 'utf8')).toBe(text);
    expect(listing(dir)).toEqual(['in.md', 'link.md']);
  });

  it('refuses an existing folder as the output at once, creating nothing', async () => {
    const dir = fresh('out-dir');
    fs.mkdirSync(path.join(dir, 'adir'));
    await expect(synthesize(small(path.join(dir, 'adir')))).rejects.toThrow(/--out .*adir: is a folder; give the name of a file/);
    const r = await runCli(['--world', '--out', path.join(dir, 'adir'), '--no-progress']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/adir: is a folder/);
    fs.writeFileSync(path.join(dir, 'afile'), 'x');
    await expect(synthesize(small(path.join(dir, 'afile', 'q.jsonl')))).rejects.toThrow(/afile is a file, not a folder/);
    await expect(synthesize(small(path.join(dir, 'q.jsonl'), { workDir: path.join(dir, 'afile') }))).rejects.toThrow(/--work .*afile: exists and is not a folder/);
    expect(listing(dir)).toEqual(['adir', 'afile']);
  });

  it('refuses to replace a finished output unless told to, and resumes an interrupted one without being told', async () => {
    const dir = fresh('overwrite');
    const out = path.join(dir, 'val.jsonl');
    fs.writeFileSync(out, 'a finished file of another run\n');
    await expect(synthesize(small(out))).rejects.toThrow(/--out .*val\.jsonl: the file exists .*pass --overwrite/);
    const r = await runCli(['--world', 'people=16,cities=5,countries=2,organizations=4', '--out', out, '--count', '6', '--target-tokens', '1000', '--no-progress']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the file exists .*--overwrite/);
    expect(fs.readFileSync(out, 'utf8')).toBe('a finished file of another run\n');
    expect(listing(dir)).toEqual(['val.jsonl']);

    // --overwrite replaces it with what a run on a fresh output writes.
    const reference = path.join(fresh('overwrite-ref'), 'q.jsonl');
    await synthesize(small(reference));
    const o = await runCli(['--world', 'people=16,cities=5,countries=2,organizations=4', '--seed', 'safe', '--out', out, '--count', '6', '--target-tokens', '1000', '--overwrite', '--no-progress']);
    expect(o.stderr).not.toMatch(/error|warning/);
    expect(o.code).toBe(0);
    expect(fs.readFileSync(out)).toEqual(fs.readFileSync(reference));

    // An interrupted run is not a finished output: rerunning it resumes, with no flag.
    const paused = path.join(dir, 'paused.jsonl');
    const first = await synthesize(small(paused, { stopAfter: 2 }));
    expect(first.finished).toBe(false);
    const second = await synthesize(small(paused));
    expect(second.finished).toBe(true);
    expect(fs.readFileSync(paused)).toEqual(fs.readFileSync(reference));
    // ...and once finished it is protected like any other.
    await expect(synthesize(small(paused))).rejects.toThrow(/the file exists/);
    expect(fs.readFileSync(paused)).toEqual(fs.readFileSync(reference));
  });

  it('--world-vocab may not be the output, and is not written when the run is refused', async () => {
    const dir = fresh('vocab');
    const out = path.join(dir, 'q.jsonl');
    const same = await runCli(['--world', '--world-vocab', out, '--out', out, '--no-progress']);
    expect(same.code).toBe(1);
    expect(same.stderr).toMatch(/--world-vocab .*q\.jsonl: must not be the output file/);
    fs.writeFileSync(out, 'finished\n');
    const refused = await runCli(['--world', '--world-vocab', path.join(dir, 'vocab.txt'), '--out', out, '--no-progress']);
    expect(refused.code).toBe(1);
    expect(listing(dir)).toEqual(['q.jsonl']);
  });
});

describe('a failed run removes what it created', () => {
  it('leaves nothing behind when its input is empty, corrupt or not records, and names the input', async () => {
    const dir = fresh('failed');
    const inputs: Array<[string, string, RegExp]> = [
      ['empty.txt', '   \n', /no document with any text/],
      ['corrupt.jsonl', '{"text":"ok"}\n{"text": "trunc', /corrupt\.jsonl:2: not valid JSON/],
      ['array.json', '["one", "two"]', /array\.json record 1: a record must be a JSON object/],
    ];
    for (const [name, text, error] of inputs) fs.writeFileSync(path.join(dir, name), text);
    for (const [name, , error] of inputs) {
      // The output lies in folders that do not exist yet: they go too.
      const out = path.join(dir, 'new', 'deeper', `${name}.jsonl`);
      await expect(synthesize({ inputs: [path.join(dir, name)], out, count: 2, targetTokens: 300 })).rejects.toThrow(error);
      const r = await runCli([path.join(dir, name), '--out', out, '--count', '2', '--target-tokens', '300', '--no-progress']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(error);
      expect(listing(dir)).toEqual(inputs.map(([n]) => n).sort());
    }
    // A bad world is refused before anything is made.
    await expect(synthesize(small(path.join(dir, 'w', 'q.jsonl'), { world: { seed: 1, people: 0 } }))).rejects.toThrow(/--world: people must be an integer from 2 to/);
    expect(listing(dir)).toEqual(inputs.map(([n]) => n).sort());
  });

  it('never deletes a work folder that an earlier, interrupted run resumes from', async () => {
    const dir = fresh('keep-work');
    const out = path.join(dir, 'q.jsonl');
    const whole = path.join(fresh('keep-work-ref'), 'q.jsonl');
    await synthesize(small(whole));
    const paused = await synthesize(small(out, { stopAfter: 3 }));
    expect(paused.finished).toBe(false);
    const before = listing(dir);
    expect(before).toContain(path.join('q.jsonl.work', 'checkpoint.json'));
    // The same output, but the run fails at once (a tokenizer that cannot be read): the earlier state stays.
    await expect(synthesize(small(out, { tokenizer: path.join(dir, 'missing.json') }))).rejects.toThrow(/--tokenizer: cannot read/);
    expect(listing(dir)).toEqual(before);
    const done = await synthesize(small(out));
    expect(done.finished).toBe(true);
    expect(fs.readFileSync(out)).toEqual(fs.readFileSync(whole));
    expect(listing(dir)).toEqual(['q.jsonl', 'q.jsonl.work', path.join('q.jsonl.work', 'kg.sqlite')]);
  });

  it('names a damaged knowledge graph and says how to recover, leaving the file alone', async () => {
    const dir = fresh('corrupt-kg');
    const work = path.join(dir, 'work');
    fs.mkdirSync(work);
    const junk = Buffer.from('this is not an SQLite database, only text that claims a name '.repeat(80));
    fs.writeFileSync(path.join(work, 'kg.sqlite'), junk);
    const out = path.join(dir, 'q.jsonl');
    const expected = new RegExp(`${path.join(work, 'kg.sqlite').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*(not a database|damaged).*delete it.*--work`);
    await expect(synthesize(small(out, { workDir: work }))).rejects.toThrow(expected);
    const r = await runCli(['--world', '--work', work, '--out', out, '--no-progress']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(expected);
    expect(fs.readFileSync(path.join(work, 'kg.sqlite'))).toEqual(junk);
    expect(listing(dir)).toEqual(['work', path.join('work', 'kg.sqlite')]);
    // Following the advice works.
    fs.rmSync(path.join(work, 'kg.sqlite'));
    expect((await synthesize(small(out, { workDir: work }))).written).toBe(6);
  });
});

describe('one run at a time on an output and on a work folder', () => {
  it('refuses the second of two overlapping runs on one output, naming it, and the first finishes intact', async () => {
    const dir = fresh('overlap');
    const out = path.join(dir, 'q.jsonl');
    const reference = path.join(fresh('overlap-ref'), 'q.jsonl');
    await synthesize(small(reference));
    const results = await Promise.allSettled([synthesize(small(out)), synthesize(small(out))]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(SynthError);
    expect(String(refused.reason.message)).toMatch(new RegExp(`--out .*q\\.jsonl: another synthesis is running on it \\(process ${process.pid}.*lock file .*q\\.jsonl\\.lock`));
    expect(fs.readFileSync(out)).toEqual(fs.readFileSync(reference));
    expect(fs.existsSync(`${out}.lock`)).toBe(false);
    expect(fs.existsSync(`${out}.partial`)).toBe(false);
  });

  it('refuses a second run on the same work folder with another output', async () => {
    const dir = fresh('overlap-work');
    const work = path.join(dir, 'work');
    const [a, b] = await Promise.allSettled([synthesize(small(path.join(dir, 'a.jsonl'), { workDir: work })), synthesize(small(path.join(dir, 'b.jsonl'), { workDir: work }))]);
    expect(a.status).toBe('fulfilled');
    expect(b.status).toBe('rejected');
    expect(String((b as PromiseRejectedResult).reason.message)).toMatch(/--work .*work: another synthesis is running on it/);
    expect(listing(dir)).toEqual(['a.jsonl', 'work', path.join('work', 'kg.sqlite')]);
  });

  it('takes over a lock whose process is gone, but not one whose process lives or that another host holds', async () => {
    const dir = fresh('stale');
    const out = path.join(dir, 'q.jsonl');
    const lock = `${out}.lock`;
    const live = JSON.stringify({ pid: process.pid, host: os.hostname(), started: 'earlier' });
    fs.writeFileSync(lock, live);
    await expect(synthesize(small(out))).rejects.toThrow(/another synthesis is running on it/);
    expect(fs.readFileSync(lock, 'utf8')).toBe(live);
    const elsewhere = JSON.stringify({ pid: 1, host: `not-${os.hostname()}`, started: 'earlier' });
    fs.writeFileSync(lock, elsewhere);
    await expect(synthesize(small(out))).rejects.toThrow(/process 1 on not-/);
    // A process that has exited: its pid no longer answers process.kill(pid, 0).
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(lock, JSON.stringify({ pid: Number(gone.stdout), host: os.hostname(), started: 'earlier' }));
    expect((await synthesize(small(out))).written).toBe(6);
    expect(fs.existsSync(lock)).toBe(false);
    for (const q of readLines(out)) expect(validateQuestion(q)).toBeNull();
  });

  it('a second CLI process on the same --out is refused; SIGINT releases the lock and the run resumes to the same bytes', async () => {
    const dir = fresh('cli-lock');
    const out = path.join(dir, 'q.jsonl');
    const big = ['--max-docs', '8', '--seed', 'sig', '--count', '40', '--target-tokens', '3000', '--no-progress'];
    const whole = path.join(fresh('cli-lock-ref'), 'q.jsonl');
    const ref = await runCli([...big, '--out', whole]);
    expect(ref.code).toBe(0);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'tests/synth/cli-runner.ts'), 'synth', ...big, '--out', out], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let childErr = '';
    child.stderr.on('data', (c) => (childErr += String(c)));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const lines = () => {
      try {
        return fs.readFileSync(`${out}.partial`, 'utf8').split('\n').length - 1;
      } catch {
        return 0;
      }
    };
    const started = Date.now();
    while (!(fs.existsSync(`${out}.lock`) && lines() >= 3)) {
      if (child.exitCode !== null || Date.now() - started > 90_000) throw new Error(`the child made no progress: ${childErr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Frozen, so that it is still part way when the signal comes (SIGINT waits until it runs again).
    child.kill('SIGSTOP');
    const second = await runCli([...big, '--out', out]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`--out .*q\\.jsonl: another synthesis is running on it \\(process ${child.pid}`));
    child.kill('SIGINT');
    child.kill('SIGCONT');
    await exited;
    // Interrupted part way: it died of the signal (its handler released the locks and raised it again).
    expect([child.signalCode, child.exitCode, lines()], childErr).toEqual(['SIGINT', null, expect.any(Number)]);
    expect(fs.existsSync(`${out}.lock`)).toBe(false);
    expect(fs.existsSync(path.join(`${out}.work`, 'run.lock'))).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
    expect(lines()).toBeGreaterThanOrEqual(3);
    const resumed = await runCli([...big, '--out', out]);
    expect(resumed.code).toBe(0);
    expect(fs.readFileSync(out)).toEqual(fs.readFileSync(whole));
  });
});
