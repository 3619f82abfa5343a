#include "alignment.h"

#include <algorithm>

namespace bert_mtl {

void FirstPieceOfUnits(const std::vector<Piece>& pieces,
                       const int64_t* unit_starts, int64_t num_units,
                       int32_t* first) {
  std::fill(first, first + num_units, -1);
  // A unit's first piece is the first one starting at or after the unit's
  // start (and before the next's).
  int64_t u = -1, previous = -1;
  for (size_t p = 0; p < pieces.size(); ++p) {
    const int64_t start = pieces[p].span_begin;
    while (u + 1 < num_units && unit_starts[u + 1] <= start) ++u;
    if (u >= 0 && u != previous) {
      first[u] = static_cast<int32_t>(p);
      previous = u;
    }
  }
}

void TruncatePair(int64_t max_seq_length, int64_t* len_a, int64_t* len_b) {
  if (*len_b > 0) {
    while (*len_a + *len_b > max_seq_length - 3) {
      if (*len_a > *len_b) --*len_a; else --*len_b;
    }
  } else {
    *len_a = std::min(*len_a, max_seq_length - 2);
  }
}

void PackPairRow(const Tokenization& a, const Tokenization& b, int64_t L,
                 int32_t cls_id, int32_t sep_id, const RowArrays& out) {
  int64_t len_a = static_cast<int64_t>(a.pieces.size());
  int64_t len_b = static_cast<int64_t>(b.pieces.size());
  out.counts[0] = static_cast<int32_t>(len_a);
  out.counts[1] = static_cast<int32_t>(len_b);
  TruncatePair(L, &len_a, &len_b);
  int64_t pos = 0;
  auto put = [&](int32_t id, int32_t segment, int32_t begin, int32_t end) {
    out.ids[pos] = id;
    out.mask[pos] = 1;
    out.segments[pos] = segment;
    out.spans[2 * pos] = begin;
    out.spans[2 * pos + 1] = end;
    ++pos;
  };
  put(cls_id, 0, -1, -1);
  for (int64_t k = 0; k < len_a; ++k) {
    const Piece& p = a.pieces[k];
    put(p.id, 0, p.span_begin, p.span_end);
  }
  put(sep_id, 0, -1, -1);
  if (len_b > 0) {
    for (int64_t k = 0; k < len_b; ++k) {
      const Piece& p = b.pieces[k];
      put(p.id, 1, p.span_begin, p.span_end);
    }
    put(sep_id, 1, -1, -1);
  }
  for (; pos < L; ++pos) {
    out.ids[pos] = 0;
    out.mask[pos] = 0;
    out.segments[pos] = 0;
    out.spans[2 * pos] = -1;
    out.spans[2 * pos + 1] = -1;
  }
}

}  // namespace bert_mtl
