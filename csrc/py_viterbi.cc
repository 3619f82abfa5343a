// bert_mtl._native's CRF decoder: viterbi_decode over numpy arrays, the
// shapes and lengths checked before viterbi.h's ViterbiDecode runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "py_bindings.h"
#include "py_convert.h"
#include "viterbi.h"

namespace bert_mtl {
namespace {

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

void BindViterbi(py::module_& m) {
  m.def("viterbi_decode", &Viterbi, py::arg("potentials"),
        py::arg("transitions"), py::arg("lengths"),
        py::arg("start_scores") = py::none(), py::arg("end_scores") = py::none(),
        "Best CRF tag paths [B, T] int32 and their scores [B] float32, "
        "identical to tfa.text.crf_decode.");
}

}  // namespace bert_mtl
