#include "tokenizer.h"

#include <algorithm>
#include <stdexcept>

#include "unicode_tables.h"

namespace bert_mtl {
namespace {

using unicode::CharRecord;

constexpr char32_t kCapitalSigma = 0x3A3;
constexpr char32_t kSmallSigma = 0x3C3;
constexpr char32_t kFinalSigma = 0x3C2;

inline const CharRecord& Record(char32_t cp) {
  if (cp > 0x10FFFF) cp = 0x10FFFF;  // unassigned; never produced by Python
  const uint16_t block = unicode::kStage1[cp >> unicode::kBlockShift];
  return unicode::kRecords[unicode::kStage2[(static_cast<uint32_t>(block)
                                              << unicode::kBlockShift) |
                                             (cp & unicode::kBlockMask)]];
}

inline bool Has(char32_t cp, uint8_t flag) { return Record(cp).flags & flag; }

// Python's final-sigma rule (Objects/unicodeobject.c handle_capital_sigma),
// applied within one whitespace token, as BasicTokenizer lowers per token.
bool IsFinalSigma(const char32_t* w, int32_t n, int32_t i) {
  int32_t j = i - 1;
  while (j >= 0 && Has(w[j], unicode::kCaseIgnorable)) --j;
  if (j < 0 || !Has(w[j], unicode::kCased)) return false;
  j = i + 1;
  while (j < n && Has(w[j], unicode::kCaseIgnorable)) ++j;
  return j == n || !Has(w[j], unicode::kCased);
}

// Appends `cp`'s mapping from `pool` (or cp itself when it maps to itself).
inline void AppendMapped(char32_t cp, uint32_t off, uint8_t len,
                         const uint32_t* pool, int32_t src,
                         std::vector<char32_t>* out,
                         std::vector<int32_t>* out_src) {
  if (len == 0) {
    out->push_back(cp);
    out_src->push_back(src);
    return;
  }
  for (uint8_t k = 0; k < len; ++k) {
    out->push_back(pool[off + k]);
    out_src->push_back(src);
  }
}

// Canonical ordering of NFD: stable sort of every run of non-starters by
// canonical combining class.
void CanonicalOrder(std::vector<char32_t>* chars, std::vector<int32_t>* src) {
  const size_t n = chars->size();
  size_t i = 0;
  while (i < n) {
    if (Record((*chars)[i]).ccc == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && Record((*chars)[j]).ccc != 0) ++j;
    // Runs are a few characters long: insertion sort keeps it stable.
    for (size_t a = i + 1; a < j; ++a) {
      const char32_t c = (*chars)[a];
      const int32_t s = (*src)[a];
      const uint8_t ccc = Record(c).ccc;
      size_t b = a;
      while (b > i && Record((*chars)[b - 1]).ccc > ccc) {
        (*chars)[b] = (*chars)[b - 1];
        (*src)[b] = (*src)[b - 1];
        --b;
      }
      (*chars)[b] = c;
      (*src)[b] = s;
    }
    i = j;
  }
}

}  // namespace

TextView MakeView(const std::u32string& s) {
  TextView v;
  v.data = s.data();
  v.kind = 4;
  v.length = static_cast<int64_t>(s.size());
  return v;
}

// ---------------------------------------------------------------- Vocab

uint64_t Vocab::Hash(const char32_t* s, int32_t n, bool continuation) {
  uint64_t h = continuation ? 0x9E3779B97F4A7C15ull : 0xCBF29CE484222325ull;
  for (int32_t i = 0; i < n; ++i) {
    h ^= static_cast<uint64_t>(s[i]);
    h *= 0x100000001B3ull;
  }
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

Vocab::Vocab(const std::vector<std::u32string>& tokens) {
  size_ = static_cast<int32_t>(tokens.size());
  uint64_t capacity = 16;
  while (capacity < 4 * tokens.size() + 16) capacity <<= 1;
  slots_.resize(capacity);
  mask_ = capacity - 1;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::u32string& t = tokens[id];
    const int32_t n = static_cast<int32_t>(t.size());
    // The original looks up `substr` at a word's start and "##" + `substr`
    // after it; store each entry under both readings it can match.
    Insert(t.data(), n, false, static_cast<int32_t>(id));
    if (n >= 2 && t[0] == U'#' && t[1] == U'#') {
      Insert(t.data() + 2, n - 2, true, static_cast<int32_t>(id));
    }
  }
}

void Vocab::Insert(const char32_t* s, int32_t n, bool continuation,
                   int32_t id) {
  const uint64_t h = Hash(s, n, continuation);
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    Slot& slot = slots_[i];
    if (slot.offset < 0) {
      slot.hash = h;
      slot.offset = static_cast<int32_t>(keys_.size());
      slot.length = n;
      slot.id = id;
      slot.continuation = continuation;
      keys_.insert(keys_.end(), s, s + n);
      int32_t& max_len = continuation ? max_len_cont_ : max_len_word_;
      max_len = std::max(max_len, n);
      return;
    }
    if (slot.hash == h && slot.length == n &&
        slot.continuation == continuation &&
        std::equal(s, s + n, keys_.begin() + slot.offset)) {
      slot.id = id;  // a duplicate keeps its last id, like dict assignment
      return;
    }
  }
}

