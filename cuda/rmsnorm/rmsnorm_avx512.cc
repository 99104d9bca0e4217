#include <cmath>

#include "cuda/rmsnorm/rmsnorm.h"
#define QWENLONG_ISA_NS rmsnorm_avx512
#include "cuda/rmsnorm/rmsnorm_kernels.inc"
