"""Serialisable pixel preprocessing layer, so a backbone's input scaling lives inside the model.

A Lambda around ``keras.applications.*.preprocess_input`` would need Python bytecode to reload;
this layer stores only numbers in its config and reloads from a SavedModel or .keras file.
"""
from typing import Sequence, Union

import tensorflow as tf

Number = Union[float, Sequence[float]]


@tf.keras.utils.register_keras_serializable(package="lensflow")
class ScaleShift(tf.keras.layers.Layer):
    """Compute ``x[..., ::-1 if reverse_channels] * scale + offset`` (scalars or per channel).

    Covers the keras.applications modes: "tf" (x / 127.5 - 1), "caffe" (RGB->BGR, minus the
    BGR ImageNet mean) and fixed mean/std scalings such as EfficientNet-Lite's (x - 127) / 128.
    """

    def __init__(self, scale: Number = 1.0, offset: Number = 0.0, reverse_channels: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.scale = _as_list_or_float(scale)
        self.offset = _as_list_or_float(offset)
        self.reverse_channels = bool(reverse_channels)

    def call(self, inputs):
        x = tf.cast(inputs, self.compute_dtype)
        if self.reverse_channels:
            x = x[..., ::-1]
        scale = tf.constant(self.scale, dtype=x.dtype)
        offset = tf.constant(self.offset, dtype=x.dtype)
        return x * scale + offset

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset,
                      reverse_channels=self.reverse_channels)
        return config


def _as_list_or_float(value: Number):
    if isinstance(value, (int, float)):
        return float(value)
    values = [float(v) for v in value]
    if not values:
        raise ValueError("per-channel scale/offset must not be empty")
    return values
