#include "viterbi.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace bert_mtl {
namespace {

// The inner loop runs on blocks of L tags with GCC/Clang vector extensions:
// L = 4 is plain SSE2 (x86-64) or NEON; L = 8 is compiled for AVX2 and
// chosen at run time on CPUs that have it.  Comparisons give all-ones lanes.
template <int L>
struct Lanes {
  typedef float F __attribute__((vector_size(4 * L)));
  typedef int32_t I __attribute__((vector_size(4 * L)));
};

// One time step for every tag: best[j] = max_i state[i] + trans[i][j] and
// arg[j] = the first i reaching it (strict '>' keeps the lowest i on ties,
// as tf.argmax does).  With NB > 0 blocks known at compile time, the running
// maxima stay in registers; NB = 0 handles any size through memory.  The
// blocks are independent, so sweeping all of them for each previous tag i
// keeps the CPU busy instead of waiting on one compare-select chain.
template <int L, int NB>
__attribute__((always_inline)) inline void Step(const float* state,
                                                const float* trans, int64_t K,
                                                int64_t Kp, float* best_out,
                                                int32_t* arg_out) {
  typedef typename Lanes<L>::F F;
  typedef typename Lanes<L>::I I;
  constexpr int64_t kStatic = NB > 0 ? NB : 1;
  const int64_t blocks = NB > 0 ? NB : Kp / L;
  F best_reg[kStatic];
  I arg_reg[kStatic];
  auto load_best = [&](int64_t blk, F* top, I* top_arg) {
    if (NB > 0) {
      *top = best_reg[blk];
      *top_arg = arg_reg[blk];
    } else {
      std::memcpy(top, best_out + blk * L, sizeof(F));
      std::memcpy(top_arg, arg_out + blk * L, sizeof(I));
    }
  };
  auto store_best = [&](int64_t blk, const F& top, const I& top_arg) {
    if (NB > 0) {
      best_reg[blk] = top;
      arg_reg[blk] = top_arg;
    } else {
      std::memcpy(best_out + blk * L, &top, sizeof(F));
      std::memcpy(arg_out + blk * L, &top_arg, sizeof(I));
    }
  };
  for (int64_t blk = 0; blk < blocks; ++blk) {
    F row;
    std::memcpy(&row, trans + blk * L, sizeof(F));
    store_best(blk, state[0] + row, I{});
  }
  for (int64_t i = 1; i < K; ++i) {
    const float si = state[i];
    const I index = I{} + static_cast<int32_t>(i);
    const float* trans_row = trans + i * Kp;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      F row, top;
      I top_arg;
      std::memcpy(&row, trans_row + blk * L, sizeof(F));
      load_best(blk, &top, &top_arg);
      const F v = si + row;
      const I better = v > top;
      store_best(blk, better ? v : top, better ? index : top_arg);
    }
  }
  if (NB > 0) {
    for (int64_t blk = 0; blk < blocks; ++blk) {
      std::memcpy(best_out + blk * L, &best_reg[blk], sizeof(F));
      std::memcpy(arg_out + blk * L, &arg_reg[blk], sizeof(I));
    }
  }
}

template <int L>
__attribute__((always_inline)) inline void DecodeRows(
    const float* potentials, const float* trans, const int32_t* lengths,
    int64_t batch, int64_t max_len, int64_t K, int64_t Kp,
    const float* start_scores, const float* end_scores, int32_t* tags_out,
    float* scores_out) {
  // Plain arrays, never containers of vector types: those would be built by
  // functions compiled for another ISA, with another calling convention.
  const int64_t blocks = Kp / L;
  std::vector<float> state(Kp), best(Kp);
  std::vector<int32_t> backpointers(max_len * Kp);
  for (int64_t b = 0; b < batch; ++b) {
    const float* unary = potentials + b * max_len * K;
    const int64_t len =
        std::max<int64_t>(1, std::min<int64_t>(lengths[b], max_len));
    std::copy(unary, unary + K, state.begin());
    if (start_scores != nullptr) {
      for (int64_t j = 0; j < K; ++j) state[j] += start_scores[j];
    }
    for (int64_t t = 1; t < len; ++t) {
      int32_t* bp = backpointers.data() + t * Kp;
      switch (blocks) {
        case 1: Step<L, 1>(state.data(), trans, K, Kp, best.data(), bp); break;
        case 2: Step<L, 2>(state.data(), trans, K, Kp, best.data(), bp); break;
        case 3: Step<L, 3>(state.data(), trans, K, Kp, best.data(), bp); break;
        case 4: Step<L, 4>(state.data(), trans, K, Kp, best.data(), bp); break;
        case 5: Step<L, 5>(state.data(), trans, K, Kp, best.data(), bp); break;
        case 6: Step<L, 6>(state.data(), trans, K, Kp, best.data(), bp); break;
        default: Step<L, 0>(state.data(), trans, K, Kp, best.data(), bp);
      }
      const float* u = unary + t * K;
      for (int64_t j = 0; j < K; ++j) state[j] = u[j] + best[j];
    }
    if (end_scores != nullptr) {
      for (int64_t j = 0; j < K; ++j) state[j] += end_scores[j];
    }
    int32_t top = 0;
    for (int64_t j = 1; j < K; ++j) {
      if (state[j] > state[top]) top = static_cast<int32_t>(j);
    }
    scores_out[b] = state[top];
    int32_t* tags = tags_out + b * max_len;
    tags[len - 1] = top;
    for (int64_t t = len - 1; t > 0; --t) {
      top = backpointers[t * Kp + top];
      tags[t - 1] = top;
    }
  }
}

// Transitions padded to Kp columns with -inf; padding lanes are computed and
// never chosen as a real tag's predecessor.
std::vector<float> PadTransitions(const float* transitions, int64_t K,
                                  int64_t Kp) {
  std::vector<float> trans(K * Kp, -std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < K; ++i) {
    std::copy(transitions + i * K, transitions + (i + 1) * K,
              trans.begin() + i * Kp);
  }
  return trans;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BERT_MTL_HAVE_AVX2_PATH 1
__attribute__((target("avx2"))) void DecodeRowsAvx2(
    const float* potentials, const float* trans, const int32_t* lengths,
    int64_t batch, int64_t max_len, int64_t K, int64_t Kp,
    const float* start_scores, const float* end_scores, int32_t* tags_out,
    float* scores_out) {
  DecodeRows<8>(potentials, trans, lengths, batch, max_len, K, Kp,
                start_scores, end_scores, tags_out, scores_out);
}
#endif

}  // namespace

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
#ifdef BERT_MTL_HAVE_AVX2_PATH
  if (K > 4 && __builtin_cpu_supports("avx2")) {
    const int64_t Kp = (K + 7) / 8 * 8;
    const std::vector<float> trans = PadTransitions(transitions, K, Kp);
    DecodeRowsAvx2(potentials, trans.data(), lengths, batch, max_len, K, Kp,
                   start_scores, end_scores, tags_out, scores_out);
    return;
  }
#endif
  const int64_t Kp = (K + 3) / 4 * 4;
  const std::vector<float> trans = PadTransitions(transitions, K, Kp);
  DecodeRows<4>(potentials, trans.data(), lengths, batch, max_len, K, Kp,
                start_scores, end_scores, tags_out, scores_out);
}

}  // namespace bert_mtl
