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
# What travels to the GPU machine: the addon compressed (23 MB -> 3 MB for sm_90a; the fatbin compresses well) and
# the generated header the standalone checks include.
mkdir -p "$out/carry"
xz -T0 -6 -c "$out/Release/qwenlong.node" > "$out/carry/qwenlong.node.xz"
cp "$out/generated/qwenlong_cuda_archs.h" "$out/carry/"
# The native sources it was built from: pass.sh builds afresh when they have changed since.
bash scripts/gpu/native-hash.sh > "$out/carry/sources.sha256"
ls -l "$out/Release/qwenlong.node" "$out/carry/qwenlong.node.xz"
echo "carry $out/carry (and .offline), then: PREBUILT=$out bash scripts/gpu/pass.sh \$OUT/logs build test ..."
