#include "pretraining.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "example_proto.h"

namespace bert_mtl {

// ---------------------------------------------------------------------------
// PythonRandom: MT19937 (Matsumoto & Nishimura) as CPython's _randommodule.c
// seeds and draws it.

namespace {
constexpr int kStateSize = 624;
constexpr int kShift = 397;
}  // namespace

PythonRandom::PythonRandom(const std::vector<uint32_t>& key) {
  // init_genrand(19650218), then init_by_array(key).
  state_[0] = 19650218u;
  for (int i = 1; i < kStateSize; ++i) {
    state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) +
                static_cast<uint32_t>(i);
  }
  const size_t key_length = key.empty() ? 1 : key.size();
  auto key_word = [&key](size_t j) { return key.empty() ? 0u : key[j]; };
  int i = 1;
  size_t j = 0;
  for (size_t k = std::max<size_t>(kStateSize, key_length); k; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1664525u)) +
                key_word(j) + static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= kStateSize) {
      state_[0] = state_[kStateSize - 1];
      i = 1;
    }
    if (j >= key_length) j = 0;
  }
  for (int k = kStateSize - 1; k; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1566083941u)) -
                static_cast<uint32_t>(i);
    ++i;
    if (i >= kStateSize) {
      state_[0] = state_[kStateSize - 1];
      i = 1;
    }
  }
  state_[0] = 0x80000000u;
  index_ = kStateSize;
}

