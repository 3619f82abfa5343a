// pybind11 bindings of the native core: bert_mtl._native.
//
// Text arrives as Python str objects and is read in place (any code point,
// lone surrogates included), so no UTF-8 round trip can fail or differ from
// Python.  Batch calls release the GIL while they tokenize.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "example_proto.h"
#include "tokenizer.h"
#include "unicode_tables.h"
#include "viterbi.h"

namespace py = pybind11;

namespace bert_mtl {
namespace {

// Keeps the str objects alive while their storage is read without the GIL.
struct TextBatch {
  std::vector<py::object> owners;
  std::vector<TextView> views;
};

TextView ViewOf(py::handle obj, const char* what, size_t index,
                std::vector<py::object>* owners) {
  py::object text;
  if (PyUnicode_Check(obj.ptr())) {
    text = py::reinterpret_borrow<py::object>(obj);
  } else if (PyBytes_Check(obj.ptr())) {
    // The original decodes bytes as UTF-8 and drops invalid bytes.
    PyObject* decoded = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(obj.ptr()),
                                             PyBytes_GET_SIZE(obj.ptr()),
                                             "ignore");
    if (decoded == nullptr) throw py::error_already_set();
    text = py::reinterpret_steal<py::object>(decoded);
  } else {
    throw py::type_error(std::string(what) + "[" + std::to_string(index) +
                         "] must be str or bytes, not " +
                         std::string(Py_TYPE(obj.ptr())->tp_name));
  }
  if (PyUnicode_READY(text.ptr()) != 0) throw py::error_already_set();
  const Py_ssize_t length = PyUnicode_GET_LENGTH(text.ptr());
  if (length > INT32_MAX - 1) {
    throw py::value_error(std::string(what) + "[" + std::to_string(index) +
                          "] is longer than 2**31 - 2 characters");
  }
  TextView view;
  view.data = PyUnicode_DATA(text.ptr());
  view.kind = PyUnicode_KIND(text.ptr());
  view.length = length;
  owners->push_back(std::move(text));
  return view;
}

TextBatch CollectTexts(py::handle seq, const char* what) {
  if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr())) {
    throw py::type_error(std::string(what) +
                         " must be a list or tuple of str or bytes");
  }
  py::sequence items = py::reinterpret_borrow<py::sequence>(seq);
  TextBatch batch;
  const size_t n = items.size();
  batch.owners.reserve(n);
  batch.views.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    batch.views.push_back(ViewOf(items[i], what, i, &batch.owners));
  }
  return batch;
}

std::u32string ToU32(py::handle obj) {
  if (!PyUnicode_Check(obj.ptr())) throw py::type_error("vocab tokens must be str");
  if (PyUnicode_READY(obj.ptr()) != 0) throw py::error_already_set();
  const int kind = PyUnicode_KIND(obj.ptr());
  const void* data = PyUnicode_DATA(obj.ptr());
  const Py_ssize_t n = PyUnicode_GET_LENGTH(obj.ptr());
  std::u32string s(static_cast<size_t>(n), U'\0');
  for (Py_ssize_t i = 0; i < n; ++i) s[i] = PyUnicode_READ(kind, data, i);
  return s;
}

py::str FromU32(const std::u32string& s) {
  PyObject* obj = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, s.data(),
                                            static_cast<Py_ssize_t>(s.size()));
  if (obj == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(obj);
}

// Runs fn(begin, end) over [0, n) in blocks of `block` items handed out on
// demand, so threads stay busy however unevenly long the texts are.
template <typename Fn>
void ParallelBlocks(size_t n, int num_threads, size_t block, Fn fn) {
  const size_t blocks = (n + block - 1) / block;
  const size_t workers =
      std::max<size_t>(1, std::min<size_t>(num_threads, blocks));
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t b = next++; b < blocks; b = next++) {
      fn(b * block, std::min(n, (b + 1) * block));
    }
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
}

constexpr size_t kBlock = 64;

void CheckThreads(int num_threads) {
  if (num_threads < 1) throw py::value_error("num_threads must be >= 1");
}

