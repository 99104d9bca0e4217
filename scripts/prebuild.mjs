#!/usr/bin/env node
// `npm run prebuild`: build the addon and place it, stripped, at prebuilds/<platform>-<arch>/qwenlong.napi.node with
// prebuildify, which drives our cmake-js build through a node-gyp-shaped shim. QWENLONG_PREBUILD_REUSE=1 takes
// the binary already in build/Release instead of compiling again.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
const run = spawnSync(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', '--node-gyp', join(root, 'scripts', 'node-gyp-shim.mjs')], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
