#include "cuda/sample/sample.h"
#define QWENLONG_ISA_NS sample_avx2
#include "cuda/sample/sample_kernels.inc"
