#include "cuda/attention/attention.h"
#define QWENLONG_ISA_NS attention_avx2
#include "cuda/attention/attention_kernels.inc"
