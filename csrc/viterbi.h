// Linear-chain CRF Viterbi decoding, identical to tfa.text.crf_decode.
#pragma once

#include <cstdint>

namespace bert_mtl {

// potentials: [batch, max_len, num_tags] unary scores, row-major.
// transitions: [num_tags, num_tags]; transitions[i * num_tags + j] scores
//   tag i followed by tag j.
// lengths: [batch] real lengths, each in [0, max_len].  As in
//   tfa.text.crf_decode, a length of 0 decodes like a length of 1.
// tags_out: [batch, max_len]; positions at or beyond a row's length are 0.
// scores_out: [batch] score of the best path.
// start_scores / end_scores: optional [num_tags] scores added to the first /
//   last tag of every path (nullptr: none); -inf forbids a tag there, which
//   is how BIO/BMES constraints are expressed together with -inf transitions.
// Ties go to the lowest tag index, as tf.argmax does.
void ViterbiDecode(const float* potentials, const float* transitions,
                   const int32_t* lengths, int64_t batch, int64_t max_len,
                   int64_t num_tags, const float* start_scores,
                   const float* end_scores, int32_t* tags_out,
                   float* scores_out);

}  // namespace bert_mtl