class NativeTokenizer {
 public:
  NativeTokenizer(const py::list& tokens, bool do_lower_case, int32_t unk_id,
                  int32_t cls_id, int32_t sep_id)
      : tokenizer_(ToVocab(tokens), do_lower_case, unk_id),
        cls_id_(cls_id),
        sep_id_(sep_id) {
    // [CLS] and [SEP] may be absent (-1) for a vocab used only to tokenize;
    // encode_batch then refuses to run.
    const int32_t size = static_cast<int32_t>(tokens.size());
    for (int32_t id : {unk_id, cls_id, sep_id}) {
      if (id < -1 || id >= size || (id == -1 && id == unk_id)) {
        throw py::value_error("special token id " + std::to_string(id) +
                              " is outside the vocabulary of size " +
                              std::to_string(size));
      }
    }
  }

  py::list Tokenize(py::handle text) const {
    std::vector<py::object> owners;
    const TextView view = ViewOf(text, "text", 0, &owners);
    Tokenization t;
    {
      py::gil_scoped_release release;
      tokenizer_.Tokenize(view, &t);
    }
    py::list out(t.pieces.size());
    for (size_t i = 0; i < t.pieces.size(); ++i) {
      out[i] = FromU32(PieceText(t, t.pieces[i]));
    }
    return out;
  }

  // The original BasicTokenizer.tokenize: cleaned, CJK-split,
  // (lower-cased and accent-stripped,) punctuation-split tokens.
  py::list BasicTokenize(py::handle text) const {
    std::vector<py::object> owners;
    const TextView view = ViewOf(text, "text", 0, &owners);
    Tokenization t;
    {
      py::gil_scoped_release release;
      tokenizer_.Tokenize(view, &t, /*basic_only=*/true);
    }
    py::list out(t.pieces.size());
    for (size_t i = 0; i < t.pieces.size(); ++i) {
      out[i] = FromU32(PieceText(t, t.pieces[i]));
    }
    return out;
  }

  // The original WordpieceTokenizer over whitespace-split `words`: their
  // pieces in order, None for a word that became the unknown token.
  py::list WordpieceTokenize(const py::object& words,
                             int32_t max_input_chars) const {
    TextBatch batch = CollectTexts(words, "words");
    Tokenization t;
    {
      py::gil_scoped_release release;
      for (const TextView& view : batch.views) {
        tokenizer_.Wordpiece(view, max_input_chars, &t);
      }
    }
    py::list out(t.pieces.size());
    for (size_t i = 0; i < t.pieces.size(); ++i) {
      const Piece& p = t.pieces[i];
      out[i] = p.unknown ? py::object(py::none())
                         : py::object(FromU32(PieceText(t, p)));
    }
    return out;
  }

  // Pieces of every text, concatenated: ids [M], spans [M, 2] (code point
  // offsets into the text), row_splits [N + 1].
  py::dict EncodeRagged(const py::object& texts, int num_threads) const {
    CheckThreads(num_threads);
    TextBatch batch = CollectTexts(texts, "texts");
    const size_t n = batch.views.size();
    const size_t blocks = (n + kBlock - 1) / kBlock;
    // One buffer per block of texts; row_counts[i] = pieces of text i.
    std::vector<std::vector<int32_t>> ids(blocks), spans(blocks);
    std::vector<int64_t> row_counts(n);
    {
      py::gil_scoped_release release;
      ParallelBlocks(n, num_threads, kBlock, [&](size_t lo, size_t hi) {
        Tokenization t;
        std::vector<int32_t>& block_ids = ids[lo / kBlock];
        std::vector<int32_t>& block_spans = spans[lo / kBlock];
        for (size_t i = lo; i < hi; ++i) {
          t.Clear();
          tokenizer_.Tokenize(batch.views[i], &t);
          row_counts[i] = static_cast<int64_t>(t.pieces.size());
          for (const Piece& p : t.pieces) {
            block_ids.push_back(p.id);
            block_spans.push_back(p.span_begin);
            block_spans.push_back(p.span_end);
          }
        }
      });
    }
    py::array_t<int64_t> row_splits(static_cast<py::ssize_t>(n + 1));
    int64_t* rs = row_splits.mutable_data();
    rs[0] = 0;
    for (size_t i = 0; i < n; ++i) rs[i + 1] = rs[i] + row_counts[i];
    const py::ssize_t total = static_cast<py::ssize_t>(rs[n]);
    py::array_t<int32_t> out_ids(total);
    py::array_t<int32_t> out_spans({total, py::ssize_t{2}});
    int32_t* pi = out_ids.mutable_data();
    int32_t* ps = out_spans.mutable_data();
    for (size_t b = 0; b < blocks; ++b) {
      const int64_t start = rs[b * kBlock];
      if (ids[b].empty()) continue;
      std::memcpy(pi + start, ids[b].data(), ids[b].size() * sizeof(int32_t));
      std::memcpy(ps + 2 * start, spans[b].data(),
                  spans[b].size() * sizeof(int32_t));
    }
    py::dict out;
    out["ids"] = out_ids;
    out["spans"] = out_spans;
    out["row_splits"] = row_splits;
    return out;
  }

