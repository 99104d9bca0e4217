// Users get a working binary without building it: pack the package with a prebuilt binary (made from the addon
// this run already built), install the tarball into an empty project with cmake and nvcc out of reach, load it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const built = join(root, 'build', 'Release', 'qwenlong.node');

function onPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  return null;
}

function npmCli(): string | null {
  // Under `npm test` npm names its own entry point; otherwise look for npm-cli.js beside an `npm` on PATH.
  const exec = process.env.npm_execpath;
  if (exec && /npm-cli\.js$/.test(exec) && existsSync(exec)) return exec;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const npm = join(dir, 'npm');
    if (existsSync(npm)) {
      const cli = join(dirname(realpathSync(npm)), 'npm-cli.js');
      if (existsSync(cli)) return cli;
    }
  }
  return null;
}

const work = mkdtempSync(join(tmpdir(), 'qwenlong-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Installing the tarball fetches its dependencies: an offline npm (npm_config_offline) cannot.
const offline = process.env.npm_config_offline === 'true';
if (offline) console.log('skipping the pack-and-install test: npm is offline and the tarball needs its dependencies');

describe.skipIf(!existsSync(built) || offline)('pack and install', () => {
  it('installs from the tarball with no compiler on PATH and loads the prebuilt binary', () => {
    const npm = npmCli();
    expect(npm, 'npm must be on PATH').not.toBeNull();
    const env = { ...process.env, QWENLONG_PREBUILD_REUSE: '1' };
    const prebuild = spawnSync(process.execPath, [join(root, 'scripts', 'prebuild.mjs')], { cwd: root, env, encoding: 'utf8' });
    expect(prebuild.status, prebuild.stderr).toBe(0);
    expect(existsSync(join(root, 'prebuilds', `${process.platform}-${process.arch}`))).toBe(true);

    const pack = spawnSync(process.execPath, [npm!, 'pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
    expect(pack.status, pack.stderr).toBe(0);
    const packed = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    expect(files.some((f) => f.startsWith('prebuilds/'))).toBe(true);
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('models/tiny-sft/model.safetensors'); // the tiny preset's starting point
    expect(files.some((f) => f.startsWith('tests/') || f.startsWith('build/'))).toBe(false);

    // An empty project whose PATH holds node and sh alone (npm runs scripts with sh): no cmake, nvcc or compiler.
    const project = join(work, 'consumer');
    const bin = join(work, 'bin');
    mkdirSync(project);
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(onPath('sh') ?? '/bin/sh', join(bin, 'sh'));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    const bare = { ...process.env, PATH: bin, QWENLONG_PREBUILD_REUSE: '', CUDACXX: '', npm_config_build_from_source: '' };
    const install = spawnSync(process.execPath, [npm!, 'install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', join(work, packed[0]!.filename)], {
      cwd: project,
      env: bare,
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(install.status, install.stdout + install.stderr).toBe(0);
    expect(install.stdout + install.stderr).toMatch(/using the prebuilt binary prebuilds\//);
    expect(existsSync(join(project, 'node_modules', 'qwenlong', 'build'))).toBe(false);

    const use = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "import { Tensor, ops, info } from 'qwenlong'; const x = Tensor.from([1, 2, 3]); console.log(JSON.stringify({ info: info(), sum: Array.from(await ops.add(x, x).toArray()) }));"],
      { cwd: project, env: { ...bare, QWENLONG_DEVICE: '' }, encoding: 'utf8' },
    );
    expect(use.status, use.stderr).toBe(0);
    const out = JSON.parse(use.stdout) as { info: { addon: string; device: string; cuda: { reason: string } }; sum: number[] };
    expect(out.sum).toEqual([2, 4, 6]);
    expect(out.info.addon).toMatch(/node_modules\/qwenlong\/prebuilds\//);
    expect(out.info.cuda.reason.length).toBeGreaterThan(0);

    const cli = spawnSync(join(project, 'node_modules', '.bin', 'qwenlong'), ['info', '--json'], { cwd: project, env: bare, encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as { version: string }).version).toMatch(/^\d+\.\d+\.\d+/);

    // No matching prebuild and no compiler: the install fails and says what to install.
    const installed = join(project, 'node_modules', 'qwenlong');
    rmSync(join(installed, 'prebuilds'), { recursive: true, force: true });
    const noBinary = spawnSync(process.execPath, [join(installed, 'scripts', 'install.mjs')], { cwd: installed, env: bare, encoding: 'utf8' });
    expect(noBinary.status).not.toBe(0);
    expect(noBinary.stderr).toMatch(/no prebuilt binary matches .* needs cmake \(>= 3\.24\) and a C\+\+17 compiler/);
  });
});
