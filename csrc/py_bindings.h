// The parts of bert_mtl._native, one per concept of the native core; each
// adds its functions and classes to the module (py_module.cc).
#ifndef BERT_MTL_PY_BINDINGS_H_
#define BERT_MTL_PY_BINDINGS_H_

#include <pybind11/pybind11.h>

namespace bert_mtl {

void BindTokenizer(pybind11::module_& m);    // py_tokenizer.cc
void BindViterbi(pybind11::module_& m);      // py_viterbi.cc
void BindRecords(pybind11::module_& m);      // py_records.cc
void BindPretraining(pybind11::module_& m);  // py_pretraining.cc

}  // namespace bert_mtl

#endif  // BERT_MTL_PY_BINDINGS_H_
