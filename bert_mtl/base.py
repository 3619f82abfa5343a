"""Constants every layer shares (no imports from the rest of bert_mtl)."""

# The label of token positions that carry none ([CLS], [SEP], padding,
# continuation pieces): no loss, no prediction.
IGNORE = -1

# Decoder specials of a seq2seq_tag label map; seq2seq_text uses the target
# vocabulary's [PAD], [CLS] (as BOS) and [SEP] (as EOS).
TAG_SPECIALS = ("[PAD]", "[BOS]", "[EOS]")

# Next-sentence labels of a pretrain problem: the original's 0 / 1.
NSP_LABELS = ("IsNext", "RandomNext")

CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = "[CLS]", "[SEP]", "[MASK]"

# The name of each replica's real-row count in an EVAL graph (model_fn),
# which the evaluation progress line sums.
EVAL_ROWS = "eval_rows"

