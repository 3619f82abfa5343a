// Serializes tf.train.Example protos without TensorFlow or protobuf: the
// wire format of Example{features: Features{feature: map<string, Feature>}}
// with Int64List (packed varints) and FloatList (packed fixed32) values.
#ifndef BERT_MTL_CSRC_EXAMPLE_PROTO_H_
#define BERT_MTL_CSRC_EXAMPLE_PROTO_H_

#include <cstdint>
#include <string>
#include <vector>

namespace bert_mtl {

struct ExampleFeature {
  std::string name;
  bool is_float = false;
  std::vector<int64_t> ints;
  std::vector<float> floats;
};

// The serialized tf.train.Example holding `features` (in that order).
std::string SerializeExample(const std::vector<ExampleFeature>& features);

// CRC-32C (Castagnoli) of `size` bytes.
uint32_t Crc32c(const char* data, size_t size);

// One TFRecord: length (u64 LE), masked CRC-32C of the length, the data,
// masked CRC-32C of the data -- byte-identical to tf.io.TFRecordWriter.
std::string FrameRecord(const std::string& data);

}  // namespace bert_mtl

#endif  // BERT_MTL_CSRC_EXAMPLE_PROTO_H_
