"""The public API of google-research/bert's tokenization, modeling and
optimization modules, as bert_mtl's modules of the same names offer it:
every name with the original signature and defaults, the tokenizer cases
of the original tests, the classes against the reference tokenizer on real
text, and the graph checks under both TensorFlow behaviours."""

import collections
import inspect
import os
import random
import subprocess
import sys

import pytest

from bert_mtl.testing import reference_tokenization as ref
from bert_mtl import modeling, optimization, tokenization
from conftest import REPO, data_file

_ = inspect.Parameter.empty

# The original public surface: name -> [(parameter, default)], methods as
# "Class.method" (self left out).  Written from the original modules at
# google-research/bert eedf571 (../shared/reference/original_bert.md).
ORIGINAL_SIGNATURES = {
    tokenization: {
        "validate_case_matches_checkpoint": [("do_lower_case", _),
                                             ("init_checkpoint", _)],
        "convert_to_unicode": [("text", _)],
        "printable_text": [("text", _)],
        "load_vocab": [("vocab_file", _)],
        "convert_by_vocab": [("vocab", _), ("items", _)],
        "convert_tokens_to_ids": [("vocab", _), ("tokens", _)],
        "convert_ids_to_tokens": [("inv_vocab", _), ("ids", _)],
        "whitespace_tokenize": [("text", _)],
        "FullTokenizer": [("vocab_file", _), ("do_lower_case", True)],
        "FullTokenizer.tokenize": [("text", _)],
        "FullTokenizer.convert_tokens_to_ids": [("tokens", _)],
        "FullTokenizer.convert_ids_to_tokens": [("ids", _)],
        "BasicTokenizer": [("do_lower_case", True)],
        "BasicTokenizer.tokenize": [("text", _)],
        "BasicTokenizer._run_strip_accents": [("text", _)],
        "BasicTokenizer._run_split_on_punc": [("text", _)],
        "BasicTokenizer._tokenize_chinese_chars": [("text", _)],
        "BasicTokenizer._is_chinese_char": [("cp", _)],
        "BasicTokenizer._clean_text": [("text", _)],
        "WordpieceTokenizer": [("vocab", _), ("unk_token", "[UNK]"),
                               ("max_input_chars_per_word", 200)],
        "WordpieceTokenizer.tokenize": [("text", _)],
        "_is_whitespace": [("char", _)],
        "_is_control": [("char", _)],
        "_is_punctuation": [("char", _)],
    },
    modeling: {
        "BertConfig": [("vocab_size", _), ("hidden_size", 768),
                       ("num_hidden_layers", 12), ("num_attention_heads", 12),
                       ("intermediate_size", 3072), ("hidden_act", "gelu"),
                       ("hidden_dropout_prob", 0.1),
                       ("attention_probs_dropout_prob", 0.1),
                       ("max_position_embeddings", 512),
                       ("type_vocab_size", 16), ("initializer_range", 0.02)],
        "BertConfig.from_dict": [("json_object", _)],
        "BertConfig.from_json_file": [("json_file", _)],
        "BertConfig.to_dict": [],
        "BertConfig.to_json_string": [],
        "BertModel": [("config", _), ("is_training", _), ("input_ids", _),
                      ("input_mask", None), ("token_type_ids", None),
                      ("use_one_hot_embeddings", False), ("scope", None)],
        "BertModel.get_pooled_output": [],
        "BertModel.get_sequence_output": [],
        "BertModel.get_all_encoder_layers": [],
        "BertModel.get_embedding_output": [],
        "BertModel.get_embedding_table": [],
        "gelu": [("x", _)],
        "get_activation": [("activation_string", _)],
        "get_assignment_map_from_checkpoint": [("tvars", _),
                                               ("init_checkpoint", _)],
        "dropout": [("input_tensor", _), ("dropout_prob", _)],
        "layer_norm": [("input_tensor", _), ("name", None)],
        "layer_norm_and_dropout": [("input_tensor", _), ("dropout_prob", _),
                                   ("name", None)],
        "create_initializer": [("initializer_range", 0.02)],
        "embedding_lookup": [("input_ids", _), ("vocab_size", _),
                             ("embedding_size", 128),
                             ("initializer_range", 0.02),
                             ("word_embedding_name", "word_embeddings"),
                             ("use_one_hot_embeddings", False)],
        "embedding_postprocessor": [
            ("input_tensor", _), ("use_token_type", False),
            ("token_type_ids", None), ("token_type_vocab_size", 16),
            ("token_type_embedding_name", "token_type_embeddings"),
            ("use_position_embeddings", True),
            ("position_embedding_name", "position_embeddings"),
            ("initializer_range", 0.02), ("max_position_embeddings", 512),
            ("dropout_prob", 0.1)],
        "create_attention_mask_from_input_mask": [("from_tensor", _),
                                                  ("to_mask", _)],
        "attention_layer": [
            ("from_tensor", _), ("to_tensor", _), ("attention_mask", None),
            ("num_attention_heads", 1), ("size_per_head", 512),
            ("query_act", None), ("key_act", None), ("value_act", None),
            ("attention_probs_dropout_prob", 0.0),
            ("initializer_range", 0.02), ("do_return_2d_tensor", False),
            ("batch_size", None), ("from_seq_length", None),
            ("to_seq_length", None)],
        "transformer_model": [
            ("input_tensor", _), ("attention_mask", None),
            ("hidden_size", 768), ("num_hidden_layers", 12),
            ("num_attention_heads", 12), ("intermediate_size", 3072),
            ("intermediate_act_fn", modeling.gelu),
            ("hidden_dropout_prob", 0.1),
            ("attention_probs_dropout_prob", 0.1),
            ("initializer_range", 0.02), ("do_return_all_layers", False)],
        "get_shape_list": [("tensor", _), ("expected_rank", None),
                           ("name", None)],
        "reshape_to_matrix": [("input_tensor", _)],
        "reshape_from_matrix": [("output_tensor", _), ("orig_shape_list", _)],
        "assert_rank": [("tensor", _), ("expected_rank", _), ("name", None)],
    },
    optimization: {
        "create_optimizer": [("loss", _), ("init_lr", _),
                             ("num_train_steps", _), ("num_warmup_steps", _),
                             ("use_tpu", _)],
        "AdamWeightDecayOptimizer": [
            ("learning_rate", _), ("weight_decay_rate", 0.0), ("beta_1", 0.9),
            ("beta_2", 0.999), ("epsilon", 1e-6),
            ("exclude_from_weight_decay", None),
            ("name", "AdamWeightDecayOptimizer")],
        "AdamWeightDecayOptimizer.apply_gradients": [
            ("grads_and_vars", _), ("global_step", None), ("name", None)],
        "AdamWeightDecayOptimizer._do_use_weight_decay": [("param_name", _)],
        "AdamWeightDecayOptimizer._get_variable_name": [("param_name", _)],
    },
}


