// Sampling one token per row of host logits (CPU only): the generation loop's draw, the TypeScript `sample`'s
// algorithm (f64 softmax of logits / temperature, entropy as sum p (lse - x), one uniform walked along the vocabulary
// in index order; temperature 0 is the first argmax) with vector exponentials and sums (sample_kernels.inc): the
// same token, and log-probability and entropy within 1e-12 of it; rows spread over the thread pool.
#pragma once
#include <cstdint>

namespace qwenlong {

struct SampleParams {
  const float* logits = nullptr;  // (row count of the buffer, vocab), row-major
  int64_t vocab = 0;
  const int32_t* rows = nullptr;  // which rows to sample
  int64_t count = 0;
  double temperature = 1.0;
  const double* uniforms = nullptr;  // one per sampled row, in [0, 1); unused at temperature 0
  int32_t* tokens = nullptr;          // (count)
  double* logprobs = nullptr;         // (count) log p of the token under the tempered distribution
  double* entropies = nullptr;        // (count) entropy of the tempered distribution
};

void sample_rows_cpu(const SampleParams& p);

}  // namespace qwenlong
