// How tokenized text becomes model rows: each unit's first piece (the
// position a sequence-labelling head tags) and the [CLS] a [SEP] (b [SEP])
// row of a text pair, truncated as the original run_classifier.py does.
#ifndef BERT_MTL_ALIGNMENT_H_
#define BERT_MTL_ALIGNMENT_H_

#include <cstdint>
#include <vector>

#include "tokenizer.h"

namespace bert_mtl {

// first[u] (u < num_units): the index of the first piece that starts at or
// after unit u's start (unit_starts[u], in the joined text the pieces were
// cut from) and before unit u + 1's; -1 when no piece starts in the unit.
// unit_starts are increasing; pieces run in text order.
void FirstPieceOfUnits(const std::vector<Piece>& pieces,
                       const int64_t* unit_starts, int64_t num_units,
                       int32_t* first);

// Pieces kept of a pair (len_b 0: a single text) in a row of max_seq_length
// tokens: the longer side loses a piece until [CLS] a [SEP] b [SEP] fits
// (b on ties); a single text keeps max_seq_length - 2.
void TruncatePair(int64_t max_seq_length, int64_t* len_a, int64_t* len_b);

// One model row of length L, written to the arrays given (each L long;
// spans 2 L): ids, mask and segment ids of [CLS] a [SEP] (b [SEP]) padded
// with 0, each token's span in its text (-1 for specials and padding), and
// counts[0..1] the pieces of a and b before truncation.
struct RowArrays {
  int32_t* ids;
  int32_t* mask;
  int32_t* segments;
  int32_t* spans;
  int32_t* counts;
};
void PackPairRow(const Tokenization& a, const Tokenization& b, int64_t L,
                 int32_t cls_id, int32_t sep_id, const RowArrays& out);

}  // namespace bert_mtl

#endif  // BERT_MTL_ALIGNMENT_H_