  // Pieces of unit lists (characters or words), each list tokenized as its
  // units joined by single spaces: ids [M] and row_splits [N + 1] as in
  // EncodeRagged, first_token [U] (the index within its row of each unit's
  // first piece; -1 when the unit has none) and unit_splits [N + 1].
  py::dict EncodeUnits(const py::object& rows, int num_threads) const {
    CheckThreads(num_threads);
    if (!PyList_Check(rows.ptr()) && !PyTuple_Check(rows.ptr())) {
      throw py::type_error("units must be a list of lists of str");
    }
    py::sequence seq = py::reinterpret_borrow<py::sequence>(rows);
    const size_t n = seq.size();
    // The joined texts back to back (UCS-4), and every unit's start in its
    // own text, gathered while holding the GIL.
    std::vector<char32_t> chars;
    std::vector<int64_t> text_splits(n + 1, 0), unit_splits(n + 1, 0);
    std::vector<int64_t> unit_starts;
    for (size_t i = 0; i < n; ++i) {
      PyObject* row = PySequence_Fast_GET_ITEM(seq.ptr(), i);
      if (!PyList_Check(row) && !PyTuple_Check(row)) {
        throw py::type_error("units[" + std::to_string(i) +
                             "] must be a list of str, not " +
                             std::string(Py_TYPE(row)->tp_name));
      }
      const Py_ssize_t count = PySequence_Fast_GET_SIZE(row);
      PyObject** items = PySequence_Fast_ITEMS(row);
      const size_t text_start = chars.size();
      for (Py_ssize_t k = 0; k < count; ++k) {
        PyObject* unit = items[k];
        if (!PyUnicode_Check(unit)) {
          throw py::type_error("units[" + std::to_string(i) + "][" +
                               std::to_string(k) + "] must be str, not " +
                               std::string(Py_TYPE(unit)->tp_name));
        }
        if (PyUnicode_READY(unit) != 0) throw py::error_already_set();
        if (k > 0) chars.push_back(U' ');
        unit_starts.push_back(static_cast<int64_t>(chars.size() - text_start));
        const int kind = PyUnicode_KIND(unit);
        const void* data = PyUnicode_DATA(unit);
        const Py_ssize_t length = PyUnicode_GET_LENGTH(unit);
        for (Py_ssize_t c = 0; c < length; ++c) {
          chars.push_back(PyUnicode_READ(kind, data, c));
        }
      }
      if (chars.size() - text_start > static_cast<size_t>(INT32_MAX - 1)) {
        throw py::value_error("units[" + std::to_string(i) +
                              "] joined is longer than 2**31 - 2 characters");
      }
      text_splits[i + 1] = static_cast<int64_t>(chars.size());
      unit_splits[i + 1] = static_cast<int64_t>(unit_starts.size());
    }
    const size_t blocks = (n + kBlock - 1) / kBlock;
    std::vector<std::vector<int32_t>> ids(blocks);
    std::vector<int64_t> row_counts(n);
    py::array_t<int32_t> first_token(
        static_cast<py::ssize_t>(unit_starts.size()));
    int32_t* first = first_token.mutable_data();
    {
      py::gil_scoped_release release;
      ParallelBlocks(n, num_threads, kBlock, [&](size_t lo, size_t hi) {
        Tokenization t;
        std::vector<int32_t>& block_ids = ids[lo / kBlock];
        for (size_t i = lo; i < hi; ++i) {
          t.Clear();
          TextView view;
          view.data = chars.data() + text_splits[i];
          view.kind = 4;
          view.length = text_splits[i + 1] - text_splits[i];
          tokenizer_.Tokenize(view, &t);
          row_counts[i] = static_cast<int64_t>(t.pieces.size());
          const int64_t u_lo = unit_splits[i], u_hi = unit_splits[i + 1];
          std::fill(first + u_lo, first + u_hi, -1);
          // Pieces run in text order: a unit's first piece is the first one
          // starting at or after the unit's start (and before the next's).
          int64_t u = u_lo - 1, previous = -1;
          for (size_t p = 0; p < t.pieces.size(); ++p) {
            block_ids.push_back(t.pieces[p].id);
            const int64_t start = t.pieces[p].span_begin;
            while (u + 1 < u_hi && unit_starts[u + 1] <= start) ++u;
            if (u >= u_lo && u != previous) {
              first[u] = static_cast<int32_t>(p);
              previous = u;
            }
          }
        }
      });
    }
    py::array_t<int64_t> row_splits(static_cast<py::ssize_t>(n + 1));
    int64_t* rs = row_splits.mutable_data();
    rs[0] = 0;
    for (size_t i = 0; i < n; ++i) rs[i + 1] = rs[i] + row_counts[i];
    py::array_t<int32_t> out_ids(static_cast<py::ssize_t>(rs[n]));
    int32_t* pi = out_ids.mutable_data();
    for (size_t b = 0; b < blocks; ++b) {
      if (ids[b].empty()) continue;
      std::memcpy(pi + rs[b * kBlock], ids[b].data(),
                  ids[b].size() * sizeof(int32_t));
    }
    py::array_t<int64_t> out_unit_splits(static_cast<py::ssize_t>(n + 1));
    std::memcpy(out_unit_splits.mutable_data(), unit_splits.data(),
                (n + 1) * sizeof(int64_t));
    py::dict out;
    out["ids"] = out_ids;
    out["row_splits"] = row_splits;
    out["first_token"] = first_token;
    out["unit_splits"] = out_unit_splits;
    return out;
  }

