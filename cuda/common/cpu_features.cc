#include "cuda/common/cpu_features.h"

#include <atomic>
#include <cstdlib>

#include "cuda/common/error.h"

namespace qwenlong {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out{Isa::scalar};
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (avx2) out.push_back(Isa::avx2);
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    out.push_back(Isa::avx512);
#endif
  return out;
}

bool cpu_has_avx512bf16() {
#if (defined(__x86_64__) || defined(__i386__)) && !defined(QWENLONG_NO_AVX512BF16)
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return has;
#else
  return false;
#endif
}

static Isa parse_isa(const std::string& name, bool* ok) {
  *ok = true;
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  *ok = false;
  return Isa::scalar;
}

static Isa initial_isa() {
  std::vector<Isa> isas = supported_isas();
  Isa best = isas.back();
  const char* env = std::getenv("QWENLONG_ISA");
  if (env && *env) {
    bool ok;
    Isa wanted = parse_isa(env, &ok);
    for (Isa i : isas)
      if (ok && i == wanted) return wanted;
    // An unusable request falls back to the best ISA; info() shows what is in use.
  }
  return best;
}

static std::atomic<int>& isa_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

Isa current_isa() { return static_cast<Isa>(isa_slot().load(std::memory_order_relaxed)); }

void set_isa(const std::string& name) {
  bool ok;
  Isa wanted = parse_isa(name, &ok);
  if (!ok) throw_range("setIsa: unknown ISA '" + name + "' (expected scalar, avx2 or avx512)");
  for (Isa i : supported_isas()) {
    if (i == wanted) {
      isa_slot().store(static_cast<int>(wanted), std::memory_order_relaxed);
      return;
    }
  }
  throw_range(std::string("setIsa: this CPU does not support ") + isa_name(wanted));
}

}  // namespace qwenlong
