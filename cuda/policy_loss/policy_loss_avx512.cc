#include "cuda/policy_loss/policy_loss.h"
#define QWENLONG_ISA_NS policy_loss_avx512
#include "cuda/policy_loss/policy_loss_kernels.inc"
