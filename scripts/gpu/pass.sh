#!/usr/bin/env bash
# One GPU pass on a machine with nvcc and a CUDA driver: build the addon with CUDA for the local card, run every test
# suite with QWENLONG_DEVICE=cuda (each suite's CUDA-vs-CPU-twin blocks run), then the standalone kernel checks.
# Usage: [PREBUILT=build-sm90a] bash scripts/gpu/pass.sh [LOGDIR] [steps...]     steps: build test suites checks checks-fast sanitize timing kv model wgmma
#   (default: build test checks). kv: paged decode per kernel and partition size, PyTorch's, Nsight Compute.
#   MODEL_BENCH_SKIP=cpu,generate narrows the model step to the GPU training step. wgmma: the Hopper matmul kernel
#   (opt-in, QWENLONG_MATMUL_KERNEL) under the suites that multiply on the GPU, then timed against mma.sync.
# Node must be on PATH. Logs go to LOGDIR (default ./gpu-logs).
set -uo pipefail
LOG=${1:-gpu-logs}; shift || true
STEPS=${*:-build test checks}
mkdir -p "$LOG"
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d . )
case "$cc" in 90) arch=90a ;; "") arch=90a ;; *) arch=$cc ;; esac
export QWENLONG_CUDA=on QWENLONG_CUDA_ARCHS="${arch}-real"
status=0
step() { echo "=== $1 ($(date +%T))"; }
has() { [[ " $STEPS " == *" $1 "* ]]; }
# Threads' stacks of every vitest process (gdb when present, else each thread's kernel wait channel).
dump_stacks() {
  for p in $(pgrep -f vitest); do
    echo "--- pid $p: $(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-150)"
    if command -v gdb > /dev/null; then gdb -p "$p" -batch -ex 'thread apply all bt 12' 2>/dev/null | grep -E "^#|^Thread" | head -80
    else for t in /proc/$p/task/*; do echo "$t $(cat $t/wchan 2>/dev/null) $(cat $t/comm)"; done; fi
  done
}

if has build; then
  step build
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$LOG/gpu.txt"
  # PREBUILT=build-sm90a (made beforehand by scripts/gpu/prebuild.sh and carried to this machine): use that addon
  # when it loads here and sees the card, and skip the build (a minute or more of the loan); otherwise build.
  prebuilt=""
  if [ -n "${PREBUILT:-}" ] && [ ! -f "$PREBUILT/Release/qwenlong.node" ] && [ -f "$PREBUILT/carry/qwenlong.node.xz" ]; then
    mkdir -p "$PREBUILT/Release" && xz -dc "$PREBUILT/carry/qwenlong.node.xz" > "$PREBUILT/Release/qwenlong.node"
  fi
  if [ -n "${PREBUILT:-}" ] && [ -f "$PREBUILT/carry/sources.sha256" ] && [ "$(bash scripts/gpu/native-hash.sh)" != "$(cat "$PREBUILT/carry/sources.sha256")" ]; then
    echo "the prebuilt addon in $PREBUILT was built from other native sources: building"
  elif [ -n "${PREBUILT:-}" ] && [ -f "$PREBUILT/Release/qwenlong.node" ]; then
    if QWENLONG_ADDON="$PWD/$PREBUILT/Release/qwenlong.node" node -e \
      "const c = require(process.env.QWENLONG_ADDON).info().cuda; console.log(JSON.stringify(c)); \
       if (!c.available || !c.archs.includes('90a')) process.exit(3)" > "$LOG/prebuilt.log" 2>&1; then
      prebuilt="$PREBUILT/Release/qwenlong.node"
    else
      echo "the prebuilt addon in $PREBUILT does not load here or lacks sm_90a code (see prebuilt.log): building"
    fi
  fi
  if [ -n "$prebuilt" ]; then
    export QWENLONG_ADDON="$PWD/$prebuilt"
    echo "using the prebuilt addon $prebuilt"
  else
    { time node scripts/install.mjs --build-from-source; } > "$LOG/build.log" 2>&1 || { tail -40 "$LOG/build.log"; exit 1; }
    tail -3 "$LOG/build.log"
  fi
  npx tsc -p tsconfig.json && node scripts/chmod-bin.mjs || exit 1
  node dist/src/cli/main.js info
fi
if has test; then
  step "npm run test:gpu"
  ( sleep $((${TEST_LIMIT:-400} - 20)); dump_stacks > "$LOG/hung-stacks.txt" 2>&1 ) &
  watcher=$!
  timeout -k 5 "${TEST_LIMIT:-400}" npm run test:gpu -- ${TEST_FILES:-} > "$LOG/test-gpu.log" 2>&1 || status=1
  kill "$watcher" 2> /dev/null
  sed 's/\x1b\[[0-9;]*m//g' "$LOG/test-gpu.log" | grep -E "^ (✓|❯|↓) |×|Test Files|Tests |Duration" | tail -40
fi
if has suites; then
  # Each test file in its own process, all at once, each under a time limit; a file still running near its limit
  # gets its threads' stacks dumped (gdb when present) before it is killed.
  step "suites one by one"
  limit=${SUITE_LIMIT:-150}
  pids=()
  for f in ${SUITES:-$(ls tests/*.test.ts tests/synth/*.test.ts)}; do
    name=$(basename "$f" .test.ts)
    ( QWENLONG_DEVICE=cuda timeout -k 5 "$limit" npx vitest run "$f" > "$LOG/suite-$name.log" 2>&1; echo "rc=$?" >> "$LOG/suite-$name.log" ) &
    pids+=($!)
  done
  ( sleep $((limit - 15)); dump_stacks > "$LOG/hung-stacks.txt" 2>&1 ) &
  watcher=$!
  for p in "${pids[@]}"; do wait "$p"; done
  kill "$watcher" 2> /dev/null
  for f in "$LOG"/suite-*.log; do
    printf '%-28s %s  %s\n' "$(basename "$f" .log)" "$(tail -1 "$f")" "$(sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -E '^ +Tests ' | head -1)"
    grep -q "rc=0" "$f" || { status=1; sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -E -A12 "FAIL|AssertionError|Error:" | head -30; }
  done
fi
if has checks; then
  step "standalone checks"
  gen=$(dirname "$(find build ${PREBUILT:-} -name qwenlong_cuda_archs.h 2> /dev/null | head -1)")
  g="-gencode=arch=compute_${arch},code=sm_${arch}"
  nvcc -std=c++17 -O3 $g -I. -I"$gen" -DQWENLONG_HAVE_CUDA=1 scripts/gpu/matmul_check.cu cuda/matmul/matmul.cu \
    cuda/matmul/matmul_wgmma.cu cuda/common/device.cc -o /tmp/matmul_check && timeout 120 /tmp/matmul_check > "$LOG/matmul_check.log" 2>&1 || status=1
  tail -25 "$LOG/matmul_check.log"
  nvcc -std=c++17 -O3 $g -I. -I"$gen" -DQWENLONG_HAVE_CUDA=1 scripts/gpu/attention_check.cu cuda/attention/attention_fwd.cu \
    cuda/attention/attention_bwd.cu cuda/common/device.cc -o /tmp/attention_check && timeout 150 /tmp/attention_check > "$LOG/attention_check.log" 2>&1 || status=1
  tail -25 "$LOG/attention_check.log"
fi
if has sanitize; then
  step "compute-sanitizer"
  for tool in ${SANITIZE_TOOLS:-memcheck racecheck}; do
    QWENLONG_DEVICE=cuda timeout ${SANITIZE_LIMIT:-200} compute-sanitizer --tool $tool --error-exitcode 9 --target-processes all \
      npx vitest run -t "${SANITIZE_FILTER:-CUDA}" ${SANITIZE_SUITES:-} \
      > "$LOG/sanitize-$tool.log" 2>&1 || status=1
    grep -E "ERROR SUMMARY|Tests |Test Files|Invalid|Race" "$LOG/sanitize-$tool.log" | head -12
  done
  # The attention kernels' whole configuration sweep is too slow for racecheck through vitest: the standalone check
  # (correctness cases only) covers them instead, when the checks step built it.
  if [ -x /tmp/attention_check ]; then
    timeout ${SANITIZE_LIMIT:-200} compute-sanitizer --tool racecheck --error-exitcode 9 /tmp/attention_check --no-timing \
      > "$LOG/sanitize-racecheck-attention.log" 2>&1 || status=1
    grep -E "RACECHECK SUMMARY|case\(s\) failed" "$LOG/sanitize-racecheck-attention.log" | head -4
  fi
fi
if has timing; then
  step "op timing: qwenlong, then PyTorch on the same card"
  timeout 200 node scripts/gpu/op_timing.mjs --json "$LOG/op_timing.json" || status=1
  timeout 200 python3 scripts/gpu/torch_timing.py "$LOG/torch_timing.json" || status=1
fi
if has kv; then
  # Paged decode (issue #6): every kernel, the default kernel over a range of partition sizes, PyTorch's decode over
  # a contiguous cache, then Nsight Compute on one launch of the default (tensor-core) kernel at batch 16 x 32K.
  step "paged decode: kernels, partition sizes, PyTorch, Nsight Compute"
  OP_TIMING_ONLY=kv timeout 200 node scripts/gpu/op_timing.mjs --json "$LOG/op_timing_kv.json" || status=1
  timeout 120 node scripts/gpu/kv_split_sweep.mjs --json "$LOG/kv_split_sweep.json" || status=1
  OP_TIMING_ONLY=kv timeout 200 python3 scripts/gpu/torch_timing.py "$LOG/torch_kv.json" || status=1
  if command -v ncu > /dev/null; then
    OP_TIMING_ONLY=kv OP_TIMING_KV=16x32768 timeout ${NCU_LIMIT:-240} ncu --target-processes all -k regex:paged_mma \
      --launch-skip 3 --launch-count 1 --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
      node scripts/gpu/op_timing.mjs > "$LOG/ncu-paged-mma.txt" 2>&1 || status=1
    grep -E "Duration|DRAM Throughput|Achieved Occupancy|Registers Per Thread|Eligible Warps|Block Limit" "$LOG/ncu-paged-mma.txt" | head -20
  fi
fi
if has model; then
  # The model suite's CUDA cases: a Qwen3-0.6B-shaped bf16 model's training step (tokens/s, MFU) and decode.
  step "bench model (CUDA cases after the CPU ones)"
  timeout ${MODEL_LIMIT:-300} node dist/src/cli/main.js bench model --save > "$LOG/bench-model.log" 2>&1 || status=1
  grep -E "Qwen3|train step|generate" "$LOG/bench-model.log" | head -8
  # The op profiles the suite logs (one training step, one decode step): where the GPU time goes, op by op.
  grep -A18 "^op profile" "$LOG/bench-model.log" | grep -v "^--" | head -60
  cp bench/results/model.jsonl "$LOG/" 2> /dev/null || true
fi
if has wgmma; then
  step "Hopper matmul kernel: suites with QWENLONG_MATMUL_KERNEL=wgmma, then timing against mma.sync"
  QWENLONG_MATMUL_KERNEL=wgmma QWENLONG_DEVICE=cuda timeout ${WGMMA_TEST_LIMIT:-300} npx vitest run ${WGMMA_SUITES:-tests/matmul.test.ts \
    tests/policy_loss.test.ts tests/model.test.ts tests/trainer.test.ts} > "$LOG/wgmma-tests.log" 2>&1 || status=1
  sed 's/\x1b\[[0-9;]*m//g' "$LOG/wgmma-tests.log" | grep -E "^ (✓|❯|↓|×) |×|Test Files|Tests |AssertionError|expected" | tail -30
  for kernel in mma wgmma wgmma128; do
    QWENLONG_MATMUL_KERNEL=$kernel OP_TIMING_ONLY=${WGMMA_TIMING:-matmul,matmulLayouts,policyLossLarge} timeout 200 \
      node scripts/gpu/op_timing.mjs --json "$LOG/op_timing_$kernel.json" || status=1
  done
fi
if has checks-fast; then
  step "matmul correctness (no timing)"
  gen=$(dirname "$(find build ${PREBUILT:-} -name qwenlong_cuda_archs.h 2> /dev/null | head -1)")
  nvcc -std=c++17 -O3 -gencode=arch=compute_${arch},code=sm_${arch} -I. -I"$gen" -DQWENLONG_HAVE_CUDA=1 scripts/gpu/matmul_check.cu \
    cuda/matmul/matmul.cu cuda/matmul/matmul_wgmma.cu cuda/common/device.cc -o /tmp/matmul_check && timeout 120 /tmp/matmul_check --no-time > "$LOG/matmul_check.log" 2>&1 || status=1
  grep -E "FAIL|correctness" "$LOG/matmul_check.log"
fi
echo "=== done status=$status"
exit $status
