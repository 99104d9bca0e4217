#!/usr/bin/env node
// After tsc: make the CLI entry executable (tsc writes plain files; npm only marks bins it links at install).
import { chmodSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const { bin } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const target of Object.values(bin)) chmodSync(join(root, target), 0o755);
