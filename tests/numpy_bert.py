"""A small numpy forward pass of BERT, written for the tests from the
specification (original_bert.md section 5), to check the TF graph against."""

import math

import numpy as np

_erf = np.vectorize(math.erf)


def gelu_tanh(x):
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) *
                                  (x + 0.044715 * x ** 3)))


def gelu_erf(x):
  return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, gamma, beta, eps=1e-12):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * gamma + beta


def softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def forward(w, config, input_ids, input_mask, token_type_ids):
  """All layer outputs [L x (B, S, H)] and the pooled output (B, H).

  Args:
    w: {checkpoint name: array}.
    config: BertConfig.
  """
  act = gelu_erf if config.hidden_act == "gelu_exact" else gelu_tanh
  b, s = input_ids.shape
  h = config.hidden_size
  heads = config.num_attention_heads
  d = h // heads
  e = "bert/embeddings/"
  x = (w[e + "word_embeddings"][input_ids] +
       w[e + "token_type_embeddings"][token_type_ids] +
       w[e + "position_embeddings"][:s][None])
  x = layer_norm(x, w[e + "LayerNorm/gamma"], w[e + "LayerNorm/beta"])
  mask_add = (1.0 - input_mask[:, None, None, :].astype(np.float64)) * -10000.0
  layers = []
  for i in range(config.num_hidden_layers):
    p = "bert/encoder/layer_%d/" % i

    def dense(t, name):
      return t @ w[p + name + "/kernel"] + w[p + name + "/bias"]

    def split(t):
      return t.reshape(b, s, heads, d).transpose(0, 2, 1, 3)

    q = split(dense(x, "attention/self/query"))
    k = split(dense(x, "attention/self/key"))
    v = split(dense(x, "attention/self/value"))
    probs = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + mask_add)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
    attn = layer_norm(dense(context, "attention/output/dense") + x,
                      w[p + "attention/output/LayerNorm/gamma"],
                      w[p + "attention/output/LayerNorm/beta"])
    inter = act(dense(attn, "intermediate/dense"))
    x = layer_norm(dense(inter, "output/dense") + attn,
                   w[p + "output/LayerNorm/gamma"],
                   w[p + "output/LayerNorm/beta"])
    layers.append(x)
  pooled = np.tanh(x[:, 0] @ w["bert/pooler/dense/kernel"] +
                   w["bert/pooler/dense/bias"])
  return layers, pooled
