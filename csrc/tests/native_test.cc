// C++ tests of the native core, built without Python so that they run under
// AddressSanitizer and UndefinedBehaviorSanitizer (tools/sanitize.sh).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "alignment.h"
#include "pretraining.h"
#include "tokenizer.h"
#include "viterbi.h"

namespace {

int failures = 0;

#define EXPECT(cond)                                                  \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: EXPECT(%s) failed\n", __FILE__,    \
                   __LINE__, #cond);                                  \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

using bert_mtl::MakeView;
using bert_mtl::PieceText;
using bert_mtl::Tokenization;
using bert_mtl::WordpieceTokenizer;

std::vector<std::u32string> Pieces(const WordpieceTokenizer& tok,
                                   const std::u32string& text) {
  Tokenization t;
  tok.Tokenize(MakeView(text), &t);
  std::vector<std::u32string> out;
  for (const auto& p : t.pieces) out.push_back(PieceText(t, p));
  return out;
}

void TestWordpiece() {
  const std::vector<std::u32string> vocab = {
      U"[UNK]", U"un", U"##aff", U"##able", U"a", U"##b", U"hello", U"!",
      U"\u03c3\u03bf\u03c6\u03bf\u03c2", U".", U"\u4e2d"};
  WordpieceTokenizer lower(vocab, true, 0), cased(vocab, false, 0);
  EXPECT((Pieces(lower, U"unaffable") ==
          std::vector<std::u32string>{U"un", U"##aff", U"##able"}));
  EXPECT((Pieces(lower, U"unaffablez") == std::vector<std::u32string>{U"[UNK]"}));
  EXPECT((Pieces(lower, std::u32string(201, U'a')) ==
          std::vector<std::u32string>{U"[UNK]"}));
  EXPECT((Pieces(lower, U"H\u00c9LLO!") ==  // accent stripped after NFD
          std::vector<std::u32string>{U"hello", U"!"}));
  EXPECT((Pieces(cased, U"H\u00c9LLO!") ==
          std::vector<std::u32string>{U"[UNK]", U"!"}));
  EXPECT((Pieces(lower, U"\u03a3\u039f\u03a6\u039f\u03a3.") ==  // final sigma
          std::vector<std::u32string>{U"\u03c3\u03bf\u03c6\u03bf\u03c2", U"."}));
  EXPECT((Pieces(lower, U"a\u4e2d\u200ba\u200bb") ==
          std::vector<std::u32string>{U"a", U"\u4e2d", U"a", U"##b"}));
  EXPECT(Pieces(lower, U"").empty());
  EXPECT(Pieces(lower, U" \t\u3000\u2028").empty());
  // Spans point at the input characters a piece came from.
  Tokenization t;
  const std::u32string text = U"x unaffable";
  lower.Tokenize(MakeView(text), &t);
  EXPECT(t.pieces.size() == 4);
  EXPECT(t.pieces[1].span_begin == 2 && t.pieces[1].span_end == 4);
  EXPECT(t.pieces[3].span_begin == 7 && t.pieces[3].span_end == 11);
}

// Random code points of every plane, lone surrogates included: under the
// sanitizers this finds out-of-bounds reads and undefined behaviour.
void FuzzTokenizer() {
  std::mt19937 rng(42);
  const std::vector<std::u32string> vocab = {U"[UNK]", U"a", U"##a", U"\u03c3",
                                             U"##\u0301", U"\u4e2d"};
  WordpieceTokenizer lower(vocab, true, 0), cased(vocab, false, 0);
  std::uniform_int_distribution<int> len(0, 300);
  std::uniform_int_distribution<uint32_t> any(0, 0x10FFFF);
  const char32_t special[] = {0, 0xFFFD, 0x3A3, 0x130, 0x301, 0x20, 0x2028,
                              0xD800, 0xDFFF, 0x200B, U'a', 0x4E2D, 0xAC00};
  std::uniform_int_distribution<int> pick(0, sizeof(special) / 4 - 1);
  for (int iter = 0; iter < 20000; ++iter) {
    std::u32string text;
    const int n = len(rng);
    for (int i = 0; i < n; ++i) {
      text.push_back(rng() % 2 ? special[pick(rng)] : any(rng));
    }
    for (const WordpieceTokenizer* tok : {&lower, &cased}) {
      Tokenization t;
      tok->Tokenize(MakeView(text), &t);
      for (const auto& p : t.pieces) {
        EXPECT(p.span_begin >= 0 && p.span_begin < p.span_end &&
               p.span_end <= static_cast<int32_t>(text.size()));
        EXPECT(p.chars_begin <= p.chars_end &&
               p.chars_end <= static_cast<int32_t>(t.chars.size()));
      }
    }
  }
}

float BruteForce(const std::vector<float>& pot, const std::vector<float>& tr,
                 int T, int K, std::vector<int32_t>* best_path) {
  float best = -INFINITY;
  std::vector<int32_t> path(T, 0);
  int total = 1;
  for (int t = 0; t < T; ++t) total *= K;
  for (int code = 0; code < total; ++code) {
    int c = code;
    for (int t = T - 1; t >= 0; --t) {
      path[t] = c % K;
      c /= K;
    }
    float s = pot[path[0]];
    for (int t = 1; t < T; ++t) s += tr[path[t - 1] * K + path[t]] + pot[t * K + path[t]];
    if (s > best) {
      best = s;
      *best_path = path;
    }
  }
  return best;
}

void TestViterbi() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (int iter = 0; iter < 300; ++iter) {
    // Up to 40 tags covers every vector width and block count.
    const int K = 1 + rng() % 40, T = 1 + rng() % (K > 6 ? 3 : 5),
              B = 1 + rng() % 3;
    std::vector<float> pot(B * T * K), tr(K * K);
    for (float& v : pot) v = normal(rng);
    for (float& v : tr) v = normal(rng);
    std::vector<int32_t> lengths(B), tags(B * T);
    for (int b = 0; b < B; ++b) lengths[b] = rng() % (T + 1);
    std::vector<float> scores(B);
    bert_mtl::ViterbiDecode(pot.data(), tr.data(), lengths.data(), B, T, K,
                            nullptr, nullptr, tags.data(), scores.data());
    for (int b = 0; b < B; ++b) {
      const int len = lengths[b] == 0 ? 1 : lengths[b];
      std::vector<float> row(pot.begin() + b * T * K,
                             pot.begin() + b * T * K + len * K);
      std::vector<int32_t> path;
      const float best = BruteForce(row, tr, len, K, &path);
      EXPECT(std::fabs(best - scores[b]) < 1e-4f);
      for (int t = 0; t < len; ++t) EXPECT(tags[b * T + t] == path[t]);
      for (int t = len; t < T; ++t) EXPECT(tags[b * T + t] == 0);
    }
  }
}

