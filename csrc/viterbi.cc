#include "viterbi.h"

#include <algorithm>
#include <vector>

namespace bert_mtl {

void ViterbiDecode(const float* potentials, const float* transitions,
                   const int32_t* lengths, int64_t batch, int64_t max_len,
                   int64_t num_tags, const float* start_scores,
                   const float* end_scores, int32_t* tags_out,
                   float* scores_out) {
  const int64_t K = num_tags;
  std::fill(tags_out, tags_out + batch * max_len, 0);
  if (max_len == 0 || K == 0) {
    std::fill(scores_out, scores_out + batch, 0.0f);
    return;
  }
  std::vector<float> state(K), next(K);
  std::vector<int32_t> backpointers(max_len * K);
  for (int64_t b = 0; b < batch; ++b) {
    const float* unary = potentials + b * max_len * K;
    const int64_t len = std::max<int64_t>(1, std::min<int64_t>(lengths[b], max_len));
    std::copy(unary, unary + K, state.begin());
    if (start_scores != nullptr) {
      for (int64_t j = 0; j < K; ++j) state[j] += start_scores[j];
    }
    for (int64_t t = 1; t < len; ++t) {
      int32_t* bp = backpointers.data() + t * K;
      // Row i of the transition matrix is contiguous: sweep it for every
      // previous tag i so the inner loop over j vectorises.  Strict '>' keeps
      // the first (lowest) previous tag on ties, as tf.argmax does.
      const float s0 = state[0];
      for (int64_t j = 0; j < K; ++j) {
        next[j] = s0 + transitions[j];
        bp[j] = 0;
      }
      for (int64_t i = 1; i < K; ++i) {
        const float si = state[i];
        const float* row = transitions + i * K;
        for (int64_t j = 0; j < K; ++j) {
          const float v = si + row[j];
          const bool better = v > next[j];
          next[j] = better ? v : next[j];
          bp[j] = better ? static_cast<int32_t>(i) : bp[j];
        }
      }
      const float* u = unary + t * K;
      for (int64_t j = 0; j < K; ++j) state[j] = u[j] + next[j];
    }
    if (end_scores != nullptr) {
      for (int64_t j = 0; j < K; ++j) state[j] += end_scores[j];
    }
    int32_t best = 0;
    for (int64_t j = 1; j < K; ++j) {
      if (state[j] > state[best]) best = static_cast<int32_t>(j);
    }
    scores_out[b] = state[best];
    int32_t* tags = tags_out + b * max_len;
    tags[len - 1] = best;
    for (int64_t t = len - 1; t > 0; --t) {
      best = backpointers[t * K + best];
      tags[t - 1] = best;
    }
  }
}

}  // namespace bert_mtl
