"""Readers of the predefined problems over the real corpora.

Formats are those of ../shared/data/README.md.  Splits: weibo and MSRA use
their files (weibo: train / test, the dev file is not used for training;
MSRA: train / test); People's Daily and the sentiment reviews have no split,
so every 10th paragraph or review (index % 10 == 9) is the eval split; the
SIGHAN PKU gold file is evaluation-only.  "predict" reads the eval inputs.
"""

import os

from absl import logging

from bert_mtl.problems import download
from bert_mtl.errors import DataError
from bert_mtl.problems.registry import Example, problem

SENTENCE_END = "。！？"


def lines_of(path):
  """(1-based line number, text without CR/LF) of a UTF-8 file; invalid
  UTF-8 is a DataError naming the line, and an empty (0-byte) file is a
  DataError naming the file.  A UTF-8 byte-order mark at the start is dropped (it is
  not text: left in, it would become a unit of the first sentence)."""
  with open(path, "rb") as f:
    data = f.read()
  if data.startswith(b"\xef\xbb\xbf"):
    data = data[3:]
  if not data:
    raise DataError("the file is empty", path=path)
  for number, raw in enumerate(data.split(b"\n"), start=1):
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError("not valid UTF-8 (%s at byte %d)" % (e.reason, e.start),
                      path=path, line=number) from None
    yield number, text.rstrip("\r")


def conll_sentences(path, parse_row):
  """Sentences of a one-token-a-line file: (first line, [parsed rows])."""
  rows, first = [], None
  for number, text in lines_of(path):
    if not text.strip():
      if rows:
        yield first, rows
      rows, first = [], None
      continue
    if first is None:
      first = number
    try:
      rows.append(parse_row(text))
    except ValueError as e:
      raise DataError("malformed line %r: %s" % (text[:40], e), path=path,
                      line=number) from None
  if rows:
    yield first, rows


def bmes(words):
  """Per-character segmentation tags of a word list."""
  tags = []
  for word in words:
    if len(word) == 1:
      tags.append("S")
    else:
      tags.extend(["B"] + ["M"] * (len(word) - 2) + ["E"])
  return tags


def spans_to_bio(length, spans):
  """BIO tags of `length` units from (start, end, type) spans."""
  tags = ["O"] * length
  for start, end, kind in spans:
    tags[start] = "B-" + kind
    for k in range(start + 1, end):
      tags[k] = "I-" + kind
  return tags


def split_filter(split, index):
  """Every 10th item is eval (and predict) data, the rest train data."""
  return (index % 10 == 9) == (split != "train")


def split_lines(path, split):
  """(line number, text) of the non-blank lines of `path` in `split`."""
  index = -1
  for line, text in lines_of(path):
    if text.strip():
      index += 1
      if split_filter(split, index):
        yield line, text


def _path(data_dir, relative):
  """The corpus file under data_dir; when it is not there but is published
  on the package index, a verified copy in the user cache."""
  path = os.path.join(data_dir, relative)
  if not os.path.exists(path) and relative in download.SOURCES:
    return download.ensure(relative)
  return path


# ----------------------------------------------------------------- Weibo

WEIBO_FILES = {"train": "weibo_ner/weiboNER_2nd_conll.train",
               "eval": "weibo_ner/weiboNER_2nd_conll.test",
               "predict": "weibo_ner/weiboNER_2nd_conll.test"}


def _weibo_row(text):
  token, tag = text.split("\t")
  if not tag:
    raise ValueError("expected CHAR<digits><TAB>TAG, the tag is empty")
  chars = token.rstrip("0123456789")
  if not chars:  # the character is itself a digit: "20" is "2", position 0
    chars = token[:1]
  position = token[len(chars):]
  if not position:
    raise ValueError("expected CHAR<digits><TAB>TAG")
  return chars, int(position), tag


def weibo_sentences(split, data_dir):
  path = _path(data_dir, WEIBO_FILES[split])
  for line, rows in conll_sentences(path, _weibo_row):
    yield path, line, rows


@problem("weibo_ner", "seq_tag", source=WEIBO_FILES["train"], scheme="BIO")
def weibo_ner(split, data_dir):
  """Weibo NER, all 8 types (PER/LOC/ORG/GPE x NAM/NOM)."""
  for path, line, rows in weibo_sentences(split, data_dir):
    yield Example([r[0] for r in rows], [r[2] for r in rows], path, line, 1)


@problem("weibo_ner_nam", "seq_tag", source=WEIBO_FILES["train"],
         scheme="BIO")
def weibo_ner_nam(split, data_dir):
  """Weibo NER, named mentions only (the original project's definition)."""
  for path, line, rows in weibo_sentences(split, data_dir):
    tags = [r[2] if r[2].endswith(".NAM") else "O" for r in rows]
    yield Example([r[0] for r in rows], tags, path, line, 1)


