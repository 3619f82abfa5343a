"""`seq2seq_tag` and `seq2seq_text`: a transformer decoder over the
encoder output, trained with teacher forcing, decoded by beam search.

Targets (`<name>_label`, [batch, target]) end in EOS and are padded with
0 ([PAD]); the decoder input is BOS followed by the targets shifted right
by one, and the loss covers the real target positions only.
seq2seq_text ties its input and output embeddings to BERT's word
embeddings when the target vocabulary is BERT's; seq2seq_tag has its own.
"""

import tensorflow as tf

from bert_mtl import base as constants
from bert_mtl import metrics, modeling, types
from bert_mtl.heads import base, beam_search, decoder
from bert_mtl.labels import LabelEncoder

tf1 = tf.compat.v1


class Seq2SeqHead(base.Head):
  """Settings: decoder_layers, beam_size, beam_alpha, max_decode_length
  (in a run: its max_target_length unless given); bos_id / eos_id and
  share_embeddings (True for seq2seq_text on BERT's vocabulary) are given
  by the run (head_settings)."""

  SETTINGS = {"decoder_layers": 2, "beam_size": 4, "beam_alpha": 0.6,
              "max_decode_length": 32}
  SETTING_HELP = {
      "decoder_layers": "seq2seq decoder depth.",
      "beam_size": "seq2seq beam size, 1: greedy.",
      "beam_alpha": "seq2seq length penalty.",
      "max_decode_length": "seq2seq tokens decoded at most (default: the "
                           "run's --max_target_length)"}

  def build(self, body, features, mode):
    config = self.bert_config
    training = mode == tf.estimator.ModeKeys.TRAIN
    dropout = config.hidden_dropout_prob if training else 0.0
    self.num_layers = int(self.setting("decoder_layers"))
    with tf1.variable_scope("decoder", reuse=tf1.AUTO_REUSE):
      if self.settings.get("share_embeddings"):
        table = body.embedding_table
      else:
        table = tf1.get_variable(
            "target_embeddings", [self.num_labels, config.hidden_size],
            initializer=modeling.create_initializer(config.initializer_range))
      positions = tf1.get_variable(
          "position_embeddings",
          [config.max_position_embeddings, config.hidden_size],
          initializer=modeling.create_initializer(config.initializer_range))
      output_bias = tf1.get_variable("output_bias", [self.num_labels],
                                     initializer=tf1.zeros_initializer())
      encoder_kv = decoder.encoder_keys_values(body.sequence_output, config,
                                               self.num_layers)
      source_bias = decoder.encoder_bias(body.input_mask)

      def embed(ids, start):
        """[batch, length] ids at positions start.. -> embeddings."""
        length = tf.shape(ids)[1]
        x = tf.gather(table, ids) + tf.gather(
            positions, tf.range(start, start + length))[None]
        with tf1.variable_scope("embeddings", reuse=tf1.AUTO_REUSE):
          return modeling.layer_norm_and_dropout(x, dropout)

      def logits_of(hidden):
        return tf.einsum("blh,vh->blv", hidden, table) + output_bias

      bos = int(self.settings["bos_id"])
      label_key = self.name + "_label"
      if label_key in features:
        targets = features[label_key]
      else:  # serving: no targets; the variables are built on BOS alone
        targets = tf.zeros([tf.shape(body.input_ids)[0], 1], tf.int32)
      # A batch without the problem has [batch, 0] targets: keep one column.
      targets = tf.pad(targets, [[0, 0], [0, tf.maximum(
          0, 1 - tf.shape(targets)[1])]])
      batch_size = tf.shape(targets)[0]
      inputs = tf.concat([tf.fill([batch_size, 1], bos), targets[:, :-1]], 1)
      hidden, _ = decoder.decoder_layers(
          embed(inputs, 0), encoder_kv, source_bias,
          decoder.causal_bias(tf.shape(inputs)[1]), config, dropout)
      outputs = {"logits": tf.cast(logits_of(hidden), tf.float32),
                 "targets": targets}

      # Beam search only where results are asked for (a group's predict
      # pass, the export): evaluation's in-graph pass computes the
      # teacher-forced loss and token accuracy, and decodes nothing.
      if mode == tf.estimator.ModeKeys.PREDICT:
        # Read once, not once per decoding step inside the loop, and
        # padded once to the width the step's top-k reads unpadded.
        table = tf.convert_to_tensor(table)
        width = beam_search.padded_vocab_size(self.num_labels)
        step_table = tf.pad(table, [[0, width - self.num_labels], [0, 0]])
        step_bias = tf.pad(output_bias, [[0, width - self.num_labels]],
                           constant_values=beam_search.NEG)

        beam_size = int(self.setting("beam_size"))
        # The encoder's keys and values are the same for every hypothesis
        # of a row: tiled once and read by every step, not carried (and
        # reordered by beam) in the loop's cache.
        beam_kv, beam_bias = tf.nest.map_structure(
            lambda t: beam_search.tile_beams(t, beam_size),
            (encoder_kv, source_bias))

        def step(ids, layer_cache, position):
          x = embed(ids[:, None], position)
          hidden, layer_cache = decoder.decoder_layers(
              x, beam_kv, beam_bias, 0.0, config, 0.0, layer_cache)
          return tf.matmul(hidden[:, 0], step_table,
                           transpose_b=True) + step_bias, layer_cache
        batch = tf.shape(body.sequence_output)[0]
        ids, scores = beam_search.beam_search(
            step, decoder.empty_cache(batch, config, self.num_layers), batch,
            self.num_labels, beam_size,
            int(self.setting("max_decode_length")), bos,
            int(self.settings["eos_id"]), float(self.setting("beam_alpha")))
        outputs.update(decoded_ids=ids, decoded_scores=scores)
    return outputs

  def loss_terms(self, outputs, features):
    targets = outputs["targets"]
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=targets, logits=outputs["logits"])
    weights = tf.cast(targets > 0, tf.float32) * self.present(features)[:, None]
    return [(per_token, weights)]

  def metrics(self, outputs, features):
    targets = outputs["targets"]
    weights = tf.cast(targets > 0, tf.float32) * self.present(features)[:, None]
    correct = tf.cast(tf.equal(
        tf.argmax(outputs["logits"], -1, output_type=tf.int32), targets),
                      tf.float32)
    return {"token_accuracy": base.mean_metric(correct, weights)}

  def predictions(self, outputs):
    return {"ids": outputs["decoded_ids"], "scores": outputs["decoded_scores"]}