  // [CLS] a [SEP] (b [SEP]) padded with id 0 to max_seq_length, truncating
  // as run_classifier.py does (longest sequence first, b on ties).
  py::dict EncodeBatch(const py::object& texts, const py::object& texts_b,
                       int64_t max_seq_length, int num_threads) const {
    CheckThreads(num_threads);
    if (cls_id_ < 0 || sep_id_ < 0) {
      throw py::value_error("the vocabulary has no [CLS] or no [SEP] token");
    }
    TextBatch batch_a = CollectTexts(texts, "texts");
    const size_t n = batch_a.views.size();
    const bool pairs = !texts_b.is_none();
    TextBatch batch_b;
    if (pairs) {
      batch_b = CollectTexts(texts_b, "texts_b");
      if (batch_b.views.size() != n) {
        throw py::value_error("texts_b has " +
                              std::to_string(batch_b.views.size()) +
                              " entries but texts has " + std::to_string(n));
      }
    }
    const int64_t min_len = pairs ? 3 : 2;
    if (max_seq_length < min_len || max_seq_length > INT32_MAX) {
      throw py::value_error("max_seq_length must be at least " +
                            std::to_string(min_len) + ", got " +
                            std::to_string(max_seq_length));
    }
    const py::ssize_t N = static_cast<py::ssize_t>(n);
    const py::ssize_t L = static_cast<py::ssize_t>(max_seq_length);
    py::array_t<int32_t> input_ids({N, L}), input_mask({N, L}),
        segment_ids({N, L}), token_spans({N, L, py::ssize_t{2}}),
        num_pieces({N, py::ssize_t{2}});
    int32_t* ids = input_ids.mutable_data();
    int32_t* mask = input_mask.mutable_data();
    int32_t* seg = segment_ids.mutable_data();
    int32_t* spans = token_spans.mutable_data();
    int32_t* counts = num_pieces.mutable_data();
    {
      py::gil_scoped_release release;
      ParallelBlocks(n, num_threads, kBlock, [&](size_t lo, size_t hi) {
        Tokenization ta, tb;
        for (size_t i = lo; i < hi; ++i) {
          ta.Clear();
          tb.Clear();
          tokenizer_.Tokenize(batch_a.views[i], &ta);
          if (pairs) tokenizer_.Tokenize(batch_b.views[i], &tb);
          WriteRow(ta, tb, L, ids + i * L, mask + i * L, seg + i * L,
                   spans + 2 * i * L, counts + 2 * i);
        }
      });
    }
    py::dict out;
    out["input_ids"] = input_ids;
    out["input_mask"] = input_mask;
    out["segment_ids"] = segment_ids;
    out["token_spans"] = token_spans;
    out["num_pieces"] = num_pieces;
    return out;
  }

