// Element access for CPU twins that are templated on the storage type: f32, f16 and bf16 all load to f32 and
// store from f32 with the same rounding as every other path.
#pragma once
#include <cstdint>

#include "cuda/common/dtype.h"
#include "cuda/common/error.h"

namespace qwenlong {

struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };

inline float to_f32(float x) { return x; }
inline float to_f32(F16 x) { return f16_to_f32(x.bits); }
inline float to_f32(BF16 x) { return bf16_to_f32(x.bits); }

template <typename T> inline T from_f32(float x);
template <> inline float from_f32<float>(float x) { return x; }
template <> inline F16 from_f32<F16>(float x) { return F16{f32_to_f16(x)}; }
template <> inline BF16 from_f32<BF16>(float x) { return BF16{f32_to_bf16(x)}; }

// Calls fn(T{}) with T the storage type of a float dtype.
template <typename Fn>
void dispatch_float(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(float{}); return;
    case DType::f16: fn(F16{}); return;
    case DType::bf16: fn(BF16{}); return;
    default: throw_type(std::string(op) + ": unsupported dtype " + dtype_name(t));
  }
}

}  // namespace qwenlong