@problem("weibo_cws", "seq_tag", source=WEIBO_FILES["train"], scheme="BMES",
         metric="word")
def weibo_cws(split, data_dir):
  """Word segmentation of the Weibo NER sentences (same inputs as weibo_ner),
  from each character's position inside its word."""
  for path, line, rows in weibo_sentences(split, data_dir):
    positions = [r[1] for r in rows]
    tags = []
    for k, pos in enumerate(positions):
      ends = k + 1 == len(positions) or positions[k + 1] == 0
      if pos == 0:
        tags.append("S" if ends else "B")
      else:
        tags.append("E" if ends else "M")
    yield Example([r[0] for r in rows], tags, path, line, 1)


# ------------------------------------------------------------------ MSRA

MSRA_FILES = {"train": "msra_ner/msra_train.txt",
              "eval": "msra_ner/msra_test.txt",
              "predict": "msra_ner/msra_test.txt"}


def _msra_row(text):
  char, tag = text.split(" ")
  if not char or not tag:
    raise ValueError("expected CHAR<space>TAG")
  return char, tag


def msra_sentences(split, data_dir):
  path = _path(data_dir, MSRA_FILES[split])
  for line, rows in conll_sentences(path, _msra_row):
    yield path, line, [r[0] for r in rows], [r[1] for r in rows]


def bmes_entities(tags):
  """(start, end, type) of the entities of a BMES-tagged sequence."""
  spans, start = [], None
  for k, tag in enumerate(tags):
    prefix, _, kind = tag.partition("-")
    if prefix == "S":
      spans.append((k, k + 1, kind))
      start = None
    elif prefix == "B":
      start = k
    elif prefix == "E" and start is not None:
      spans.append((start, k + 1, kind))
      start = None
    elif prefix not in ("M",):
      start = None
  return spans


@problem("msra_ner", "seq_tag", source=MSRA_FILES["train"], scheme="BMES")
def msra_ner(split, data_dir):
  """MSRA NER (PER/LOC/ORG, BMES)."""
  for path, line, chars, tags in msra_sentences(split, data_dir):
    yield Example(chars, tags, path, line, 1)


@problem("msra_entity_types", "multi_cls", source=MSRA_FILES["train"])
def msra_entity_types(split, data_dir):
  """Which entity types an MSRA sentence contains (multi-label)."""
  for path, line, chars, tags in msra_sentences(split, data_dir):
    kinds = sorted({kind for _, _, kind in bmes_entities(tags)})
    yield Example("".join(chars), kinds, path, line)


@problem("msra_entities_text", "seq2seq_text", source=MSRA_FILES["train"])
def msra_entities_text(split, data_dir):
  """MSRA sentence -> its entities as text, in order, separated by "，"."""
  for path, line, chars, tags in msra_sentences(split, data_dir):
    entities = ["".join(chars[s:e]) for s, e, _ in bmes_entities(tags)]
    yield Example("".join(chars), "，".join(entities), path, line)


# ------------------------------------------------------- People's Daily

PD98_SEG = "pd98/seg_bmes.txt"
PD98_POS = "pd98/pos_199801.txt"
PD98_NER_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def _pd98_words(text):
  words = []
  for token in text.split():
    word, slash, tag = token.rpartition("/")
    if not slash or not word or not tag:
      raise ValueError("expected word/TAG, got %r" % token)
    words.append((word, tag))
  return words


def pd98_sentences(split, data_dir):
  """(path, line, [(word, pos)]) of every People's Daily sentence, split at
  。！？ inside paragraphs (words never straddle a sentence end)."""
  path = _path(data_dir, PD98_POS)
  for line, text in split_lines(path, split):
    try:
      words = _pd98_words(text)
    except ValueError as e:
      raise DataError(str(e), path=path, line=line) from None
    sentence = []
    for word, tag in words:
      sentence.append((word, tag))
      if word in SENTENCE_END or word[-1] in SENTENCE_END and tag == "w":
        yield path, line, sentence
        sentence = []
    if sentence:
      yield path, line, sentence


def _pd98_chars(sentence):
  return [c for word, _ in sentence for c in word]


@problem("pd98_cws", "seq_tag", source=PD98_POS, scheme="BMES",
         metric="word")
def pd98_cws(split, data_dir):
  """People's Daily 1998 word segmentation (BMES per character)."""
  for path, line, sentence in pd98_sentences(split, data_dir):
    yield Example(_pd98_chars(sentence), bmes([w for w, _ in sentence]),
                  path, line)


@problem("pd98_pos", "seq_tag", source=PD98_POS, scheme="BMES",
         metric="pos")
def pd98_pos(split, data_dir):
  """Joint segmentation and POS per character: B-n, M-n, E-n, S-v, ..."""
  for path, line, sentence in pd98_sentences(split, data_dir):
    tags = []
    for word, pos in sentence:
      tags.extend("%s-%s" % (t, pos) for t in bmes([word]))
    yield Example(_pd98_chars(sentence), tags, path, line)


