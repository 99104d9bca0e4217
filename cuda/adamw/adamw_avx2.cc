#include "cuda/adamw/adamw.h"
#define QWENLONG_ISA_NS adamw_avx2
#include "cuda/adamw/adamw_kernels.inc"
