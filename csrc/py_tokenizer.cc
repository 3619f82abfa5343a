// bert_mtl._native's tokenizer: NativeTokenizer (the WordPiece tokenizer of
// tokenizer.h over Python str, alone and in batches) and the Unicode tables
// it reads.
//
// Text arrives as Python str objects and is read in place (any code point,
// lone surrogates included), so no UTF-8 round trip can fail or differ from
// Python.  Batch calls release the GIL while they tokenize.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "alignment.h"
#include "py_bindings.h"
#include "py_convert.h"
#include "tokenizer.h"
#include "unicode_tables.h"

namespace bert_mtl {
namespace {

class NativeTokenizer {
 public:
  NativeTokenizer(const py::list& tokens, bool do_lower_case, int32_t unk_id,
                  int32_t cls_id, int32_t sep_id, bool normalize_width)
      : tokenizer_(ToVocab(tokens), do_lower_case, unk_id, normalize_width),
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
          for (const Piece& p : t.pieces) block_ids.push_back(p.id);
          const int64_t u_lo = unit_splits[i];
          FirstPieceOfUnits(t.pieces, unit_starts.data() + u_lo,
                            unit_splits[i + 1] - u_lo, first + u_lo);
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
          PackPairRow(ta, tb, L, cls_id_, sep_id_,
                      {ids + i * L, mask + i * L, seg + i * L,
                       spans + 2 * i * L, counts + 2 * i});
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
  bool normalize_width() const { return tokenizer_.normalize_width(); }

 private:
  static std::vector<std::u32string> ToVocab(const py::list& tokens) {
    std::vector<std::u32string> vocab;
    vocab.reserve(tokens.size());
    for (py::handle t : tokens) vocab.push_back(ToU32(t));
    return vocab;
  }

  WordpieceTokenizer tokenizer_;
  int32_t cls_id_, sep_id_;
};

// The Unicode tables the tokenizer reads (unicode_tables.h), as numpy
// arrays: the in-graph tokenizer of the export (bert_mtl.graph_tokenizer)
// is built from exactly these.  A code point's record is
// records[stage2[(stage1[cp >> block_shift] << block_shift) | (cp & mask)]].
py::dict UnicodeTables() {
  namespace u = unicode;
  auto copy = [](const auto* data, size_t n) {
    using T = std::remove_cv_t<std::remove_reference_t<decltype(*data)>>;
    py::array_t<T> out(static_cast<py::ssize_t>(n));
    std::memcpy(out.mutable_data(), data, n * sizeof(T));
    return out;
  };
  const size_t n = sizeof(u::kRecords) / sizeof(u::kRecords[0]);
  py::array_t<uint8_t> flags(n), ccc(n), lower_len(n), nfd_len(n);
  py::array_t<uint32_t> lower_off(n), nfd_off(n);
  for (size_t i = 0; i < n; ++i) {
    flags.mutable_at(i) = u::kRecords[i].flags;
    ccc.mutable_at(i) = u::kRecords[i].ccc;
    lower_len.mutable_at(i) = u::kRecords[i].lower_len;
    nfd_len.mutable_at(i) = u::kRecords[i].nfd_len;
    lower_off.mutable_at(i) = u::kRecords[i].lower_off;
    nfd_off.mutable_at(i) = u::kRecords[i].nfd_off;
  }
  py::dict out;
  out["unidata_version"] = u::kUnidataVersion;
  out["block_shift"] = u::kBlockShift;
  out["stage1"] = copy(u::kStage1, sizeof(u::kStage1) / sizeof(u::kStage1[0]));
  out["stage2"] = copy(u::kStage2, sizeof(u::kStage2) / sizeof(u::kStage2[0]));
  out["flags"] = flags;
  out["ccc"] = ccc;
  out["lower_len"] = lower_len;
  out["lower_off"] = lower_off;
  out["nfd_len"] = nfd_len;
  out["nfd_off"] = nfd_off;
  out["lower_pool"] = copy(u::kLowerPool,
                           sizeof(u::kLowerPool) / sizeof(u::kLowerPool[0]));
  out["nfd_pool"] = copy(u::kNfdPool,
                         sizeof(u::kNfdPool) / sizeof(u::kNfdPool[0]));
  py::dict bits;
  bits["control"] = u::kControl;
  bits["clean_space"] = u::kCleanSpace;
  bits["py_space"] = u::kPySpace;
  bits["punct"] = u::kPunct;
  bits["mn"] = u::kMn;
  bits["cjk"] = u::kCjk;
  bits["cased"] = u::kCased;
  bits["case_ignorable"] = u::kCaseIgnorable;
  out["flag_bits"] = bits;
  return out;
}

}  // namespace

void BindTokenizer(py::module_& m) {
  m.attr("unidata_version") = unicode::kUnidataVersion;
  m.attr("max_input_chars_per_word") =
      WordpieceTokenizer::kMaxInputCharsPerWord;
  py::class_<NativeTokenizer>(m, "NativeTokenizer")
      .def(py::init<const py::list&, bool, int32_t, int32_t, int32_t, bool>(),
           py::arg("tokens"), py::arg("do_lower_case"), py::arg("unk_id"),
           py::arg("cls_id"), py::arg("sep_id"),
           py::arg("normalize_width") = false)
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
      .def_property_readonly("do_lower_case", &NativeTokenizer::do_lower_case)
      .def_property_readonly("normalize_width",
                             &NativeTokenizer::normalize_width);
  m.def("unicode_tables", &UnicodeTables,
        "The tokenizer's Unicode tables as numpy arrays (see py_tokenizer.cc).");
}

}  // namespace bert_mtl
