// policy_loss: the fused LM-head policy-gradient loss. Logits exist only a chunk of tokens at a time, in an f32
// workspace, so memory stays O(chunk · V) whatever T is.
//   hidden: (T, H)  weight: (V, H)  (one dtype: f32, f16 or bf16)   targets: (T) i32 in [0, V)
//   coef: (T) f32, d loss / d l_t (aggregation, masks, AEPO's dropping, all folded in by the caller)
//   advantages: (T) f32   old_logp: (T) f32 or null (strictly on-policy: rho = 1, gradient of logp)
//   mask: (T) f32, 1 for tokens that count in nll
//   outputs: logp, entropy: (T) f32; loss, nll: () f32; d_hidden: (T, H) f32; d_weight: (V, H) f32
// Per token t (x = hidden_t W^T / temperature over the whole vocabulary):
//   lse = log sum_v e^{x_v};  logp = x_target - lse;  entropy = sum_v p_v (lse - x_v)
//   l_t = -A_t rho_t, rho_t = exp(logp - old_logp) clipped as PPO (clip_low, clip_high; dual_clip > 1 bounds
//   l_t <= -A_t dual_clip when A_t < 0); on-policy l_t = -A_t.  loss = sum_t coef_t l_t.
//   g_t = coef_t dl_t/dlogp_t;  dx_v = g_t (onehot(target)_v - p_v);  d_raw_logits = dx / temperature
//   d_hidden = d_raw_logits W;  d_weight = d_raw_logits^T hidden    (6 T H V flops with the logits GEMM)
#pragma once
#include <cmath>
#include <cstdint>

#include "cuda/common/dtype.h"

namespace qwenlong {

struct PolicyLossParams {
  const void* hidden = nullptr;
  const void* weight = nullptr;
  const int32_t* targets = nullptr;
  const float* coef = nullptr;
  const float* advantages = nullptr;
  const float* old_logp = nullptr;  // optional
  const float* mask = nullptr;
  float* logp = nullptr;
  float* entropy = nullptr;
  float* loss = nullptr;  // () f32
  float* nll = nullptr;   // () f32
  float* d_hidden = nullptr;  // optional (no gradients when null)
  float* d_weight = nullptr;  // optional
  int64_t tokens = 0, hidden_size = 0, vocab = 0;
  DType dtype = DType::f32;
  float temperature = 1.f;
  float clip_low = 0.2f, clip_high = 0.28f, dual_clip = 0.f;  // dual_clip 0: off
  int64_t workspace_bytes = int64_t(64) << 20;  // the logits chunk budget
};

void policy_loss_cpu(const PolicyLossParams& p);
void policy_loss_cuda(const PolicyLossParams& p);

// The per-token math both backends share: from logp (and old logp), the loss term and d l / d logp.
struct TokenLoss {
  float loss;   // l_t
  float dlogp;  // d l_t / d logp_t
};

#ifdef __CUDACC__
#define QWENLONG_HOST_DEVICE __host__ __device__
#else
#define QWENLONG_HOST_DEVICE
#endif

QWENLONG_HOST_DEVICE inline TokenLoss token_loss(float logp, const float* old_logp, int64_t t, float advantage, float clip_low, float clip_high, float dual_clip) {
  if (!old_logp) return TokenLoss{-advantage, -advantage};
  float log_ratio = logp - old_logp[t];
  log_ratio = log_ratio < -20.f ? -20.f : (log_ratio > 20.f ? 20.f : log_ratio);
  const float ratio = expf(log_ratio);
  const float lo = 1.f - clip_low, hi = 1.f + clip_high;
  const float clipped = ratio < lo ? lo : (ratio > hi ? hi : ratio);
  const float unclipped_loss = -advantage * ratio, clipped_loss = -advantage * clipped;
  // max(unclipped, clipped): the gradient flows only through the unclipped branch
  float loss = unclipped_loss >= clipped_loss ? unclipped_loss : clipped_loss;
  float dlogp = unclipped_loss >= clipped_loss ? -advantage * ratio : 0.f;
  if (dual_clip > 0.f && advantage < 0.f) {
    const float bound = -advantage * dual_clip;
    if (bound < loss) {
      loss = bound;
      dlogp = 0.f;
    }
  }
  return TokenLoss{loss, dlogp};
}

}  // namespace qwenlong

namespace qwenlong {
// Step 2 of the CPU twin (one build per ISA, policy_loss_kernels.inc): rows [r0, r1) of the chunk that starts at
// token t0; writes logp and entropy and turns each logits row into d_raw_logits (and its f16/bf16 copy if given).
#define QWENLONG_POLICY_LOSS_DECLS \
  void rows_pass(const PolicyLossParams& p, int64_t t0, int64_t r0, int64_t r1, float* logits, uint16_t* logits_half);
namespace policy_loss_scalar { QWENLONG_POLICY_LOSS_DECLS }
namespace policy_loss_avx2 { QWENLONG_POLICY_LOSS_DECLS }
namespace policy_loss_avx512 { QWENLONG_POLICY_LOSS_DECLS }
#undef QWENLONG_POLICY_LOSS_DECLS
}  // namespace qwenlong
