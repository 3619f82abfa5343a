"""One head per problem type: a new type is one module plus one line here."""

from bert_mtl.heads.cls import ClsHead
from bert_mtl.heads.multi_cls import MultiClsHead
from bert_mtl.heads.pretrain import PretrainHead
from bert_mtl.heads.seq2seq import Seq2SeqHead
from bert_mtl.heads.seq_tag import SeqTagHead

HEADS = {
    "cls": ClsHead,
    "multi_cls": MultiClsHead,
    "seq_tag": SeqTagHead,
    "seq2seq_tag": Seq2SeqHead,
    "seq2seq_text": Seq2SeqHead,
    "pretrain": PretrainHead,
}
