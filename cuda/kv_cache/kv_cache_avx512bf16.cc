#include "cuda/kv_cache/kv_cache.h"
#define QWENLONG_ISA_NS kv_cache_avx512bf16
#include "cuda/kv_cache/kv_cache_kernels.inc"
