#include "example_proto.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace bert_mtl {
namespace {

void PutVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Field `number` with wire type 2 (length-delimited) holding `payload`.
void PutBytes(int number, const std::string& payload, std::string* out) {
  PutVarint((static_cast<uint64_t>(number) << 3) | 2, out);
  PutVarint(payload.size(), out);
  out->append(payload);
}

std::string FeatureBytes(const ExampleFeature& feature) {
  std::string packed;
  if (feature.is_float) {
    packed.resize(feature.floats.size() * 4);
    // Little-endian IEEE floats, as protobuf's fixed32.
    for (size_t i = 0; i < feature.floats.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &feature.floats[i], 4);
      for (int b = 0; b < 4; ++b) packed[4 * i + b] = static_cast<char>(bits >> (8 * b));
    }
  } else {
    for (int64_t v : feature.ints) PutVarint(static_cast<uint64_t>(v), &packed);
  }
  std::string list;
  PutBytes(1, packed, &list);  // Int64List.value / FloatList.value (packed)
  std::string out;
  PutBytes(feature.is_float ? 2 : 3, list, &out);  // Feature.float_list / int64_list
  return out;
}

uint32_t MaskCrc(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

void PutFixed(uint64_t value, int bytes, std::string* out) {
  for (int b = 0; b < bytes; ++b) out->push_back(static_cast<char>(value >> (8 * b)));
}

}  // namespace

uint32_t Crc32c(const char* data, size_t size) {
  static uint32_t table[256] = {0};
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t crc = i;
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
      table[i] = crc;
    }
    return true;
  }();
  (void)ready;
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) {
    crc = table[(crc ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (crc >> 8);
  }
  return crc ^ 0xffffffffu;
}

std::string FrameRecord(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  PutFixed(data.size(), 8, &out);
  PutFixed(MaskCrc(Crc32c(out.data(), 8)), 4, &out);
  out.append(data);
  PutFixed(MaskCrc(Crc32c(data.data(), data.size())), 4, &out);
  return out;
}

std::string SerializeExample(const std::vector<ExampleFeature>& features) {
  std::string map_entries;
  for (const ExampleFeature& feature : features) {
    std::string entry;
    PutBytes(1, feature.name, &entry);           // key
    PutBytes(2, FeatureBytes(feature), &entry);  // value
    PutBytes(1, entry, &map_entries);            // Features.feature
  }
  std::string out;
  PutBytes(1, map_entries, &out);  // Example.features
  return out;
}

namespace {

constexpr int64_t kIgnore = -1;

// Token windows [start, end) as bert_mtl.data.features.windows.
std::vector<std::pair<int64_t, int64_t>> Windows(int64_t num_tokens,
                                                 int64_t max_tokens,
                                                 int64_t stride) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (num_tokens <= max_tokens) {
    out.emplace_back(0, num_tokens);
    return out;
  }
  for (int64_t start = 0;; start += stride) {
    const int64_t end = std::min(num_tokens, start + max_tokens);
    out.emplace_back(start, end);
    if (end == num_tokens) return out;
  }
}

}  // namespace

std::vector<std::string> UnitRecords(const UnitBatch& batch,
                                     int max_seq_length, int cls_id,
                                     int sep_id, int stride) {
  std::vector<std::string> records;
  const size_t examples = batch.example_index.size();
  const int64_t max_tokens = max_seq_length - 2;
  std::vector<ExampleFeature> features(4 + 2 * batch.names.size());
  features[0].name = "input_ids";
  features[1].name = "segment_ids";
  features[2].name = "example_index";
  features[3].name = "window_start";
  for (size_t p = 0; p < batch.names.size(); ++p) {
    features[4 + 2 * p].name = batch.names[p] + "_label";
    features[5 + 2 * p].name = batch.names[p] + "_present";
  }
  std::vector<std::vector<int64_t>> token_labels(batch.names.size());
  for (size_t e = 0; e < examples; ++e) {
    const int64_t t0 = batch.token_splits[e], t1 = batch.token_splits[e + 1];
    const int64_t u0 = batch.unit_splits[e], u1 = batch.unit_splits[e + 1];
    const int64_t n = t1 - t0;
    for (size_t p = 0; p < batch.names.size(); ++p) {
      // [CLS] + tokens + [SEP]: labels on units' first tokens only.
      std::vector<int64_t>& labels = token_labels[p];
      labels.assign(n + 2, kIgnore);
      for (int64_t u = u0; u < u1; ++u) {
        const int32_t position = batch.first_token[u];
        if (position >= 0 && position < n) {
          labels[position + 1] = batch.labels[p].empty() ? 0 : batch.labels[p][u];
        }
      }
    }
    for (const auto& window : Windows(n, max_tokens, stride)) {
      std::vector<int64_t>& ids = features[0].ints;
      ids.assign(1, cls_id);
      ids.insert(ids.end(), batch.ids.begin() + t0 + window.first,
                 batch.ids.begin() + t0 + window.second);
      ids.push_back(sep_id);
      features[1].ints.assign(ids.size(), 0);
      features[2].ints.assign(1, batch.example_index[e]);
      features[3].ints.assign(1, window.first);
      for (size_t p = 0; p < batch.names.size(); ++p) {
        std::vector<int64_t>& out = features[4 + 2 * p].ints;
        out.assign(token_labels[p].begin() + window.first,
                   token_labels[p].begin() + window.second + 2);
        out.front() = kIgnore;
        out.back() = kIgnore;
        features[5 + 2 * p].ints.assign(1, batch.labels[p].empty() ? 0 : 1);
      }
      records.push_back(SerializeExample(features));
    }
  }
  return records;
}

}  // namespace bert_mtl
