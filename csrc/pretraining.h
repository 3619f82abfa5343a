// Masked-LM + next-sentence pretraining instances from token ids, drawn
// exactly as bert_mtl/data/pretraining.py draws them from one
// random.Random(seed) of CPython 3 (so both give the same instances and
// byte-identical records; tests compare them).
#ifndef BERT_MTL_CSRC_PRETRAINING_H_
#define BERT_MTL_CSRC_PRETRAINING_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bert_mtl {

// CPython's random.Random: MT19937 seeded by init_by_array over the 32-bit
// words of abs(seed), with random(), randint(a, b) and shuffle() consuming
// the generator as random.py 3.11 does.
class PythonRandom {
 public:
  // `key`: abs(seed) as little-endian 32-bit words ({0} for seed 0).
  explicit PythonRandom(const std::vector<uint32_t>& key);

  double Random();                  // random.random(), [0, 1)
  int64_t RandInt(int64_t a, int64_t b);  // random.randint(a, b), a <= b
  template <typename T>
  void Shuffle(std::vector<T>* values) {  // random.shuffle
    for (size_t i = values->size(); i-- > 1;) {
      std::swap((*values)[i], (*values)[RandBelow(i + 1)]);
    }
  }

 private:
  uint32_t Next();
  uint64_t RandBelow(uint64_t n);  // random._randbelow_with_getrandbits
  uint32_t state_[624];
  int index_;
};

struct PretrainingSettings {
  int max_seq_length = 128;
  int dupe_factor = 10;
  double short_seq_prob = 0.1;
  double masked_lm_prob = 0.15;
  int max_predictions_per_seq = 20;
  bool do_whole_word_mask = false;
  int32_t cls_id = 0;
  int32_t sep_id = 0;
  int32_t mask_id = 0;
  int32_t vocab_size = 0;  // random replacements draw ids 0..vocab_size-1
};

// A corpus of documents as ragged token ids: sentence s holds
// ids[sentence_splits[s]:sentence_splits[s + 1]], document d the sentences
// document_splits[d]..document_splits[d + 1]-1.
struct TokenizedCorpus {
  std::vector<int32_t> ids;
  std::vector<int64_t> sentence_splits;
  std::vector<int64_t> document_splits;
  // Per vocabulary id: 1 for a "##" continuation piece (whole-word masking).
  std::vector<uint8_t> continuation;
};

// The shuffled instances of a corpus, stored flat.
struct KeptDocuments;

class PretrainingInstances {
 public:
  PretrainingInstances(const TokenizedCorpus& corpus,
                       const PretrainingSettings& settings,
                       const std::vector<uint32_t>& seed_key);

  size_t size() const { return order_.size(); }
  // Instance i (after the final shuffle): its (masked) token ids, the
  // number of segment-A positions ([CLS] A [SEP]), whether B is random,
  // the sorted masked positions and the original ids at them.
  void Get(size_t i, std::vector<int32_t>* tokens, int* segment_a_length,
           bool* is_random_next, std::vector<int32_t>* positions,
           std::vector<int32_t>* labels) const;
  // The serialized tf.train.Example of instance i, statically padded, with
  // pretraining.FEATURE_NAMES in order.
  std::string Record(size_t i) const;

 private:
  void AddDocument(const TokenizedCorpus& corpus,
                   const KeptDocuments& kept,
                   const std::vector<int64_t>& shuffled, size_t index,
                   PythonRandom* rng);
  void AddInstance(const std::vector<int32_t>& tokens_a,
                   const std::vector<int32_t>& tokens_b, bool is_random_next,
                   const std::vector<uint8_t>& continuation,
                   PythonRandom* rng);

  PretrainingSettings settings_;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> token_splits_{0};
  std::vector<int32_t> segment_a_length_;
  std::vector<uint8_t> is_random_next_;
  std::vector<int32_t> positions_;  // labels_ shares its layout
  std::vector<int32_t> labels_;
  std::vector<int64_t> position_splits_{0};
  std::vector<int64_t> order_;  // the final shuffle: order_[i] is stored index
};

}  // namespace bert_mtl

#endif  // BERT_MTL_CSRC_PRETRAINING_H_
