// bert_mtl._native's record writing: tf.train.Examples and TFRecord frames
// (example_proto.h), sequence-labelling records of a batch, the bytes the
// feature cache hashes and label lookups, each argument checked first.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

#include "example_proto.h"
#include "py_bindings.h"
#include "py_convert.h"

namespace bert_mtl {
namespace {

// dict name -> array (floating: FloatList, else Int64List) -> serialized
// tf.train.Example bytes, features in the dict's order.
py::bytes SerializeExamplePy(const py::dict& features) {
  std::vector<ExampleFeature> converted;
  converted.reserve(features.size());
  for (const auto& item : features) {
    ExampleFeature feature;
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
    out = SerializeExample(converted);
  }
  return py::bytes(out);
}

// See UnitRecords; checks every index before the C++ runs.
py::list UnitRecordsPy(const py::handle& ids, const py::handle& token_splits,
                       const py::handle& first_token, const py::handle& unit_splits,
                       const py::handle& example_index, const py::list& names,
                       const py::list& labels, int max_seq_length, int cls_id,
                       int sep_id, int stride) {
  UnitBatch batch;
  batch.ids = ToVector<int32_t>(ids);
  batch.token_splits = ToVector<int64_t>(token_splits);
  batch.first_token = ToVector<int32_t>(first_token);
  batch.unit_splits = ToVector<int64_t>(unit_splits);
  batch.example_index = ToVector<int64_t>(example_index);
  const size_t examples = batch.example_index.size();
  if (!ValidSplits(batch.token_splits, examples, batch.ids.size()) ||
      !ValidSplits(batch.unit_splits, examples, batch.first_token.size())) {
    throw py::value_error("unit_records: splits do not match the arrays");
  }
  if (max_seq_length < 3) throw py::value_error("max_seq_length must be >= 3");
  if (stride < 1 || stride > max_seq_length - 2) {
    throw py::value_error("stride must be in [1, max_seq_length - 2]");
  }
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
    records = UnitRecords(batch, max_seq_length, cls_id, sep_id, stride);
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

}  // namespace

void BindRecords(py::module_& m) {
  m.def("serialize_example", &SerializeExamplePy, py::arg("features"),
        "A serialized tf.train.Example from {name: int or float array}.");
  m.def("unit_records", &UnitRecordsPy, py::arg("ids"), py::arg("token_splits"),
        py::arg("first_token"), py::arg("unit_splits"), py::arg("example_index"),
        py::arg("names"), py::arg("labels"), py::arg("max_seq_length"),
        py::arg("cls_id"), py::arg("sep_id"), py::arg("stride"),
        "Serialized sequence-labelling records of a batch (one per window, "
        "windows `stride` tokens apart).");
  m.def("units_payload", &UnitsPayload, py::arg("inputs"), py::arg("labels"),
        "The bytes examples_digest hashes for unit-list examples.");
  m.def("lookup_labels", &LookupLabels, py::arg("labels"), py::arg("mapping"),
        "(int32 ids of every label, -1), or (None, row) at the first label "
        "the mapping lacks.");
  m.def("frame_record",
        [](const py::bytes& data) {
          return py::bytes(FrameRecord(std::string(data)));
        },
        py::arg("data"),
        "One TFRecord (length, masked CRC-32C, data, masked CRC-32C), "
        "byte-identical to tf.io.TFRecordWriter's.");
}

}  // namespace bert_mtl
