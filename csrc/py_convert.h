// What every binding of bert_mtl._native shares: Python objects to the
// native core's types and back, checked (a bad argument is a TypeError or
// ValueError naming it), and the worker pool batch calls run on.
#ifndef BERT_MTL_PY_CONVERT_H_
#define BERT_MTL_PY_CONVERT_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer.h"

namespace bert_mtl {

namespace py = pybind11;

// Keeps the str objects alive while their storage is read without the GIL.
struct TextBatch {
  std::vector<py::object> owners;
  std::vector<TextView> views;
};

inline TextView ViewOf(py::handle obj, const char* what, size_t index,
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

inline TextBatch CollectTexts(py::handle seq, const char* what) {
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

inline std::u32string ToU32(py::handle obj) {
  if (!PyUnicode_Check(obj.ptr())) throw py::type_error("vocab tokens must be str");
  if (PyUnicode_READY(obj.ptr()) != 0) throw py::error_already_set();
  const int kind = PyUnicode_KIND(obj.ptr());
  const void* data = PyUnicode_DATA(obj.ptr());
  const Py_ssize_t n = PyUnicode_GET_LENGTH(obj.ptr());
  std::u32string s(static_cast<size_t>(n), U'\0');
  for (Py_ssize_t i = 0; i < n; ++i) s[i] = PyUnicode_READ(kind, data, i);
  return s;
}

inline py::str FromU32(const std::u32string& s) {
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

inline void CheckThreads(int num_threads) {
  if (num_threads < 1) throw py::value_error("num_threads must be >= 1");
}

template <typename T>
std::vector<T> ToVector(const py::handle& values) {
  auto array = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(values);
  if (!array) throw py::type_error("expected an integer array");
  return std::vector<T>(array.data(), array.data() + array.size());
}

// Row splits of `rows` rows over `size` values: 0 first, `size` last,
// never decreasing.
inline bool ValidSplits(const std::vector<int64_t>& splits, size_t rows, size_t size) {
  if (splits.size() != rows + 1 || splits.front() != 0 ||
      static_cast<size_t>(splits.back()) != size) return false;
  for (size_t i = 0; i + 1 < splits.size(); ++i) {
    if (splits[i] > splits[i + 1]) return false;
  }
  return true;
}

}  // namespace bert_mtl

#endif  // BERT_MTL_PY_CONVERT_H_
