"""The fused dropout's keep mask as plain numpy, the statement the op
(csrc/tf_ops/fused_ops.cc) is checked against."""

import numpy as np


def keep_mask(seed, size, rate):
  """bool [size]: the elements BertMtlDropout keeps for int64 `seed`.

  Element i is kept when the top 24 bits of MurmurHash3's 32-bit finalizer
  of ((i * 0x9E3779B1 + low(seed)) xor high(seed)), read as a uniform in
  [0, 1), are at least `rate` (32-bit float compare)."""
  seed &= (1 << 64) - 1
  low, high = np.uint32(seed & 0xFFFFFFFF), np.uint32(seed >> 32)
  h = np.arange(size, dtype=np.uint64).astype(np.uint32)
  h = (h * np.uint32(0x9E3779B1) + low) ^ high
  h ^= h >> np.uint32(16)
  h *= np.uint32(0x85EBCA6B)
  h ^= h >> np.uint32(13)
  h *= np.uint32(0xC2B2AE35)
  h ^= h >> np.uint32(16)
  uniform = (h >> np.uint32(8)).astype(np.float32) * np.float32(
      1.0 / 16777216.0)
  return uniform >= np.float32(rate)
