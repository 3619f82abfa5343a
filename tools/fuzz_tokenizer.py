"""Coverage-guided fuzzing of bert_mtl._native with atheris.

Every input is decoded to a str (lone surrogates allowed) and tokenized by
the native tokenizer and by the pure-Python specification in tests/; any
difference or crash is a finding.  Example (about a minute):

    python tools/fuzz_tokenizer.py -runs=200000 [VOCAB_FILE]
"""

import os
import sys

import atheris

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

# The extension itself is not instrumented; the reference's branches, which
# mirror the specification, give the fuzzer its coverage signal.
with atheris.instrument_imports():
  import reference_tokenization as ref
  from bert_mtl import tokenization

VOCAB = next((a for a in sys.argv[1:] if not a.startswith("-")), None) or \
    os.path.join(os.environ.get("BERT_MTL_DATA_DIR",
                                os.path.join(os.path.dirname(REPO), "shared",
                                             "data")), "minilm", "vocab.txt")
TOKENIZERS = {lower: tokenization.FullTokenizer(VOCAB, lower)
              for lower in (True, False)}
VOCAB_DICT = ref.load_vocab(VOCAB)


def test_one_input(data):
  fdp = atheris.FuzzedDataProvider(data)
  lower = fdp.ConsumeBool()
  as_bytes = fdp.ConsumeBool()
  if as_bytes:
    text = fdp.ConsumeBytes(fdp.remaining_bytes())
  else:
    text = fdp.ConsumeUnicode(fdp.remaining_bytes())
  got = TOKENIZERS[lower].tokenize(text)
  want = ref.tokenize(text, VOCAB_DICT, lower)
  if got != want:
    raise AssertionError("%r: native %r != reference %r" % (text, got, want))
  TOKENIZERS[lower].encode_batch([text, text], [text, ""], max_seq_length=8)


if __name__ == "__main__":
  atheris.Setup([a for a in sys.argv if a.startswith("-") or a == sys.argv[0]],
                test_one_input)
  atheris.Fuzz()
