// BERT WordPiece tokenizer, byte-identical to google-research/bert
// tokenization.py (FullTokenizer = BasicTokenizer + WordpieceTokenizer).
//
// Text is handled as a sequence of Unicode code points, exactly as a Python
// `str` is, so lone surrogates and any other code point behave as in Python.
// Every output piece remembers the half-open span [start, end) of input code
// points it came from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bert_mtl {

// A read-only view of a Python str's storage (1, 2 or 4 bytes per code point).
struct TextView {
  const void* data = nullptr;
  int kind = 4;  // bytes per code point
  int64_t length = 0;

  char32_t At(int64_t i) const {
    switch (kind) {
      case 1: return static_cast<const uint8_t*>(data)[i];
      case 2: return static_cast<const uint16_t*>(data)[i];
      default: return static_cast<const uint32_t*>(data)[i];
    }
  }
};

TextView MakeView(const std::u32string& s);

// One WordPiece: its vocabulary id (or -1 when the vocab lacks it, which only
// happens for [UNK] in a vocab without one), where its characters sit in the
// tokenizer's scratch buffer, and the span of input code points it covers.
struct Piece {
  int32_t id;
  bool continuation;  // printed with a leading "##"
  bool unknown;       // the whole word became [UNK]
  int32_t chars_begin, chars_end;  // into Tokenization::chars
  int32_t span_begin, span_end;    // into the input text
};

struct Tokenization {
  std::vector<char32_t> chars;  // normalised characters of every piece
  std::vector<Piece> pieces;
  void Clear() { chars.clear(); pieces.clear(); }
};

class Vocab {
 public:
  // tokens[i] is line i of vocab.txt, already Python-stripped.  A duplicate
  // token keeps the id of its last occurrence, as the original dict does.
  explicit Vocab(const std::vector<std::u32string>& tokens);

  // Looks up `continuation ? "##" + s : s`; returns -1 when absent.
  int32_t Find(const char32_t* s, int32_t n, bool continuation) const;
  int32_t MaxLength(bool continuation) const {
    return continuation ? max_len_cont_ : max_len_word_;
  }
  int32_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t offset = -1;  // into keys_; -1 = empty
    int32_t length = 0;
    int32_t id = -1;
    bool continuation = false;
  };
  void Insert(const char32_t* s, int32_t n, bool continuation, int32_t id);
  static uint64_t Hash(const char32_t* s, int32_t n, bool continuation);

  std::vector<Slot> slots_;
  std::vector<char32_t> keys_;
  uint64_t mask_ = 0;
  int32_t max_len_word_ = 0, max_len_cont_ = 0;
  int32_t size_ = 0;
};

class WordpieceTokenizer {
 public:
  static constexpr int32_t kMaxInputCharsPerWord = 200;

  // `normalize_width`: read the full-width forms of ASCII (U+FF01-U+FF5E)
  // and the ideographic space (U+3000) as their ASCII forms before
  // anything else, one character for one, so offsets are unchanged.
  WordpieceTokenizer(const std::vector<std::u32string>& vocab_tokens,
                     bool do_lower_case, int32_t unk_id,
                     bool normalize_width = false);

  // Appends the pieces of `text` to `out` (which is not cleared).  With
  // `basic_only` each piece is a whole BasicTokenizer token (id -1), as the
  // original BasicTokenizer.tokenize returns them.
  void Tokenize(const TextView& text, Tokenization* out,
                bool basic_only = false) const;

  // WordPiece alone (the original WordpieceTokenizer on one
  // whitespace-free token): greedy longest-match-first over `text` as it
  // is, no cleaning or normalisation; a token longer than
  // `max_input_chars` code points, or with a position that matches
  // nothing, is one unknown piece.
  void Wordpiece(const TextView& text, int32_t max_input_chars,
                 Tokenization* out) const;

  bool do_lower_case() const { return do_lower_case_; }
  bool normalize_width() const { return normalize_width_; }
  int32_t unk_id() const { return unk_id_; }
  const Vocab& vocab() const { return vocab_; }

 private:
  // Reusable buffers of one Tokenize call.
  struct Scratch {
    bool basic_only = false;
    std::vector<char32_t> word, lowered, decomposed, normalised;
    std::vector<int32_t> word_src, lowered_src, decomposed_src,
        normalised_src;
  };
  // Normalises one whitespace-delimited word (scratch->word, with the input
  // index of every character in scratch->word_src) and appends the
  // WordPieces of its punctuation-split basic tokens.
  void TokenizeWord(Scratch* scratch, Tokenization* out) const;
  // Appends one basic token: its WordPieces, or itself with basic_only.
  void AppendToken(const Scratch& scratch, const char32_t* chars,
                   const int32_t* src, int32_t n, Tokenization* out) const;
  void AppendWordpieces(const char32_t* chars, const int32_t* src, int32_t n,
                        int32_t max_input_chars, Tokenization* out) const;

  Vocab vocab_;
  bool do_lower_case_;
  int32_t unk_id_;
  bool normalize_width_;
};

// The ASCII form of a full-width ASCII variant or of U+3000; other
// characters unchanged.
inline char32_t HalfWidth(char32_t cp) {
  if (cp >= 0xFF01 && cp <= 0xFF5E) return cp - 0xFEE0;
  return cp == 0x3000 ? U' ' : cp;
}

// Text of a piece as the original prints it ("##" prefix, "[UNK]").
std::u32string PieceText(const Tokenization& t, const Piece& p);

}  // namespace bert_mtl