int32_t Vocab::Find(const char32_t* s, int32_t n, bool continuation) const {
  const uint64_t h = Hash(s, n, continuation);
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.offset < 0) return -1;
    if (slot.hash == h && slot.length == n &&
        slot.continuation == continuation &&
        std::equal(s, s + n, keys_.begin() + slot.offset)) {
      return slot.id;
    }
  }
}

// ---------------------------------------------------- WordpieceTokenizer

WordpieceTokenizer::WordpieceTokenizer(
    const std::vector<std::u32string>& vocab_tokens, bool do_lower_case,
    int32_t unk_id, bool normalize_width)
    : vocab_(vocab_tokens),
      do_lower_case_(do_lower_case),
      unk_id_(unk_id),
      normalize_width_(normalize_width) {}

void WordpieceTokenizer::Tokenize(const TextView& text, Tokenization* out,
                                  bool basic_only) const {
  // BasicTokenizer: clean (drop NUL, U+FFFD and controls; whitespace splits),
  // isolate CJK characters, split on Python whitespace.  Each word is then
  // normalised and punctuation-split on its own, as the original does.
  Scratch s;
  s.basic_only = basic_only;
  auto flush = [&]() {
    if (!s.word.empty()) {
      TokenizeWord(&s, out);
      s.word.clear();
      s.word_src.clear();
    }
  };
  for (int64_t i = 0; i < text.length; ++i) {
    const char32_t cp = normalize_width_ ? HalfWidth(text.At(i)) : text.At(i);
    const uint8_t flags = Record(cp).flags;
    if (cp == 0 || cp == 0xFFFD || (flags & unicode::kControl)) continue;
    if (flags & (unicode::kCleanSpace | unicode::kPySpace)) {
      flush();
      continue;
    }
    const bool cjk = flags & unicode::kCjk;
    if (cjk) flush();
    s.word.push_back(cp);
    s.word_src.push_back(static_cast<int32_t>(i));
    if (cjk) flush();
  }
  flush();
}

namespace {

// True when lower-casing, NFD and accent stripping leave `c` unchanged.
inline bool IsStableUnderLowering(char32_t c) {
  if (c < 0x80) return !(c >= U'A' && c <= U'Z');
  const CharRecord& r = Record(c);
  return c != kCapitalSigma && r.lower_len == 0 && r.nfd_len == 0 &&
         r.ccc == 0 && !(r.flags & unicode::kMn);
}

}  // namespace

void WordpieceTokenizer::TokenizeWord(Scratch* s, Tokenization* out) const {
  const std::vector<char32_t>* w = &s->word;
  const std::vector<int32_t>* w_src = &s->word_src;
  bool stable = true;
  if (do_lower_case_) {
    bool ascii = true;
    for (char32_t c : s->word) {
      stable &= IsStableUnderLowering(c);
      ascii &= c < 0x80;
    }
    if (!stable && ascii) {
      for (char32_t& c : s->word) {
        if (c >= U'A' && c <= U'Z') c += 32;
      }
      stable = true;
    }
  }
  if (!stable) {
    // str.lower() (full mappings, final sigma), then NFD, then drop Mn.
    const int32_t n = static_cast<int32_t>(s->word.size());
    s->lowered.clear();
    s->lowered_src.clear();
    for (int32_t k = 0; k < n; ++k) {
      const char32_t c = s->word[k];
      if (c == kCapitalSigma) {
        s->lowered.push_back(IsFinalSigma(s->word.data(), n, k) ? kFinalSigma
                                                                : kSmallSigma);
        s->lowered_src.push_back(s->word_src[k]);
        continue;
      }
      const CharRecord& r = Record(c);
      AppendMapped(c, r.lower_off, r.lower_len, unicode::kLowerPool,
                   s->word_src[k], &s->lowered, &s->lowered_src);
    }
    s->decomposed.clear();
    s->decomposed_src.clear();
    for (size_t k = 0; k < s->lowered.size(); ++k) {
      const CharRecord& r = Record(s->lowered[k]);
      AppendMapped(s->lowered[k], r.nfd_off, r.nfd_len, unicode::kNfdPool,
                   s->lowered_src[k], &s->decomposed, &s->decomposed_src);
    }
    CanonicalOrder(&s->decomposed, &s->decomposed_src);
    s->normalised.clear();
    s->normalised_src.clear();
    for (size_t k = 0; k < s->decomposed.size(); ++k) {
      if (Has(s->decomposed[k], unicode::kMn)) continue;
      s->normalised.push_back(s->decomposed[k]);
      s->normalised_src.push_back(s->decomposed_src[k]);
    }
    w = &s->normalised;
    w_src = &s->normalised_src;
  }
  // _run_split_on_punc, then the final whitespace split.
  const int32_t n = static_cast<int32_t>(w->size());
  int32_t start = 0;
  for (int32_t k = 0; k < n; ++k) {
    const uint8_t flags = Record((*w)[k]).flags;
    if (flags & (unicode::kPunct | unicode::kPySpace)) {
      if (k > start) {
        AppendToken(*s, w->data() + start, w_src->data() + start, k - start,
                    out);
      }
      if (flags & unicode::kPunct) {
        AppendToken(*s, w->data() + k, w_src->data() + k, 1, out);
      }
      start = k + 1;
    }
  }
  if (n > start) {
    AppendToken(*s, w->data() + start, w_src->data() + start, n - start, out);
  }
}