uint32_t PythonRandom::Next() {
  static const uint32_t kMag01[2] = {0u, 0x9908b0dfu};
  constexpr uint32_t kUpper = 0x80000000u, kLower = 0x7fffffffu;
  if (index_ >= kStateSize) {
    int k = 0;
    for (; k < kStateSize - kShift; ++k) {
      uint32_t y = (state_[k] & kUpper) | (state_[k + 1] & kLower);
      state_[k] = state_[k + kShift] ^ (y >> 1) ^ kMag01[y & 1u];
    }
    for (; k < kStateSize - 1; ++k) {
      uint32_t y = (state_[k] & kUpper) | (state_[k + 1] & kLower);
      state_[k] = state_[k + (kShift - kStateSize)] ^ (y >> 1) ^ kMag01[y & 1u];
    }
    uint32_t y = (state_[kStateSize - 1] & kUpper) | (state_[0] & kLower);
    state_[kStateSize - 1] = state_[kShift - 1] ^ (y >> 1) ^ kMag01[y & 1u];
    index_ = 0;
  }
  uint32_t y = state_[index_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return y;
}

double PythonRandom::Random() {
  const uint32_t a = Next() >> 5, b = Next() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

uint64_t PythonRandom::RandBelow(uint64_t n) {
  int bits = 0;
  for (uint64_t v = n; v; v >>= 1) ++bits;  // n.bit_length()
  // getrandbits(bits): 32-bit words, least significant first, the last one
  // shifted down to the bits that remain.
  auto getrandbits = [this, bits]() -> uint64_t {
    if (bits <= 32) return Next() >> (32 - bits);
    const uint64_t low = Next();
    return low | (static_cast<uint64_t>(Next() >> (64 - bits)) << 32);
  };
  uint64_t r = getrandbits();
  while (r >= n) r = getrandbits();
  return r;
}

int64_t PythonRandom::RandInt(int64_t a, int64_t b) {
  return a + static_cast<int64_t>(RandBelow(static_cast<uint64_t>(b - a + 1)));
}

// ---------------------------------------------------------------------------
// Instances.

// The non-empty sentences of the non-empty documents, in corpus order.
struct KeptDocuments {
  std::vector<int64_t> sentences;  // corpus sentence numbers
  std::vector<int64_t> splits{0};  // document d: sentences[splits[d]:splits[d+1]]
  size_t size() const { return splits.size() - 1; }
};

namespace {

KeptDocuments KeepNonEmpty(const TokenizedCorpus& corpus) {
  KeptDocuments kept;
  for (size_t d = 0; d + 1 < corpus.document_splits.size(); ++d) {
    for (int64_t s = corpus.document_splits[d]; s < corpus.document_splits[d + 1]; ++s) {
      if (corpus.sentence_splits[s + 1] > corpus.sentence_splits[s]) {
        kept.sentences.push_back(s);
      }
    }
    if (static_cast<int64_t>(kept.sentences.size()) > kept.splits.back()) {
      kept.splits.push_back(kept.sentences.size());
    }
  }
  return kept;
}

void AppendSentence(const TokenizedCorpus& corpus, int64_t s,
                    std::vector<int32_t>* out) {
  out->insert(out->end(), corpus.ids.begin() + corpus.sentence_splits[s],
              corpus.ids.begin() + corpus.sentence_splits[s + 1]);
}

}  // namespace

PretrainingInstances::PretrainingInstances(const TokenizedCorpus& corpus,
                                           const PretrainingSettings& settings,
                                           const std::vector<uint32_t>& seed_key)
    : settings_(settings) {
  PythonRandom rng(seed_key);
  const KeptDocuments kept = KeepNonEmpty(corpus);
  std::vector<int64_t> shuffled(kept.size());
  for (size_t d = 0; d < shuffled.size(); ++d) shuffled[d] = d;
  rng.Shuffle(&shuffled);
  for (int pass = 0; pass < settings.dupe_factor; ++pass) {
    for (size_t index = 0; index < shuffled.size(); ++index) {
      AddDocument(corpus, kept, shuffled, index, &rng);
    }
  }
  order_.resize(segment_a_length_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  rng.Shuffle(&order_);
}

void PretrainingInstances::AddDocument(const TokenizedCorpus& corpus,
                                       const KeptDocuments& kept,
                                       const std::vector<int64_t>& shuffled,
                                       size_t index, PythonRandom* rng) {
  auto sentence_length = [&corpus](int64_t s) {
    return corpus.sentence_splits[s + 1] - corpus.sentence_splits[s];
  };
  const int64_t first = kept.splits[shuffled[index]];
  const int64_t count = kept.splits[shuffled[index] + 1] - first;
  const int64_t max_num_tokens = settings_.max_seq_length - 3;
  int64_t target_length = max_num_tokens;
  if (rng->Random() < settings_.short_seq_prob) {
    target_length = rng->RandInt(2, max_num_tokens);
  }
  std::vector<int64_t> chunk;  // corpus sentence numbers
  std::vector<int32_t> tokens_a, tokens_b;
  int64_t chunk_length = 0;
  for (int64_t i = 0; i < count; ++i) {
    chunk.push_back(kept.sentences[first + i]);
    chunk_length += sentence_length(chunk.back());
    if (i != count - 1 && chunk_length < target_length) continue;
    const int64_t chunk_size = chunk.size();
    const int64_t a_end = chunk_size >= 2 ? rng->RandInt(1, chunk_size - 1) : 1;
    tokens_a.clear();
    tokens_b.clear();
    for (int64_t k = 0; k < a_end; ++k) AppendSentence(corpus, chunk[k], &tokens_a);
    const bool is_random_next = chunk_size == 1 || rng->Random() < 0.5;
    if (is_random_next) {
      const int64_t target_b_length =
          target_length - static_cast<int64_t>(tokens_a.size());
      int64_t random_index = index;
      for (int attempt = 0; attempt < 10; ++attempt) {
        random_index = rng->RandInt(0, kept.size() - 1);
        if (random_index != static_cast<int64_t>(index)) break;
      }
      const int64_t random_first = kept.splits[shuffled[random_index]];
      const int64_t random_count = kept.splits[shuffled[random_index] + 1] - random_first;
      for (int64_t k = rng->RandInt(0, random_count - 1); k < random_count; ++k) {
        AppendSentence(corpus, kept.sentences[random_first + k], &tokens_b);
        if (static_cast<int64_t>(tokens_b.size()) >= target_b_length) break;
      }
      // The unused sentences of the chunk go back to the document.
      i -= chunk_size - a_end;
    } else {
      for (int64_t k = a_end; k < chunk_size; ++k) {
        AppendSentence(corpus, chunk[k], &tokens_b);
      }
    }
    AddInstance(tokens_a, tokens_b, is_random_next, corpus.continuation, rng);
    chunk.clear();
    chunk_length = 0;
  }
}

void PretrainingInstances::AddInstance(const std::vector<int32_t>& tokens_a,
                                       const std::vector<int32_t>& tokens_b,
                                       bool is_random_next,
                                       const std::vector<uint8_t>& continuation,
                                       PythonRandom* rng) {
  // Pair truncation: a token off the front or back of the longer side.
  const int64_t max_num_tokens = settings_.max_seq_length - 3;
  size_t a_lo = 0, a_hi = tokens_a.size(), b_lo = 0, b_hi = tokens_b.size();
  while (static_cast<int64_t>((a_hi - a_lo) + (b_hi - b_lo)) > max_num_tokens) {
    const bool a_longer = a_hi - a_lo > b_hi - b_lo;
    const bool front = rng->Random() < 0.5;
    if (a_longer) {
      front ? ++a_lo : --a_hi;
    } else {
      front ? ++b_lo : --b_hi;
    }
  }
  const size_t start = tokens_.size();
  tokens_.push_back(settings_.cls_id);
  tokens_.insert(tokens_.end(), tokens_a.begin() + a_lo, tokens_a.begin() + a_hi);
  tokens_.push_back(settings_.sep_id);
  tokens_.insert(tokens_.end(), tokens_b.begin() + b_lo, tokens_b.begin() + b_hi);
  tokens_.push_back(settings_.sep_id);
  const size_t length = tokens_.size() - start;
  token_splits_.push_back(tokens_.size());
  segment_a_length_.push_back(static_cast<int32_t>(a_hi - a_lo + 2));
  is_random_next_.push_back(is_random_next);

  // Masking groups: positions other than [CLS]/[SEP]; with whole-word
  // masking a continuation piece joins the group before it.
  int32_t* tokens = tokens_.data() + start;
  std::vector<int32_t> members;
  std::vector<size_t> group_starts;
  for (size_t i = 0; i < length; ++i) {
    if (tokens[i] == settings_.cls_id || tokens[i] == settings_.sep_id) continue;
    if (!(settings_.do_whole_word_mask && !group_starts.empty() &&
          continuation[tokens[i]])) {
      group_starts.push_back(members.size());
    }
    members.push_back(static_cast<int32_t>(i));
  }
  group_starts.push_back(members.size());
  std::vector<size_t> groups(group_starts.size() - 1);
  for (size_t g = 0; g < groups.size(); ++g) groups[g] = g;
  rng->Shuffle(&groups);
  // Python's round(): half to even, as nearbyint in the default mode.
  const int64_t num_to_predict = std::min<int64_t>(
      settings_.max_predictions_per_seq,
      std::max<int64_t>(1, static_cast<int64_t>(
                               std::nearbyint(length * settings_.masked_lm_prob))));
  std::vector<std::pair<int32_t, int32_t>> masked;  // (position, original id)
  for (size_t g : groups) {
    const int64_t size = group_starts[g + 1] - group_starts[g];
    if (static_cast<int64_t>(masked.size()) >= num_to_predict) break;
    if (static_cast<int64_t>(masked.size()) + size > num_to_predict) continue;
    // Groups never share a position, so none is covered yet.
    for (size_t m = group_starts[g]; m < group_starts[g + 1]; ++m) {
      const int32_t position = members[m];
      const int32_t original = tokens[position];
      if (rng->Random() < 0.8) {
        tokens[position] = settings_.mask_id;
      } else if (rng->Random() >= 0.5) {
        tokens[position] = static_cast<int32_t>(rng->RandInt(0, settings_.vocab_size - 1));
      }
      masked.emplace_back(position, original);
    }
  }
  std::sort(masked.begin(), masked.end());
  for (const auto& m : masked) {
    positions_.push_back(m.first);
    labels_.push_back(m.second);
  }
  position_splits_.push_back(positions_.size());
}

void PretrainingInstances::Get(size_t i, std::vector<int32_t>* tokens,
                               int* segment_a_length, bool* is_random_next,
                               std::vector<int32_t>* positions,
                               std::vector<int32_t>* labels) const {
  const int64_t k = order_.at(i);
  tokens->assign(tokens_.begin() + token_splits_[k], tokens_.begin() + token_splits_[k + 1]);
  *segment_a_length = segment_a_length_[k];
  *is_random_next = is_random_next_[k];
  positions->assign(positions_.begin() + position_splits_[k],
                    positions_.begin() + position_splits_[k + 1]);
  labels->assign(labels_.begin() + position_splits_[k],
                 labels_.begin() + position_splits_[k + 1]);
}

std::string PretrainingInstances::Record(size_t i) const {
  const int64_t k = order_.at(i);
  const int64_t t0 = token_splits_[k], length = token_splits_[k + 1] - t0;
  const int64_t p0 = position_splits_[k], masked = position_splits_[k + 1] - p0;
  const size_t seq = settings_.max_seq_length, predictions = settings_.max_predictions_per_seq;
  std::vector<ExampleFeature> features(7);
  const char* names[] = {"input_ids", "input_mask", "segment_ids",
                         "masked_lm_positions", "masked_lm_ids",
                         "masked_lm_weights", "next_sentence_labels"};
  for (int f = 0; f < 7; ++f) features[f].name = names[f];
  features[0].ints.assign(seq, 0);
  features[1].ints.assign(seq, 0);
  features[2].ints.assign(seq, 0);
  for (int64_t t = 0; t < length; ++t) {
    features[0].ints[t] = tokens_[t0 + t];
    features[1].ints[t] = 1;
    features[2].ints[t] = t >= segment_a_length_[k];
  }
  features[3].ints.assign(predictions, 0);
  features[4].ints.assign(predictions, 0);
  features[5].is_float = true;
  features[5].floats.assign(predictions, 0.0f);
  for (int64_t m = 0; m < masked; ++m) {
    features[3].ints[m] = positions_[p0 + m];
    features[4].ints[m] = labels_[p0 + m];
    features[5].floats[m] = 1.0f;
  }
  features[6].ints.assign(1, is_random_next_[k]);
  return SerializeExample(features);
}

}  // namespace bert_mtl
