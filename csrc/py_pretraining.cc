// bert_mtl._native's pretraining data: PretrainingInstances (pretraining.h)
// over a tokenized corpus, its ids, splits and settings checked first.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // instance() returns std::vectors as lists

#include <memory>
#include <string>
#include <vector>

#include "pretraining.h"
#include "py_bindings.h"
#include "py_convert.h"

namespace bert_mtl {
namespace {

// See PretrainingInstances; checks every id and split first.
std::unique_ptr<PretrainingInstances> MakePretrainingInstances(
    const py::handle& ids, const py::handle& sentence_splits,
    const py::handle& document_splits, const py::handle& continuation,
    int32_t cls_id, int32_t sep_id, int32_t mask_id, int max_seq_length,
    int dupe_factor, double short_seq_prob, double masked_lm_prob,
    int max_predictions_per_seq, bool do_whole_word_mask, const py::int_& seed) {
  TokenizedCorpus corpus;
  corpus.ids = ToVector<int32_t>(ids);
  corpus.sentence_splits = ToVector<int64_t>(sentence_splits);
  corpus.document_splits = ToVector<int64_t>(document_splits);
  corpus.continuation = ToVector<uint8_t>(continuation);
  if (corpus.sentence_splits.empty() || corpus.document_splits.empty() ||
      !ValidSplits(corpus.sentence_splits, corpus.sentence_splits.size() - 1,
                   corpus.ids.size()) ||
      !ValidSplits(corpus.document_splits, corpus.document_splits.size() - 1,
                   corpus.sentence_splits.size() - 1)) {
    throw py::value_error("pretraining_instances: splits do not match the arrays");
  }
  PretrainingSettings settings;
  settings.vocab_size = static_cast<int32_t>(corpus.continuation.size());
  for (int32_t id : {cls_id, sep_id, mask_id}) {
    if (id < 0 || id >= settings.vocab_size) {
      throw py::value_error("pretraining_instances: special id " + std::to_string(id) +
                            " is outside the vocabulary of " +
                            std::to_string(settings.vocab_size));
    }
  }
  for (size_t i = 0; i < corpus.ids.size(); ++i) {
    if (corpus.ids[i] < 0 || corpus.ids[i] >= settings.vocab_size) {
      throw py::value_error("pretraining_instances: token id " +
                            std::to_string(corpus.ids[i]) + " at " + std::to_string(i) +
                            " is outside the vocabulary of " +
                            std::to_string(settings.vocab_size));
    }
  }
  if (max_seq_length < 5) throw py::value_error("max_seq_length must be >= 5");
  if (dupe_factor < 0 || max_predictions_per_seq < 0) {
    throw py::value_error("dupe_factor and max_predictions_per_seq must be >= 0");
  }
  settings.cls_id = cls_id;
  settings.sep_id = sep_id;
  settings.mask_id = mask_id;
  settings.max_seq_length = max_seq_length;
  settings.dupe_factor = dupe_factor;
  settings.short_seq_prob = short_seq_prob;
  settings.masked_lm_prob = masked_lm_prob;
  settings.max_predictions_per_seq = max_predictions_per_seq;
  settings.do_whole_word_mask = do_whole_word_mask;
  // random.Random(seed) seeds from abs(seed)'s 32-bit words.
  std::vector<uint32_t> key;
  py::object rest = py::reinterpret_steal<py::object>(PyNumber_Absolute(seed.ptr()));
  if (!rest) throw py::error_already_set();
  const py::int_ zero(0), mask(0xffffffffu), shift(32);
  while (py::cast<bool>(rest.attr("__gt__")(zero))) {
    key.push_back(py::cast<uint32_t>(rest.attr("__and__")(mask)));
    rest = rest.attr("__rshift__")(shift);
  }
  if (key.empty()) key.push_back(0);
  py::gil_scoped_release release;
  return std::make_unique<PretrainingInstances>(corpus, settings, key);
}

py::tuple PretrainingInstance(const PretrainingInstances& instances, size_t i) {
  if (i >= instances.size()) throw py::index_error("instance index out of range");
  std::vector<int32_t> tokens, positions, labels;
  int segment_a_length;
  bool is_random_next;
  instances.Get(i, &tokens, &segment_a_length, &is_random_next, &positions, &labels);
  std::vector<int32_t> segment_ids(tokens.size(), 1);
  std::fill(segment_ids.begin(), segment_ids.begin() + segment_a_length, 0);
  return py::make_tuple(tokens, segment_ids, is_random_next, positions, labels);
}

py::list PretrainingRecords(const PretrainingInstances& instances, size_t lo,
                            size_t hi) {
  if (lo > hi || hi > instances.size()) throw py::index_error("record range out of range");
  std::vector<std::string> records(hi - lo);
  {
    py::gil_scoped_release release;
    for (size_t i = lo; i < hi; ++i) records[i - lo] = instances.Record(i);
  }
  py::list out;
  for (const auto& record : records) out.append(py::bytes(record));
  return out;
}

}  // namespace

void BindPretraining(py::module_& m) {
  py::class_<PretrainingInstances>(m, "PretrainingInstances")
      .def(py::init(&MakePretrainingInstances), py::arg("ids"),
           py::arg("sentence_splits"), py::arg("document_splits"),
           py::arg("continuation"), py::arg("cls_id"), py::arg("sep_id"),
           py::arg("mask_id"), py::arg("max_seq_length"), py::arg("dupe_factor"),
           py::arg("short_seq_prob"), py::arg("masked_lm_prob"),
           py::arg("max_predictions_per_seq"), py::arg("do_whole_word_mask"),
           py::arg("seed"),
           "The shuffled masked-LM + next-sentence instances of a corpus "
           "(ragged ids: sentences of documents), drawn as "
           "bert_mtl.data.pretraining.create_instances draws them; "
           "`continuation` holds 1 per '##' vocabulary id.")
      .def("__len__", &PretrainingInstances::size)
      .def("instance", &PretrainingInstance, py::arg("index"),
           "(token ids, segment ids, is_random_next, masked positions, "
           "original ids at them).")
      .def("records", &PretrainingRecords, py::arg("lo"), py::arg("hi"),
           "Serialized tf.train.Examples of instances lo..hi-1 "
           "(pretraining.FEATURE_NAMES, statically padded).");
}

}  // namespace bert_mtl
