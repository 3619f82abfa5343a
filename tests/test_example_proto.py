"""The native tf.train.Example serializer and TFRecord framing against
TensorFlow's own."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bert_mtl import _native


def test_serialized_examples_parse_back_exactly():
  rng = np.random.default_rng(0)
  for trial in range(200):
    features = {}
    for k in range(rng.integers(0, 5)):
      n = int(rng.integers(0, 40))
      if rng.random() < 0.3:
        features["f%d" % k] = rng.normal(size=n).astype(np.float32)
      else:
        features["i%d_名" % k] = rng.integers(-2 ** 62, 2 ** 62, n)
    parsed = tf.train.Example.FromString(
        _native.serialize_example(features)).features.feature
    assert set(parsed) == set(features)
    for name, values in features.items():
      got = (parsed[name].float_list.value if values.dtype == np.float32
             else parsed[name].int64_list.value)
      assert list(got) == values.tolist(), (trial, name)


def test_records_are_byte_identical_to_tfrecordwriter(tmp_path):
  payloads = [b"", b"x", os.urandom(1000), os.urandom(70000)]
  path = str(tmp_path / "ref.tfrecord")
  with tf.io.TFRecordWriter(path) as writer:
    for payload in payloads:
      writer.write(payload)
  ours = b"".join(_native.frame_record(p) for p in payloads)
  assert open(path, "rb").read() == ours


def test_bad_feature_values_raise_not_crash():
  with pytest.raises(TypeError, match="feature s"):
    _native.serialize_example({"s": np.array(["a"])})
  with pytest.raises((TypeError, RuntimeError)):
    _native.serialize_example({1: np.array([1])})