def decoder_special_ids(encoder):
  """(pad, bos, eos) ids of a seq2seq problem's target label map."""
  ids = encoder.ids
  if "[BOS]" in ids:
    return ids["[PAD]"], ids["[BOS]"], ids["[EOS]"]
  return ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]


def target_tokens(ids, encoder):
  """Decoded target ids (EOS-terminated, 0-padded) -> label strings."""
  _, bos, eos = decoder_special_ids(encoder)
  out = []
  for i in ids:
    if i == eos:
      break
    if i not in (0, bos):
      out.append(encoder.labels[int(i)])
  return out


def detokenize(tokens):
  """WordPiece tokens -> text: ## pieces join their word, CJK characters
  join without spaces, other words are separated by one."""
  text = ""
  for token in tokens:
    if token.startswith("##"):
      text += token[2:]
    elif text and (token[0].isascii() and token[0].isalnum() and
                   text[-1].isascii() and text[-1].isalnum()):
      text += " " + token
    else:
      text += token
  return text


def _aligned_accuracy(gold, predicted):
  """Position-wise token accuracy over the gold length."""
  total = sum(len(g) for g in gold)
  correct = sum(a == b for g, p in zip(gold, predicted)
                for a, b in zip(g, p))
  return correct / total if total else 0.0


class Seq2Seq(types.ProblemType):
  """Shared by both seq2seq types: a target sequence per example, as label
  (or target-vocabulary) ids ending in EOS, truncated to
  max_target_length; the decoder prepends BOS itself."""

  inputs = "any"
  head = Seq2SeqHead
  label_shape = "sequence"

  def _with_eos(self, encoder, ids, config):
    _, _, eos = decoder_special_ids(encoder)
    return list(ids[:config.max_target_length - 1]) + [eos]

  def head_settings(self, spec, encoder, bert_config, run_config, given):
    _, bos, eos = decoder_special_ids(encoder)
    return {"bos_id": bos, "eos_id": eos,
            "share_embeddings": (self.name == "seq2seq_text" and
                                 len(encoder) == bert_config.vocab_size),
            "max_decode_length": given.get(
                "max_decode_length", run_config.max_target_length)}


