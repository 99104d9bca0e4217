#!/usr/bin/env node
// Answers prebuildify's `node-gyp rebuild --release ...` by building with cmake-js (scripts/install.mjs), which
// leaves the addon in build/Release where prebuildify picks it up.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
if (process.env.QWENLONG_PREBUILD_REUSE === '1' && existsSync(join(root, 'build', 'Release', 'qwenlong.node'))) process.exit(0);
const run = spawnSync(process.execPath, [join(root, 'scripts', 'install.mjs'), '--build-from-source'], { cwd: root, stdio: 'inherit' });
process.exit(run.status ?? 1);
