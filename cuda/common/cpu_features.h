// Run-time ISA dispatch for the CPU backend. One binary carries a scalar, an AVX2 (+FMA, F16C) and an AVX-512
// (F, BW, VL, DQ) version of each vector kernel and picks the best the CPU supports; QWENLONG_ISA forces one.
#pragma once
#include <string>
#include <vector>

namespace qwenlong {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// The ISAs this CPU can run, best last.
std::vector<Isa> supported_isas();
// The ISA the kernels use now.
Isa current_isa();
// Whether the CPU has the AVX512-BF16 dot products (vdpbf16ps) and this build has kernels for them (they run under the
// avx512 ISA).
bool cpu_has_avx512bf16();
// Force an ISA by name ("scalar", "avx2", "avx512"); throws a RangeError-kind error for unknown or unsupported ones.
void set_isa(const std::string& name);

}  // namespace qwenlong
