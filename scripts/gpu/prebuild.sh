#!/usr/bin/env bash
# Builds the addon with CUDA for one architecture (default sm_90a: H100/H200) into build-<arch>/, on a machine with
# nvcc and no GPU, so that a GPU pass can start from it (PREBUILT=build-<arch> bash scripts/gpu/pass.sh ...) instead
# of spending its loan on the build. The CUDA runtime is linked statically: the addon needs only the card's driver.
# Usage: bash scripts/gpu/prebuild.sh [ARCH]      e.g. 90a (default), 80, 89
set -euo pipefail
arch=${1:-90a}
out="build-sm${arch}"
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
node node_modules/cmake-js/bin/cmake-js compile --directory . --out "$out" --CDQWENLONG_CUDA=on \
  "--CDCMAKE_CUDA_ARCHITECTURES=${arch}-real"
node -e "const c = require('./$out/Release/qwenlong.node').info().cuda; if (!c.compiled || !c.archs.includes('$arch')) { console.error('built without sm_$arch code:', c.archs); process.exit(1) }"
ls -l "$out/Release/qwenlong.node"
echo "carry $out (with .offline) and run: PREBUILT=$out bash scripts/gpu/pass.sh \$OUT/logs build test ..."