// Values printed by CPython 3.11's random.Random.
void TestPythonRandom() {
  bert_mtl::PythonRandom rng({12345});
  EXPECT(rng.Random() == 0.41661987254534116);
  EXPECT(rng.Random() == 0.010169169457068361);
  const int64_t expected[] = {4, 5, 3, 4, 9};
  for (int64_t e : expected) EXPECT(rng.RandInt(0, 9) == e);
  EXPECT(rng.RandInt(0, int64_t{1} << 40) == 354060905040);
  bert_mtl::PythonRandom wide({3, 256});  // seed 2**40 + 3
  EXPECT(wide.Random() == 0.21978710637116716);
  std::vector<int> values = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  bert_mtl::PythonRandom zero({0});
  zero.Shuffle(&values);
  EXPECT(values == std::vector<int>({7, 8, 1, 5, 3, 4, 2, 0, 9, 6}));
}

// Random corpora (empty sentences and documents, one document, short
// sequences) under the sanitizers: every instance well formed.
void FuzzPretraining() {
  std::mt19937 gen(11);
  for (int iter = 0; iter < 200; ++iter) {
    bert_mtl::TokenizedCorpus corpus;
    const int vocab = 10 + gen() % 30;
    for (int v = 0; v < vocab; ++v) corpus.continuation.push_back(gen() % 3 == 0);
    corpus.sentence_splits = {0};
    corpus.document_splits = {0};
    const int documents = 1 + gen() % 6;
    for (int d = 0; d < documents; ++d) {
      const int sentences = gen() % 6;
      for (int s = 0; s < sentences; ++s) {
        const int length = gen() % 14;
        for (int t = 0; t < length; ++t) corpus.ids.push_back(5 + gen() % (vocab - 5));
        corpus.sentence_splits.push_back(corpus.ids.size());
      }
      corpus.document_splits.push_back(corpus.sentence_splits.size() - 1);
    }
    bert_mtl::PretrainingSettings settings;
    settings.max_seq_length = 5 + gen() % 40;
    settings.dupe_factor = 1 + gen() % 3;
    settings.short_seq_prob = 0.3;
    settings.max_predictions_per_seq = gen() % 8;
    settings.do_whole_word_mask = iter % 2;
    settings.cls_id = 2;
    settings.sep_id = 3;
    settings.mask_id = 4;
    settings.vocab_size = vocab;
    bert_mtl::PretrainingInstances instances(corpus, settings, {static_cast<uint32_t>(iter)});
    for (size_t i = 0; i < instances.size(); ++i) {
      std::vector<int32_t> tokens, positions, labels;
      int segment_a = 0;
      bool is_random_next = false;
      instances.Get(i, &tokens, &segment_a, &is_random_next, &positions, &labels);
      EXPECT(static_cast<int>(tokens.size()) <= settings.max_seq_length);
      EXPECT(tokens.front() == 2 && tokens.back() == 3 && tokens[segment_a - 1] == 3);
      EXPECT(static_cast<int>(positions.size()) <= settings.max_predictions_per_seq);
      for (size_t m = 0; m < positions.size(); ++m) {
        EXPECT(positions[m] > 0 && positions[m] < static_cast<int>(tokens.size()) - 1);
        EXPECT(m == 0 || positions[m - 1] < positions[m]);
        EXPECT(labels[m] >= 5 && labels[m] < vocab);
      }
      EXPECT(!instances.Record(i).empty());
    }
  }
}