  bool do_lower_case() const { return tokenizer_.do_lower_case(); }

 private:
  static std::vector<std::u32string> ToVocab(const py::list& tokens) {
    std::vector<std::u32string> vocab;
    vocab.reserve(tokens.size());
    for (py::handle t : tokens) vocab.push_back(ToU32(t));
    return vocab;
  }

  void WriteRow(const Tokenization& a, const Tokenization& b, int64_t L,
                int32_t* ids, int32_t* mask, int32_t* seg, int32_t* spans,
                int32_t* counts) const {
    int64_t len_a = static_cast<int64_t>(a.pieces.size());
    int64_t len_b = static_cast<int64_t>(b.pieces.size());
    counts[0] = static_cast<int32_t>(len_a);
    counts[1] = static_cast<int32_t>(len_b);
    if (len_b > 0) {
      while (len_a + len_b > L - 3) {
        if (len_a > len_b) --len_a; else --len_b;
      }
    } else {
      len_a = std::min(len_a, L - 2);
    }
    int64_t pos = 0;
    auto put = [&](int32_t id, int32_t segment, int32_t begin, int32_t end) {
      ids[pos] = id;
      mask[pos] = 1;
      seg[pos] = segment;
      spans[2 * pos] = begin;
      spans[2 * pos + 1] = end;
      ++pos;
    };
    put(cls_id_, 0, -1, -1);
    for (int64_t k = 0; k < len_a; ++k) {
      const Piece& p = a.pieces[k];
      put(p.id, 0, p.span_begin, p.span_end);
    }
    put(sep_id_, 0, -1, -1);
    if (len_b > 0) {
      for (int64_t k = 0; k < len_b; ++k) {
        const Piece& p = b.pieces[k];
        put(p.id, 1, p.span_begin, p.span_end);
      }
      put(sep_id_, 1, -1, -1);
    }
    for (; pos < L; ++pos) {
      ids[pos] = 0;
      mask[pos] = 0;
      seg[pos] = 0;
      spans[2 * pos] = -1;
      spans[2 * pos + 1] = -1;
    }
  }

  WordpieceTokenizer tokenizer_;
  int32_t cls_id_, sep_id_;
};

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

