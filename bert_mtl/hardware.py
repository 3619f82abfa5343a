"""What this machine's matrix units compute fast, for --mixed_precision=auto.

bfloat16 pays where the hardware multiplies it natively: x86 CPUs with
AVX512_BF16 or AMX-BF16 (Cooper Lake, Sapphire Rapids and later; oneDNN
uses them under TensorFlow's bfloat16 rewrite), NVIDIA GPUs of compute
capability 8.0 or more (Ampere and later).  Elsewhere float32 is faster.
"""

import os

# CPU flags (/proc/cpuinfo) of native bfloat16 dot products.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
  """The first processor's flags, or an empty set where not readable."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.partition(":")[2].split())
  except OSError:
    pass
  return set()


def bfloat16_hardware(num_gpus=0, cpuinfo="/proc/cpuinfo"):
  """(True or False, why): whether the devices a run trains on multiply
  bfloat16 natively (its GPUs when num_gpus > 0, else the CPU)."""
  if num_gpus > 0:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    gpus = tf.config.list_physical_devices("GPU")[:num_gpus]
    if not gpus:
      return False, "no GPU is visible"
    for gpu in gpus:
      capability = tf.config.experimental.get_device_details(gpu).get(
          "compute_capability", (0, 0))
      if tuple(capability) < (8, 0):
        return False, "%s has compute capability %d.%d (< 8.0)" % (
            gpu.name, capability[0], capability[1])
    return True, "%d GPU(s) of compute capability >= 8.0" % len(gpus)
  found = sorted(cpu_flags(cpuinfo) & set(CPU_BF16_FLAGS))
  if found:
    return True, "this CPU has %s" % ", ".join(found)
  return False, "this CPU has none of %s" % ", ".join(CPU_BF16_FLAGS)


def resolve_precision(asked, num_gpus=0, cpuinfo="/proc/cpuinfo"):
  """(the mixed precision a run uses, why): `asked` itself unless "auto",
  which is bfloat16 on bfloat16 hardware and None (float32) elsewhere;
  $BERT_MTL_PRECISION_AUTO=float32|bfloat16 overrides the detection (for
  tests and for machines that misreport)."""
  if asked != "auto":
    return asked, "asked"
  forced = os.environ.get("BERT_MTL_PRECISION_AUTO")
  if forced in ("float32", "bfloat16"):
    return (None if forced == "float32" else forced,
            "$BERT_MTL_PRECISION_AUTO=%s" % forced)
  native, why = bfloat16_hardware(num_gpus, cpuinfo)
  return ("bfloat16" if native else None), why
