#include "cuda/swiglu/swiglu.h"
#define QWENLONG_ISA_NS swiglu_avx2
#include "cuda/swiglu/swiglu_kernels.inc"
