#include "cuda/kv_cache/kv_cache.h"
#define QWENLONG_ISA_NS kv_cache_avx512
#include "cuda/kv_cache/kv_cache_kernels.inc"
