// The CUDA matmul kernels' index math, run on the host where nvcc exists (no GPU needed): scripts/gpu/matmul_emulate.cu
// (the mma.sync kernel: copies, ldmatrix, fragments, epilogue) and scripts/gpu/wgmma_emulate.cu (the Hopper kernel:
// tensor-copy boxes, swizzled shared memory, wgmma descriptors, accumulator placement), each against float64 over odd
// shapes and every layout. They model the hardware from the PTX ISA; the kernels still need a GPU to be verified.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { root } from './helpers.js';

const nvcc = spawnSync('nvcc', ['--version'], { stdio: 'ignore' }).status === 0;
if (!nvcc) console.log('cuda_emulate: nvcc is not on the PATH; the kernels\' index-math emulations are skipped');

describe.runIf(nvcc)('CUDA matmul kernels, emulated on the host', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qwenlong-emulate-'));
  // The one generated header the sources include (the build writes the same with its architectures).
  writeFileSync(join(dir, 'qwenlong_cuda_archs.h'), '#define QWENLONG_CUDA_ARCHS "90a-real"\n');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (sources: string[], arch: string) => {
    const exe = join(dir, sources[0]!.replace(/\W/g, '_'));
    const build = spawnSync('nvcc', ['-std=c++17', '-O2', `-arch=${arch}`, '-I.', `-I${dir}`, '-DQWENLONG_HAVE_CUDA=1', ...sources,
      'cuda/common/device.cc', '-o', exe], { cwd: root, encoding: 'utf8', timeout: 240_000 });
    expect(build.status, build.stderr).toBe(0);
    const out = spawnSync(exe, [], { encoding: 'utf8', timeout: 120_000 });
    expect(out.stdout.trim().split('\n').at(-1), out.stdout.split('\n').filter((l) => /BAD|REQUIRE/.test(l)).slice(0, 10).join('\n')).toBe('fails=0');
    expect(out.status).toBe(0);
    return out.stdout;
  };

  it('the mma.sync kernel (matmul.cu): every layout, both copy paths, a broadcast batch', () => {
    // matmul.cu calls the Hopper kernel's entry point: linked beside it
    expect(run(['scripts/gpu/matmul_emulate.cu', 'cuda/matmul/matmul_wgmma.cu'], 'sm_80')).toMatch(/ ok\n/);
  }, 300_000);

  it('the Hopper wgmma kernel (matmul_wgmma.cu): every layout, BN 256 and 128, tile edges and k tails', () => {
    const out = run(['scripts/gpu/wgmma_emulate.cu'], 'sm_90a');
    expect(out.match(/ ok$/gm)?.length).toBe(56);
  }, 300_000);
});