class Seq2SeqTag(Seq2Seq):
  """A tag sequence per example (e.g. the POS tags of a sentence)."""

  name = "seq2seq_tag"
  metrics = {"sequence": "exact_match"}

  def check(self, inputs, labels):
    if not (types.is_units(inputs) or types.is_text(inputs)):
      return "seq2seq_tag inputs must be a text or a list of units"
    if not isinstance(labels, (list, tuple)) or not labels or not all(
        isinstance(l, str) and l for l in labels):
      return "seq2seq_tag target must be a non-empty list of tags"
    return None

  def placeholder_labels(self, inputs):
    return ["?"]

  def training_label_lists(self, examples):
    return [e.labels for e in examples]

  def reserved_labels(self):
    return constants.TAG_SPECIALS

  def label_value(self, encoder, example, config):
    return self._with_eos(encoder, encoder.encode(
        example.labels, example.path, example.line), config)

  def decode(self, rows, encoder, context):
    return target_tokens(rows[0]["ids"], encoder)

  def score(self, spec, examples, results, encoder, context):
    limit = context.max_target_length - 1
    gold = [list(e.labels)[:limit] for e in examples]
    return {"exact_match": metrics.accuracy(
        [tuple(g) for g in gold], [tuple(r) for r in results]),
            "token_accuracy": _aligned_accuracy(gold, results)}

  def serve(self, result, rows, encoder, context):
    return {"tags": result}


class Seq2SeqText(Seq2Seq):
  """A target text per example, in the target tokenizer's vocabulary
  ([PAD] at 0, [CLS] as BOS, [SEP] as EOS)."""

  name = "seq2seq_text"
  metrics = {"text": "bleu4"}

  def check(self, inputs, labels):
    if not (types.is_units(inputs) or types.is_text(inputs)):
      return "seq2seq_text inputs must be a text or a list of units"
    if not isinstance(labels, str):
      return "seq2seq_text target must be a string"
    return None

  def placeholder_labels(self, inputs):
    return ""

  def fit_encoder(self, name, spec, config, read):
    tokenizer = config.target_tokenizer
    encoder = LabelEncoder(sorted(tokenizer.vocab, key=tokenizer.vocab.get),
                           name)
    if decoder_special_ids(encoder)[0] != 0:
      raise ValueError("%s: the target vocabulary must have [PAD] at id 0 "
                       "(batches pad targets with 0)" % name)
    return encoder

  def label_values(self, encoder, examples, config):
    ragged = config.target_tokenizer.encode_ragged(
        [e.labels or "" for e in examples], config.num_threads)
    ids, splits = ragged["ids"], ragged["row_splits"]
    return [None if e.labels is None else
            self._with_eos(encoder, ids[splits[i]:splits[i + 1]], config)
            for i, e in enumerate(examples)]

  def decode(self, rows, encoder, context):
    return detokenize(target_tokens(rows[0]["ids"], encoder))

  def score(self, spec, examples, results, encoder, context):
    tokenizer = context.target_tokenizer
    limit = context.max_target_length - 1
    gold = [tokenizer.tokenize(e.labels)[:limit] for e in examples]
    predicted = [tokenizer.tokenize(r) for r in results]
    return {"exact_match": metrics.accuracy(
        [tuple(g) for g in gold], [tuple(r) for r in predicted]),
            "bleu4": metrics.corpus_bleu(gold, predicted)}

  def serve(self, result, rows, encoder, context):
    return {"text": result}


types.register(Seq2SeqTag())
types.register(Seq2SeqText())
