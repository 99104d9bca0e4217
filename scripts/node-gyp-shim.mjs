#!/usr/bin/env node
// Answers prebuildify's `node-gyp rebuild --release ...` (run in a staging folder) by building with cmake-js
// (scripts/install.mjs) and copying the addon to <staging>/build/Release, where prebuildify picks it up.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const built = join(root, 'build', 'Release', 'qwenlong.node');
if (!(process.env.QWENLONG_PREBUILD_REUSE === '1' && existsSync(built))) {
  const run = spawnSync(process.execPath, [join(root, 'scripts', 'install.mjs'), '--build-from-source'], { cwd: root, stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}
mkdirSync(join(process.cwd(), 'build', 'Release'), { recursive: true });
copyFileSync(built, join(process.cwd(), 'build', 'Release', 'qwenlong.node'));