// Units "ab", "c", "" (no piece), "d" joined by spaces ("ab c  d"): pieces
// "ab" [0, 2), "c" [3, 4), "d" [6, 7); a unit's first piece by position.
void TestAlignment() {
  const std::vector<std::u32string> vocab = {U"[UNK]", U"ab", U"c", U"d",
                                             U"##x"};
  WordpieceTokenizer tok(vocab, true, 0);
  const std::u32string joined = U"ab c  d";
  Tokenization t;
  tok.Tokenize(MakeView(joined), &t);
  EXPECT(t.pieces.size() == 3);
  const int64_t starts[] = {0, 3, 5, 6};
  int32_t first[4] = {9, 9, 9, 9};
  bert_mtl::FirstPieceOfUnits(t.pieces, starts, 4, first);
  EXPECT(first[0] == 0 && first[1] == 1 && first[2] == -1 && first[3] == 2);
  bert_mtl::FirstPieceOfUnits(t.pieces, starts, 0, first);  // no units
  // A unit whose piece continues into the next unit keeps it; "abx" has
  // pieces "ab", "##x" starting at 0 and 2: one unit, its first piece 0.
  Tokenization u;
  tok.Tokenize(MakeView(std::u32string(U"abx")), &u);
  const int64_t one[] = {0};
  int32_t first_one[1];
  bert_mtl::FirstPieceOfUnits(u.pieces, one, 1, first_one);
  EXPECT(first_one[0] == 0);

  // The original's truncation: the longer side first, b on ties.
  int64_t a = 10, b = 4;
  bert_mtl::TruncatePair(10, &a, &b);
  EXPECT(a == 4 && b == 3);
  a = 5, b = 5;
  bert_mtl::TruncatePair(8, &a, &b);
  EXPECT(a == 3 && b == 2);
  a = 9, b = 0;
  bert_mtl::TruncatePair(8, &a, &b);
  EXPECT(a == 6 && b == 0);

  const int64_t L = 6;
  int32_t ids[L], mask[L], segments[L], spans[2 * L], counts[2];
  Tokenization empty;
  bert_mtl::PackPairRow(t, u, L, 101, 102,
                        {ids, mask, segments, spans, counts});
  // [CLS] ab c [SEP] ab [SEP]: a has 3 pieces, b 2; budget 3 -> 2 + 1.
  EXPECT(counts[0] == 3 && counts[1] == 2);
  const int32_t want_ids[L] = {101, 1, 2, 102, 1, 102};
  const int32_t want_segments[L] = {0, 0, 0, 0, 1, 1};
  for (int k = 0; k < L; ++k) {
    EXPECT(ids[k] == want_ids[k] && mask[k] == 1 &&
           segments[k] == want_segments[k]);
  }
  EXPECT(spans[0] == -1 && spans[2] == 0 && spans[3] == 2 && spans[8] == 0);
  bert_mtl::PackPairRow(empty, empty, L, 101, 102,
                        {ids, mask, segments, spans, counts});
  EXPECT(ids[0] == 101 && ids[1] == 102 && mask[2] == 0 && ids[5] == 0 &&
         spans[10] == -1 && counts[0] == 0 && counts[1] == 0);
}

}  // namespace

int main() {
  TestAlignment();
  TestPythonRandom();
  FuzzPretraining();
  TestWordpiece();
  FuzzTokenizer();
  TestViterbi();
  if (failures) {
    std::fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  std::printf("native_test: all passed\n");
  return 0;
}