def _lookup(module, dotted):
  obj = module
  for part in dotted.split("."):
    obj = getattr(obj, part)
  return obj


def _positional(obj):
  """(name, default) of the parameters the original code can pass
  positionally or by keyword; extensions after them must have defaults."""
  target = obj.__init__ if inspect.isclass(obj) else obj
  params = list(inspect.signature(target).parameters.values())
  if params and params[0].name in ("self", "cls"):
    params = params[1:]
  return [(p.name, p.default) for p in params
          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)], params


CASES = [(m, n) for m, table in ORIGINAL_SIGNATURES.items() for n in table]


@pytest.mark.parametrize("module,name", CASES,
                         ids=["%s.%s" % (m.__name__.split(".")[-1], n)
                              for m, n in CASES])
def test_original_name_and_signature(module, name):
  obj = _lookup(module, name)
  got, params = _positional(obj)
  want = ORIGINAL_SIGNATURES[module][name]
  assert [n for n, _ in got[:len(want)]] == [n for n, _ in want]
  for (param, default), (_, original) in zip(got, want):
    # The original's defaults exactly; where it had none, one may be added
    # (create_optimizer's use_tpu=False), since a call that passes it works.
    if original is not inspect.Parameter.empty:
      assert default == original, param
  # Anything beyond the original's parameters is an optional extension.
  extra = [p for p in params if p.name not in dict(want)]
  assert all(p.default is not inspect.Parameter.empty or
             p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in extra), extra


# ------------------------------------------- the original tokenizer tests


def _vocab_file(tmp_path, tokens):
  path = tmp_path / "vocab.txt"
  path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
  return str(path)


VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un",
         "runn", "##ing", ","]