@problem("pd98_ner", "seq_tag", source=PD98_POS, scheme="BIO")
def pd98_ner(split, data_dir):
  """PER/LOC/ORG from nr/ns/nt; consecutive nr words (surname + given
  name) form one person."""
  for path, line, sentence in pd98_sentences(split, data_dir):
    spans, start = [], 0
    previous = None
    for word, pos in sentence:
      kind = PD98_NER_TYPES.get(pos)
      end = start + len(word)
      if kind == "PER" and previous == "PER":
        spans[-1] = (spans[-1][0], end, kind)
      elif kind:
        spans.append((start, end, kind))
      previous, start = kind, end
    yield Example(_pd98_chars(sentence), spans_to_bio(start, spans), path,
                  line)


@problem("pd98_pos_seq", "seq2seq_tag", source=PD98_POS)
def pd98_pos_seq(split, data_dir):
  """People's Daily sentence -> its sequence of word-level POS tags."""
  for path, line, sentence in pd98_sentences(split, data_dir):
    yield Example(_pd98_chars(sentence), [pos for _, pos in sentence], path,
                  line)


# --------------------------------------------------------- SIGHAN 2005

SIGHAN_FILES = {"pku_cws": "sighan2005/pku_test_gold.utf8",
                "msr_cws": "sighan2005/msr_test_gold.utf8",
                "cityu_cws": "sighan2005/cityu_test_gold.utf8",
                "as_cws": "sighan2005/as_test_gold.utf8"}


def sighan_reader(relative):
  """Reader of a SIGHAN 2005 gold file (words separated by spaces);
  evaluation only: train on pd98_cws."""
  def read(split, data_dir):
    if split == "train":
      raise DataError("SIGHAN gold files are test data; train on pd98_cws "
                      "and evaluate with this problem")
    path = _path(data_dir, relative)
    for line, text in lines_of(path):
      words = text.split()
      if words:
        yield Example([c for w in words for c in w], bmes(words), path, line)
  return read


for _name, _relative in SIGHAN_FILES.items():
  problem(_name, "seq_tag", source=_relative, scheme="BMES", metric="word")(
      sighan_reader(_relative))


# -------------------------------------------------------------- sentiment

SENTIMENT_FILES = (("pos", "sentiment/pos.txt"), ("neg", "sentiment/neg.txt"))


@problem("chn_sentiment", "cls", source="sentiment/{pos,neg}.txt")
def chn_sentiment(split, data_dir):
  """Chinese review sentiment: pos / neg."""
  for label, relative in SENTIMENT_FILES:
    path = _path(data_dir, relative)
    for line, text in split_lines(path, split):
      yield Example(text.strip(), label, path, line)


# -------------------------------------------------------------- pretrain


MSRA_SENTENCES_PER_DOCUMENT = 8


@problem("zh_pretrain", "pretrain",
         source="pd98 paragraphs, sentiment reviews, MSRA and (where the "
         "data directory has it) Weibo text")
def zh_pretrain(split, data_dir):
  """Chinese documents for masked LM + next sentence, from the split's text
  only (so pretraining never reads a fine-tuning problem's test text):
  People's Daily paragraphs (sentences split at 。！？), reviews, Weibo posts,
  and MSRA sentences in runs of 8 (the corpus has no document marks)."""
  document, document_line = [], None
  for path, line, sentence in pd98_sentences(split, data_dir):
    if line != document_line and document:
      yield Example(document, None, path, document_line)
      document = []
    document_line = line
    document.append("".join(w for w, _ in sentence))
  if document:
    yield Example(document, None, _path(data_dir, PD98_POS), document_line)
  for _, relative in SENTIMENT_FILES:
    path = _path(data_dir, relative)
    for line, text in split_lines(path, split):
      yield Example(split_sentences(text.strip()), None, path, line)
  if os.path.exists(os.path.join(data_dir, WEIBO_FILES[split])):
    for path, line, rows in weibo_sentences(split, data_dir):
      yield Example(split_sentences("".join(r[0] for r in rows)), None, path,
                    line)
  else:  # not on the package index: a fresh machine pretrains without it
    logging.warning("zh_pretrain: %s is not in the data directory %s; the "
                    "Weibo posts are left out", WEIBO_FILES[split], data_dir)
  document = []
  for path, line, chars, _ in msra_sentences(split, data_dir):
    if not document:
      document_line = line
    document.append("".join(chars))
    if len(document) == MSRA_SENTENCES_PER_DOCUMENT:
      yield Example(document, None, path, document_line)
      document = []
  if document:
    yield Example(document, None, path, document_line)


def split_sentences(text):
  """Sentences of a text, each ending at 。！？ (kept)."""
  sentences, current = [], []
  for char in text:
    current.append(char)
    if char in SENTENCE_END:
      sentences.append("".join(current))
      current = []
  if current:
    sentences.append("".join(current))
  return sentences
