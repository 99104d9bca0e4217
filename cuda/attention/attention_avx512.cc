#include "cuda/attention/attention.h"
#define QWENLONG_ISA_NS attention_avx512
#include "cuda/attention/attention_kernels.inc"
