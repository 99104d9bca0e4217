#!/usr/bin/env node
// `npm run prebuild`: build the addon and place it, stripped, at prebuilds/<platform>-<arch>/qwenlong.glibc.node
// with prebuildify, which drives our cmake-js build through a node-gyp-shaped shim. prebuildify moves the binary
// out of <cwd>/build/Release, so it works in a staging folder and the developer's build/ stays intact.
// QWENLONG_PREBUILD_REUSE=1 takes the binary already in build/Release instead of compiling again.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
const staging = join(root, 'build-prebuild');
rmSync(staging, { recursive: true, force: true });
mkdirSync(staging, { recursive: true });
const args = [prebuildify, '--napi', '--strip', '--tag-libc', '--name', 'qwenlong', '--cwd', staging, '--out', root];
const run = spawnSync(process.execPath, [...args, '--node-gyp', join(root, 'scripts', 'node-gyp-shim.mjs')], { cwd: staging, stdio: 'inherit' });
rmSync(staging, { recursive: true, force: true });
process.exit(run.status ?? 1);