py::tuple Viterbi(const FloatArray& potentials, const FloatArray& transitions,
                  const IntArray& lengths, const py::object& start_scores,
                  const py::object& end_scores) {
  if (potentials.ndim() != 3) {
    throw py::value_error("potentials must be [batch, max_len, num_tags], got " +
                          std::to_string(potentials.ndim()) + " dimensions");
  }
  const int64_t B = potentials.shape(0), T = potentials.shape(1),
                K = potentials.shape(2);
  if (transitions.ndim() != 2 || transitions.shape(0) != K ||
      transitions.shape(1) != K) {
    throw py::value_error("transitions must be [num_tags, num_tags] = [" +
                          std::to_string(K) + ", " + std::to_string(K) + "]");
  }
  if (lengths.ndim() != 1 || lengths.shape(0) != B) {
    throw py::value_error("lengths must be [batch] = [" + std::to_string(B) + "]");
  }
  if (K == 0 && T > 0) throw py::value_error("num_tags must be at least 1");
  const int32_t* len = lengths.data();
  for (int64_t b = 0; b < B; ++b) {
    if (len[b] < 0 || len[b] > T) {
      throw py::value_error("lengths[" + std::to_string(b) + "] = " +
                            std::to_string(len[b]) + " is outside [0, " +
                            std::to_string(T) + "]");
    }
  }
  // Optional [K] score vectors: converted copies kept alive in `holders`.
  std::vector<FloatArray> holders;
  auto optional_vector = [&](const py::object& obj,
                             const char* name) -> const float* {
    if (obj.is_none()) return nullptr;
    FloatArray a = FloatArray::ensure(obj);
    if (!a || a.ndim() != 1 || a.shape(0) != K) {
      throw py::value_error(std::string(name) + " must be [num_tags] = [" +
                            std::to_string(K) + "]");
    }
    holders.push_back(a);
    return holders.back().data();
  };
  holders.reserve(2);
  const float* start_ptr = optional_vector(start_scores, "start_scores");
  const float* end_ptr = optional_vector(end_scores, "end_scores");
  py::array_t<int32_t> tags({static_cast<py::ssize_t>(B), static_cast<py::ssize_t>(T)});
  py::array_t<float> scores(static_cast<py::ssize_t>(B));
  int32_t* tags_ptr = tags.mutable_data();
  float* scores_ptr = scores.mutable_data();
  {
    py::gil_scoped_release release;
    ViterbiDecode(potentials.data(), transitions.data(), len, B, T, K,
                  start_ptr, end_ptr, tags_ptr, scores_ptr);
  }
  return py::make_tuple(tags, scores);
}

}  // namespace
}  // namespace bert_mtl

// dict name -> array (floating: FloatList, else Int64List) -> serialized
// tf.train.Example bytes, features in the dict's order.
py::bytes SerializeExamplePy(const py::dict& features) {
  std::vector<bert_mtl::ExampleFeature> converted;
  converted.reserve(features.size());
  for (const auto& item : features) {
    bert_mtl::ExampleFeature feature;
    feature.name = py::cast<std::string>(item.first);
    py::array array = py::array::ensure(item.second);
    if (!array) throw py::type_error("feature " + feature.name + " is not array-like");
    if (array.dtype().kind() == 'f') {
      auto values = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(array);
      feature.is_float = true;
      feature.floats.assign(values.data(), values.data() + values.size());
    } else if (array.dtype().kind() == 'i' || array.dtype().kind() == 'u' ||
               array.dtype().kind() == 'b') {
      auto values = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(array);
      feature.ints.assign(values.data(), values.data() + values.size());
    } else {
      throw py::type_error("feature " + feature.name + " must hold integers or floats");
    }
    converted.push_back(std::move(feature));
  }
  std::string out;
  {
    py::gil_scoped_release release;
    out = bert_mtl::SerializeExample(converted);
  }
  return py::bytes(out);
}

template <typename T>
std::vector<T> ToVector(const py::handle& values) {
  auto array = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(values);
  if (!array) throw py::type_error("expected an integer array");
  return std::vector<T>(array.data(), array.data() + array.size());
}

// See bert_mtl::UnitRecords; checks every index before the C++ runs.
py::list UnitRecordsPy(const py::handle& ids, const py::handle& token_splits,
                       const py::handle& first_token, const py::handle& unit_splits,
                       const py::handle& example_index, const py::list& names,
                       const py::list& labels, int max_seq_length, int cls_id,
                       int sep_id) {
  bert_mtl::UnitBatch batch;
  batch.ids = ToVector<int32_t>(ids);
  batch.token_splits = ToVector<int64_t>(token_splits);
  batch.first_token = ToVector<int32_t>(first_token);
  batch.unit_splits = ToVector<int64_t>(unit_splits);
  batch.example_index = ToVector<int64_t>(example_index);
  const size_t examples = batch.example_index.size();
  auto valid_splits = [examples](const std::vector<int64_t>& splits, size_t size) {
    if (splits.size() != examples + 1 || splits.front() != 0 ||
        static_cast<size_t>(splits.back()) != size) return false;
    for (size_t i = 0; i + 1 < splits.size(); ++i) {
      if (splits[i] > splits[i + 1]) return false;
    }
    return true;
  };
  if (!valid_splits(batch.token_splits, batch.ids.size()) ||
      !valid_splits(batch.unit_splits, batch.first_token.size())) {
    throw py::value_error("unit_records: splits do not match the arrays");
  }
  if (max_seq_length < 3) throw py::value_error("max_seq_length must be >= 3");
  if (names.size() != labels.size()) throw py::value_error("one label array per name");
  for (size_t p = 0; p < names.size(); ++p) {
    batch.names.push_back(py::cast<std::string>(names[p]));
    batch.labels.push_back(labels[p].is_none() ? std::vector<int32_t>()
                                               : ToVector<int32_t>(labels[p]));
    if (!batch.labels.back().empty() &&
        batch.labels.back().size() != batch.first_token.size()) {
      throw py::value_error("labels of " + batch.names.back() +
                            " do not match the units");
    }
  }
  std::vector<std::string> records;
  {
    py::gil_scoped_release release;
    records = bert_mtl::UnitRecords(batch, max_seq_length, cls_id, sep_id);
  }
  py::list out;
  for (const std::string& record : records) out.append(py::bytes(record));
  return out;
}