void WordpieceTokenizer::AppendToken(const Scratch& scratch,
                                     const char32_t* chars, const int32_t* src,
                                     int32_t n, Tokenization* out) const {
  if (!scratch.basic_only) {
    AppendWordpieces(chars, src, n, kMaxInputCharsPerWord, out);
    return;
  }
  Piece p;
  p.id = -1;
  p.continuation = false;
  p.unknown = false;
  p.chars_begin = static_cast<int32_t>(out->chars.size());
  out->chars.insert(out->chars.end(), chars, chars + n);
  p.chars_end = static_cast<int32_t>(out->chars.size());
  p.span_begin = *std::min_element(src, src + n);
  p.span_end = *std::max_element(src, src + n) + 1;
  out->pieces.push_back(p);
}

void WordpieceTokenizer::Wordpiece(const TextView& text,
                                   int32_t max_input_chars,
                                   Tokenization* out) const {
  std::vector<char32_t> chars(static_cast<size_t>(text.length));
  std::vector<int32_t> src(static_cast<size_t>(text.length));
  for (int64_t i = 0; i < text.length; ++i) {
    chars[i] = text.At(i);
    src[i] = static_cast<int32_t>(i);
  }
  if (chars.empty()) return;
  AppendWordpieces(chars.data(), src.data(),
                   static_cast<int32_t>(chars.size()), max_input_chars, out);
}

void WordpieceTokenizer::AppendWordpieces(const char32_t* chars,
                                          const int32_t* src, int32_t n,
                                          int32_t max_input_chars,
                                          Tokenization* out) const {
  const int32_t base = static_cast<int32_t>(out->chars.size());
  out->chars.insert(out->chars.end(), chars, chars + n);
  auto span_of = [&](int32_t b, int32_t e, Piece* p) {
    int32_t lo = src[b], hi = src[b];
    for (int32_t k = b + 1; k < e; ++k) {
      lo = std::min(lo, src[k]);
      hi = std::max(hi, src[k]);
    }
    p->span_begin = lo;
    p->span_end = hi + 1;
  };
  const size_t first_piece = out->pieces.size();
  if (n <= max_input_chars) {
    int32_t start = 0;
    while (start < n) {
      const bool cont = start > 0;
      int32_t end = std::min(n, start + vocab_.MaxLength(cont));
      int32_t id = -1;
      while (end > start) {
        id = vocab_.Find(chars + start, end - start, cont);
        if (id >= 0) break;
        --end;
      }
      if (id < 0) break;
      Piece p;
      p.id = id;
      p.continuation = cont;
      p.unknown = false;
      p.chars_begin = base + start;
      p.chars_end = base + end;
      span_of(start, end, &p);
      out->pieces.push_back(p);
      start = end;
    }
    if (start == n) return;
  }
  // Too long, or some position matched nothing: the whole word is [UNK].
  out->pieces.resize(first_piece);
  Piece p;
  p.id = unk_id_;
  p.continuation = false;
  p.unknown = true;
  p.chars_begin = base;
  p.chars_end = base + n;
  span_of(0, n, &p);
  out->pieces.push_back(p);
}

std::u32string PieceText(const Tokenization& t, const Piece& p) {
  if (p.unknown) return U"[UNK]";
  std::u32string s;
  if (p.continuation) s = U"##";
  s.append(t.chars.begin() + p.chars_begin, t.chars.begin() + p.chars_end);
  return s;
}

}  // namespace bert_mtl
