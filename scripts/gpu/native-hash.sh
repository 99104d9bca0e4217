#!/usr/bin/env bash
# One hash of the addon's sources (cuda/, binding/, CMakeLists.txt), by content: whether a prebuilt addon still
# matches the tree. Run from the repository root.
set -euo pipefail
find cuda binding -type f \( -name '*.cc' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' -o -name '*.inc' \) -print0 | sort -z |
  xargs -0 sha256sum | cat - <(sha256sum CMakeLists.txt) | sha256sum | cut -d' ' -f1