void AppendUtf8(char32_t c, std::string* out) {
  // Surrogates are written like any other code point, as Python's
  // encode("utf-8", "surrogatepass") does.
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

void AppendJoined(PyObject* row, const char* what, size_t index,
                  std::string* out) {
  if (!PyList_Check(row) && !PyTuple_Check(row)) {
    throw py::type_error(std::string(what) + "[" + std::to_string(index) +
                         "] must be a list of str");
  }
  const Py_ssize_t count = PySequence_Fast_GET_SIZE(row);
  PyObject** items = PySequence_Fast_ITEMS(row);
  for (Py_ssize_t k = 0; k < count; ++k) {
    if (!PyUnicode_Check(items[k])) {
      throw py::type_error(std::string(what) + "[" + std::to_string(index) +
                           "] holds a non-str item");
    }
    if (PyUnicode_READY(items[k]) != 0) throw py::error_already_set();
    if (k > 0) out->push_back('\x1f');
    const int kind = PyUnicode_KIND(items[k]);
    const void* data = PyUnicode_DATA(items[k]);
    const Py_ssize_t length = PyUnicode_GET_LENGTH(items[k]);
    for (Py_ssize_t c = 0; c < length; ++c) {
      AppendUtf8(PyUnicode_READ(kind, data, c), out);
    }
  }
}

// The bytes that bert_mtl.data.cache.examples_digest hashes for examples
// whose inputs and labels are lists of str: per example, the inputs joined
// by \x1f, \x1e, the labels joined by \x1f, \x1d; UTF-8.
py::bytes UnitsPayload(const py::handle& inputs, const py::handle& labels) {
  for (const py::handle& seq : {inputs, labels}) {
    if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr())) {
      throw py::type_error("inputs and labels must be lists");
    }
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(inputs.ptr());
  if (PySequence_Fast_GET_SIZE(labels.ptr()) != n) {
    throw py::value_error("inputs and labels differ in length");
  }
  PyObject** input_rows = PySequence_Fast_ITEMS(inputs.ptr());
  PyObject** label_rows = PySequence_Fast_ITEMS(labels.ptr());
  std::string out;
  for (Py_ssize_t i = 0; i < n; ++i) {
    AppendJoined(input_rows[i], "inputs", static_cast<size_t>(i), &out);
    out.push_back('\x1e');
    AppendJoined(label_rows[i], "labels", static_cast<size_t>(i), &out);
    out.push_back('\x1d');
  }
  return py::bytes(out);
}

