#!/usr/bin/env node
// Install step of qwenlong (npm's `install` script), and `npm run build:native`.
//  1. A prebuilt binary that matches this platform (prebuilds/<platform>-<arch>/) and loads: use it, compile nothing.
//  2. Otherwise build from source with cmake-js: the CPU backend always, CUDA when nvcc is found.
//     QWENLONG_CUDA=auto|on|off, QWENLONG_CUDA_ARCHS="80-real;90a-real;...", QWENLONG_PTXAS_VERBOSE=1.
//  3. No prebuild and no compiler: fail with what to install.
// `--build-from-source` (or npm's --build-from-source, or QWENLONG_BUILD_FROM_SOURCE=1) skips step 1.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const say = (msg) => console.error(`qwenlong: ${msg}`);

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

function prebuiltBinary() {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return null;
  let path;
  try {
    // node-gyp-build's own matching rules (napi tag, libc); PREBUILDS_ONLY ignores a local build/ folder.
    process.env.PREBUILDS_ONLY = '1';
    path = require('node-gyp-build').resolve(root);
  } catch {
    return null;
  } finally {
    delete process.env.PREBUILDS_ONLY;
  }
  // Load it in a child process, so a binary that cannot load here (wrong libc, CPU) cannot take us down.
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path)}).info()`], { stdio: 'pipe' });
  if (probe.status !== 0) {
    say(`the prebuilt binary ${path} does not load here (${probe.stderr.toString().trim().split('\n').pop()}); building from source`);
    return null;
  }
  return path;
}

function cmakeVersionOk(cmake) {
  const out = spawnSync(cmake, ['--version'], { encoding: 'utf8' });
  const m = /cmake version (\d+)\.(\d+)/.exec(out.stdout ?? '');
  return m ? Number(m[1]) > 3 || (Number(m[1]) === 3 && Number(m[2]) >= 24) : false;
}

function buildFromSource() {
  // the build uses x86-64 vector flags and GNU ld options: other platforms would fail deep inside the compiler output
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    say(`the native addon builds on Linux x86-64 only, and no prebuilt binary matches ${process.platform}-${process.arch}`);
    process.exit(1);
  }
  const cmake = onPath('cmake');
  const cxx = ['c++', 'g++', 'clang++'].map(onPath).find(Boolean);
  const missing = [];
  if (!cmake) missing.push('cmake (>= 3.24)');
  else if (!cmakeVersionOk(cmake)) missing.push('a newer cmake (>= 3.24)');
  if (!cxx) missing.push('a C++17 compiler (g++ or clang++)');
  if (missing.length) {
    say(
      `no prebuilt binary matches ${process.platform}-${process.arch}, and building one from source needs ${missing.join(' and ')}.\n` +
        '  Debian/Ubuntu: sudo apt-get install cmake g++   Fedora: sudo dnf install cmake gcc-c++\n' +
        '  Add the CUDA toolkit (nvcc) for the GPU backend. Then run `npm rebuild qwenlong`.',
    );
    process.exit(1);
  }
  const mode = (process.env.QWENLONG_CUDA ?? 'auto').toLowerCase();
  if (!['auto', 'on', 'off'].includes(mode)) {
    say(`QWENLONG_CUDA must be auto, on or off, not '${process.env.QWENLONG_CUDA}'`);
    process.exit(1);
  }
  const args = [require.resolve('cmake-js/bin/cmake-js'), 'compile', '--directory', root, '--out', join(root, 'build'), `--CDQWENLONG_CUDA=${mode}`];
  args.push('--parallel', String(availableParallelism()));
  if (process.env.QWENLONG_CUDA_ARCHS) args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.QWENLONG_CUDA_ARCHS}`);
  if (process.env.QWENLONG_PTXAS_VERBOSE === '1') args.push('--CDQWENLONG_PTXAS_VERBOSE=ON');
  say(`building the native addon from source (CUDA: ${mode})`);
  const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (run.status !== 0) {
    say('the native build failed (see the compiler output above). QWENLONG_CUDA=off builds the CPU backend alone.');
    process.exit(run.status ?? 1);
  }
}

const forced =
  process.argv.includes('--build-from-source') ||
  process.env.npm_config_build_from_source === 'true' ||
  process.env.QWENLONG_BUILD_FROM_SOURCE === '1';
if (!forced) {
  const prebuilt = prebuiltBinary();
  if (prebuilt) {
    say(`using the prebuilt binary ${prebuilt.slice(root.length + 1)}`);
    process.exit(0);
  }
}
buildFromSource();