def test_full_tokenizer(tmp_path):
  tokenizer = tokenization.FullTokenizer(_vocab_file(tmp_path, VOCAB))
  tokens = tokenizer.tokenize(u"UNwant\u00E9d,running")
  assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
  assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
  assert tokenizer.convert_ids_to_tokens([7, 4, 5]) == ["un", "##want",
                                                        "##ed"]
  assert isinstance(tokenizer.vocab, collections.OrderedDict)
  assert tokenizer.inv_vocab[10] == ","
  assert isinstance(tokenizer.basic_tokenizer, tokenization.BasicTokenizer)
  assert tokenizer.basic_tokenizer.do_lower_case is True
  assert isinstance(tokenizer.wordpiece_tokenizer,
                    tokenization.WordpieceTokenizer)
  assert tokenizer.wordpiece_tokenizer.vocab is tokenizer.vocab
  with pytest.raises(KeyError):
    tokenizer.convert_tokens_to_ids(["nope"])


def test_chinese():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize(u"ah\u535A\u63A8zz") == [u"ah", u"\u535A",
                                                     u"\u63A8", u"zz"]


def test_basic_tokenizer_lower():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "hello", "!", "how", "are", "you", "?"]
  assert tokenizer.tokenize(u"H\u00E9llo") == ["hello"]


def test_basic_tokenizer_no_lower():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "HeLLo", "!", "how", "Are", "yoU", "?"]


def test_wordpiece_tokenizer():
  vocab = {token: i for i, token in enumerate(VOCAB[:-1])}
  tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
  assert tokenizer.tokenize("") == []
  assert tokenizer.tokenize("unwanted running") == [
      "un", "##want", "##ed", "runn", "##ing"]
  assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_wordpiece_unk_token_and_length_limit():
  vocab = {"[UNK]": 0, "a": 1, "##a": 2, "<unk>": 3}
  assert tokenization.WordpieceTokenizer(vocab).tokenize("a" * 201) == [
      "[UNK]"]
  assert tokenization.WordpieceTokenizer(vocab).tokenize("a" * 200) == [
      "a"] + ["##a"] * 199
  short = tokenization.WordpieceTokenizer(vocab, unk_token="<unk>",
                                          max_input_chars_per_word=3)
  assert short.tokenize("aaaa aa b") == ["<unk>", "a", "##a", "<unk>"]
  # No cleaning or normalisation: that is BasicTokenizer's job.
  assert short.tokenize("A") == ["<unk>"]
  # A vocab without the unk token still yields it, as the original does.
  assert tokenization.WordpieceTokenizer({"a": 0}).tokenize("b") == ["[UNK]"]


def test_convert_tokens_to_ids_module_functions():
  vocab = {token: i for i, token in enumerate(VOCAB[:-1])}
  inv_vocab = {i: token for token, i in vocab.items()}
  assert tokenization.convert_tokens_to_ids(
      vocab, ["un", "##want", "##ed", "runn", "##ing"]) == [7, 4, 5, 8, 9]
  assert tokenization.convert_ids_to_tokens(inv_vocab, [7, 4]) == [
      "un", "##want"]
  assert tokenization.convert_by_vocab(vocab, ["wa"]) == [6]


def test_is_whitespace():
  for char in (u" ", u"\t", u"\r", u"\n", u"\u00A0", u"\u3000"):
    assert tokenization._is_whitespace(char)  # pylint: disable=protected-access
  for char in (u"A", u"-", u"\u2028"):
    assert not tokenization._is_whitespace(char)  # pylint: disable=protected-access


def test_is_control():
  for char in (u"\u0005", u"\u200b", u"\ufeff"):
    assert tokenization._is_control(char)  # pylint: disable=protected-access
  for char in (u"A", u" ", u"\t", u"\r", u"\U0001F4A9", u"\ue000"):
    assert not tokenization._is_control(char)  # pylint: disable=protected-access


def test_is_punctuation():
  for char in (u"-", u"$", u"`", u".", u"\u3002"):
    assert tokenization._is_punctuation(char)  # pylint: disable=protected-access
  for char in (u"A", u" ", u"\u20ac"):
    assert not tokenization._is_punctuation(char)  # pylint: disable=protected-access


def test_text_helpers():
  assert tokenization.convert_to_unicode(b"a\xffb") == "ab"
  assert tokenization.printable_text(b"caf\xc3\xa9") == u"caf\u00e9"
  assert tokenization.printable_text(u"x") == u"x"
  # The original raised ValueError; the error is also a TypeError.
  with pytest.raises(ValueError, match="Unsupported string type"):
    tokenization.convert_to_unicode(3)
  with pytest.raises(TypeError):
    tokenization.printable_text(None)
  assert tokenization.whitespace_tokenize(u"  a\tb \u3000c\n") == [
      "a", "b", "c"]
  assert tokenization.whitespace_tokenize(u" \n ") == []


