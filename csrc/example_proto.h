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

// Sequence-labelling records of a batch of unit-aligned examples, as
// bert_mtl.data.dataset writes them (one record per window; feature order
// input_ids, segment_ids, example_index, window_start, then per problem
// <name>_label and <name>_present).
struct UnitBatch {
  std::vector<int32_t> ids;           // all examples' token ids
  std::vector<int64_t> token_splits;  // [examples + 1]
  std::vector<int32_t> first_token;   // per unit, -1 without a token
  std::vector<int64_t> unit_splits;   // [examples + 1]
  std::vector<int64_t> example_index;
  std::vector<std::string> names;
  // Per problem, a label id per unit (same layout as first_token); empty:
  // unlabelled (prediction: 0 on first tokens, present 0).
  std::vector<std::vector<int32_t>> labels;
};

// One record per window of max_seq_length - 2 tokens, windows `stride`
// tokens apart (bert_mtl.data.features.window_stride).
std::vector<std::string> UnitRecords(const UnitBatch& batch,
                                     int max_seq_length, int cls_id,
                                     int sep_id, int stride);

}  // namespace bert_mtl

#endif  // BERT_MTL_CSRC_EXAMPLE_PROTO_H_
