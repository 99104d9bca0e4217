// Math the compiler can vectorize: plain float arithmetic, no library calls, so the CPU twins' ISA builds
// (scalar, AVX2, AVX-512) vectorize their loops and give the same bits.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace qwenlong {

// e^x: range reduction to [-ln2/2, ln2/2] and a degree-7 Taylor polynomial (relative error < 1e-7 there);
// 0 below -87, clamped at 88.
inline float exp_inline(float x) {
  const bool tiny = x < -87.0f;
  x = x > 88.0f ? 88.0f : (tiny ? -87.0f : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  // x - n ln2 in two steps (ln2 split so that n * hi is exact)
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float poly = 1.0f / 5040.0f;
  poly = poly * r + 1.0f / 720.0f;
  poly = poly * r + 1.0f / 120.0f;
  poly = poly * r + 1.0f / 24.0f;
  poly = poly * r + 1.0f / 6.0f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return tiny ? 0.0f : poly * scale;
}


}  // namespace qwenlong