def test_load_vocab_is_an_ordered_dict(tmp_path):
  vocab = tokenization.load_vocab(_vocab_file(tmp_path, ["b", "a", "b"]))
  assert isinstance(vocab, collections.OrderedDict)
  assert list(vocab.items()) == [("b", 2), ("a", 1)]


def test_private_basic_steps_match_the_reference():
  basic = tokenization.BasicTokenizer()
  text = u"e\u0301te \u535Ax\u00a0y\x00z\u200b,!ab"
  assert basic._clean_text(text) == ref.clean(text)  # pylint: disable=protected-access
  assert basic._tokenize_chinese_chars(text) == ref.space_cjk(text)  # pylint: disable=protected-access
  assert basic._run_strip_accents(u"H\u00e9llo") == ref.strip_accents(  # pylint: disable=protected-access
      u"H\u00e9llo")
  assert basic._run_split_on_punc(u"a,b!!c") == ref.split_on_punctuation(  # pylint: disable=protected-access
      u"a,b!!c")
  assert basic._is_chinese_char(0x535A) and not basic._is_chinese_char(  # pylint: disable=protected-access
      0x3042)


# ------------------------------------ the classes on real and random text


def _random_text(rng, length):
  pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF),
           (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
           (0xE000, 0xE0FF), (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF),
           (0x20000, 0x2A6DF), (0x0, 0x1F), (0x2000, 0x206F)]
  out = []
  for _ in range(length):
    lo, hi = pools[rng.randrange(len(pools))]
    out.append(chr(rng.randint(lo, hi)))
  return "".join(out)


def _check_against_reference(vocab_file, texts):
  vocab = ref.load_vocab(vocab_file)
  for do_lower_case in (True, False):
    full = tokenization.FullTokenizer(vocab_file, do_lower_case)
    for text in texts:
      want = ref.basic_tokenize(text, do_lower_case)
      assert full.basic_tokenizer.tokenize(text) == want, repr(text)
      pieces = full.wordpiece_tokenizer.tokenize(" ".join(want))
      assert pieces == [p for w in want for p in ref.wordpiece(w, vocab)]
      assert full.tokenize(text) == pieces


def test_basic_and_wordpiece_match_reference_on_chinese_and_random():
  vocab_file = data_file("vocab/chinese_vocab.txt")
  corpus = data_file("weibo_ner/weiboNER_2nd_conll.train")
  with open(corpus, encoding="utf-8") as f:
    chars = [line.split()[0][0] if line.split() else "\n" for line in f]
  sentences = [s for s in "".join(chars).split("\n") if s][:800]
  rng = random.Random(0)
  _check_against_reference(vocab_file, sentences + [
      _random_text(rng, rng.randint(0, 40)) for _ in range(1500)])


def test_basic_and_wordpiece_match_reference_on_english():
  vocab_file = data_file("minilm/vocab.txt")
  # English prose: the reference document beside the data (shared/).
  text_file = os.path.join(os.path.dirname(os.path.dirname(vocab_file)),
                           "..", "reference", "original_bert.md")
  if not os.path.exists(text_file):
    pytest.skip("no %s" % text_file)
  with open(text_file, encoding="utf-8") as f:
    lines = [line for line in f.read().split("\n") if line.strip()]
  _check_against_reference(vocab_file, lines + [
      "John Johanson's,", u"H\u00e9llo WORLD!!", u"\u0130stanbul",
      u"\u039f\u0394\u039f\u03a3", "[CLS] hi [SEP]", "a" * 250])


# ------------------------------------------- graphs under both behaviours


@pytest.mark.parametrize("behavior", ["v2", "v1"])
def test_graph_checks_under_tf_behavior(behavior):
  """tests/original_graph_checks.py in a fresh process: TF2 defaults, and
  tf.compat.v1.disable_v2_behavior() (reference variables, v1 shapes)."""
  env = dict(os.environ, BERT_MTL_TF_BEHAVIOR=behavior,
             TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
       "-n0", "-W", "ignore", os.path.join(REPO, "tests",
                                    "original_graph_checks.py")],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
  assert "16 passed" in result.stdout