// Label ids of label lists through {label: id}: (int32 [sum of lengths],
// -1) or, at the first label missing from the map, (None, its row).
py::tuple LookupLabels(const py::handle& rows, const py::dict& mapping) {
  if (!PyList_Check(rows.ptr()) && !PyTuple_Check(rows.ptr())) {
    throw py::type_error("labels must be a list of lists of str");
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(rows.ptr());
  PyObject** row_items = PySequence_Fast_ITEMS(rows.ptr());
  std::vector<int32_t> out;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* row = row_items[i];
    if (!PyList_Check(row) && !PyTuple_Check(row)) {
      throw py::type_error("labels[" + std::to_string(i) + "] must be a list");
    }
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(row);
    PyObject** items = PySequence_Fast_ITEMS(row);
    for (Py_ssize_t k = 0; k < count; ++k) {
      PyObject* id = PyDict_GetItemWithError(mapping.ptr(), items[k]);
      if (id == nullptr) {
        if (PyErr_Occurred()) throw py::error_already_set();
        return py::make_tuple(py::none(), i);
      }
      const long value = PyLong_AsLong(id);
      if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
      out.push_back(static_cast<int32_t>(value));
    }
  }
  py::array_t<int32_t> ids(static_cast<py::ssize_t>(out.size()));
  if (!out.empty()) {
    std::memcpy(ids.mutable_data(), out.data(), out.size() * sizeof(int32_t));
  }
  return py::make_tuple(ids, -1);
}

PYBIND11_MODULE(_native, m) {
  using bert_mtl::NativeTokenizer;
  m.doc() = "Native core of bert_mtl: WordPiece tokenizer and CRF Viterbi.";
  m.attr("unidata_version") = bert_mtl::unicode::kUnidataVersion;
  m.attr("max_input_chars_per_word") =
      bert_mtl::WordpieceTokenizer::kMaxInputCharsPerWord;
  py::class_<NativeTokenizer>(m, "NativeTokenizer")
      .def(py::init<const py::list&, bool, int32_t, int32_t, int32_t>(),
           py::arg("tokens"), py::arg("do_lower_case"), py::arg("unk_id"),
           py::arg("cls_id"), py::arg("sep_id"))
      .def("tokenize", &NativeTokenizer::Tokenize, py::arg("text"))
      .def("basic_tokenize", &NativeTokenizer::BasicTokenize, py::arg("text"))
      .def("wordpiece_tokenize", &NativeTokenizer::WordpieceTokenize,
           py::arg("words"), py::arg("max_input_chars_per_word"))
      .def("encode_ragged", &NativeTokenizer::EncodeRagged, py::arg("texts"),
           py::arg("num_threads") = 1)
      .def("encode_units", &NativeTokenizer::EncodeUnits, py::arg("units"),
           py::arg("num_threads") = 1)
      .def("encode_batch", &NativeTokenizer::EncodeBatch, py::arg("texts"),
           py::arg("texts_b") = py::none(), py::arg("max_seq_length") = 128,
           py::arg("num_threads") = 1)
      .def_property_readonly("do_lower_case", &NativeTokenizer::do_lower_case);
  m.def("viterbi_decode", &bert_mtl::Viterbi, py::arg("potentials"),
        py::arg("transitions"), py::arg("lengths"),
        py::arg("start_scores") = py::none(), py::arg("end_scores") = py::none(),
        "Best CRF tag paths [B, T] int32 and their scores [B] float32, "
        "identical to tfa.text.crf_decode.");
  m.def("serialize_example", &SerializeExamplePy, py::arg("features"),
        "A serialized tf.train.Example from {name: int or float array}.");
  m.def("unit_records", &UnitRecordsPy, py::arg("ids"), py::arg("token_splits"),
        py::arg("first_token"), py::arg("unit_splits"), py::arg("example_index"),
        py::arg("names"), py::arg("labels"), py::arg("max_seq_length"),
        py::arg("cls_id"), py::arg("sep_id"),
        "Serialized sequence-labelling records of a batch (one per window).");
  m.def("units_payload", &UnitsPayload, py::arg("inputs"), py::arg("labels"),
        "The bytes examples_digest hashes for unit-list examples.");
  m.def("lookup_labels", &LookupLabels, py::arg("labels"), py::arg("mapping"),
        "(int32 ids of every label, -1), or (None, row) at the first label "
        "the mapping lacks.");
  m.def("frame_record",
        [](const py::bytes& data) {
          return py::bytes(bert_mtl::FrameRecord(std::string(data)));
        },
        py::arg("data"),
        "One TFRecord (length, masked CRC-32C, data, masked CRC-32C), "
        "byte-identical to tf.io.TFRecordWriter's.");
}
