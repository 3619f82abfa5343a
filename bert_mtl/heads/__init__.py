"""What heads share: the Head interface and helpers (base), the transformer
decoder and beam search of the seq2seq types.  Each type's own head lives in
its module in bert_mtl/types/."""
