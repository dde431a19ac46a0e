"""Numeric precision of training: float32, or bfloat16 / float16 compute with float32 weights.

``train.precision``: ``float32``; ``mixed_bfloat16`` (Keras mixed precision: layers compute in
bfloat16, variables, loss and the model's output stay float32); ``mixed_float16`` (the same in
float16, for GPUs; Keras wraps the optimiser in a ``LossScaleOptimizer`` so small gradients do not
underflow); ``auto`` picks mixed_float16 where TensorFlow sees a GPU (Tensor Cores), else
mixed_bfloat16 only where the CPU executes bfloat16 natively (AMX or AVX512-BF16 flags: about
twice the training throughput of float32 on such a Xeon) and float32 elsewhere, where emulated
bfloat16 is slower, and for families measured slower in bfloat16 even there
(``Family.auto_float32`` in the registry).
The policy is applied only while the model is built, so it never leaks into other components
running in the same process.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import tensorflow as tf

from lensflow.pipeline.registry import FAMILIES

NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
CPUINFO = "/proc/cpuinfo"


def cpu_flags(cpuinfo_text: str) -> frozenset:
    """The feature flags of the first CPU in a ``/proc/cpuinfo`` text."""
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bfloat16(cpuinfo_path: str = CPUINFO) -> bool:
    """True when this CPU executes bfloat16 matrix maths natively."""
    try:
        with open(cpuinfo_path, encoding="utf-8") as fh:
            return bool(cpu_flags(fh.read()) & NATIVE_BF16_FLAGS)
    except OSError:
        return False


def gpu_present() -> bool:
    """Whether TensorFlow sees a GPU (listing devices does not start TensorFlow's runtime)."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve(precision: str, family: str = "", cpuinfo_path: str = CPUINFO,
            gpu: Optional[bool] = None) -> str:
    """The Keras dtype policy name for a ``train.precision`` value and model family, on this
    machine (``gpu``: whether it has a GPU; looked up when None)."""
    if precision == "auto" and (gpu_present() if gpu is None else gpu):
        return "mixed_float16"
    if precision == "auto":
        fast = native_bfloat16(cpuinfo_path) and not (family in FAMILIES
                                                      and FAMILIES[family].auto_float32)
        return "mixed_bfloat16" if fast else "float32"
    return precision


@contextlib.contextmanager
def policy(precision: str, family: str = ""):
    """Build layers under ``precision``'s policy; restore the previous global policy after."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(resolve(precision, family))
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
