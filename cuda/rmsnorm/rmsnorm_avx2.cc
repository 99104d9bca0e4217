#include <cmath>

#include "cuda/rmsnorm/rmsnorm.h"
#define QWENLONG_ISA_NS rmsnorm_avx2
#include "cuda/rmsnorm/rmsnorm_kernels.inc"
