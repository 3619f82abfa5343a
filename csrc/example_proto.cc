#include "example_proto.h"

#include <cstring>

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

}  // namespace bert_mtl
