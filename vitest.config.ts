import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Native ops use their own thread pool; one test file at a time keeps timings and memory predictable on 2 cores.
    fileParallelism: false,
    // The finalization safety net is tested by forcing collections.
    execArgv: ['--expose-gc'],
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
