"""Pixel scaling and per-channel normalisation as the model's first layer.

Transform stores images as uint8 (``components/transform/preprocessing.py``); the exported model
takes those pixels (as float, values 0..255) and applies ``PixelScaling`` before the family's
network: ``x / 255``, then ``(x - mean) / std`` per channel when ``image.normalize`` is in effect,
with mean and std over the training split's stored pixels (``PixelStats``, one streaming pass in
the Trainer). It is the normalisation Transform used to apply, so every family (the registry's
``normalize``, the backbones' own preprocessing after it) sees the values it saw before; the
only difference is the uint8 rounding of the resized pixels (at most 0.5/255). The training
pipeline applies the same function to its batches before augmentation, and the network is
trained on its output; the exported model is ``with_scaling(network, ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

NAME = "pixel_scaling"
_EPS = 1e-6


@dataclass(frozen=True)
class PixelStats:
    """Examples in a split, the per-channel mean / std of its pixels scaled to [0, 1], and the
    stored image shape (H, W, C)."""

    count: int
    mean: Sequence[float]
    std: Sequence[float]
    shape: Optional[Tuple[int, int, int]] = None

    @classmethod
    def from_sums(cls, count: int, pixels: int, total, squares,
                  shape: Optional[Tuple[int, int, int]] = None) -> "PixelStats":
        """From the sums of x and x^2 (x in [0, 1]) over ``pixels`` pixels per channel; the std
        is Transform's former formula, sqrt(max(E[x^2] - E[x]^2, 0) + 1e-6)."""
        total, squares = np.asarray(total, np.float64), np.asarray(squares, np.float64)
        n = max(1, pixels)
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0) + _EPS)
        return cls(int(count), [float(m) for m in mean], [float(s) for s in std], shape)


def scale(images: tf.Tensor, mean: Optional[Sequence[float]] = None,
          std: Optional[Sequence[float]] = None) -> tf.Tensor:
    """Pixels 0..255 (any numeric dtype) -> float32 in [0, 1], normalised if ``mean`` is given."""
    x = tf.cast(images, tf.float32) / 255.0
    if mean is None:
        return x
    return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


@tf.keras.utils.register_keras_serializable(package="lensflow")
class PixelScaling(tf.keras.layers.Layer):
    """``scale`` as a layer (float32 whatever the precision policy; no weights)."""

    def __init__(self, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if (mean is None) != (std is None):
            raise ValueError("PixelScaling needs both mean and std, or neither")
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]

    def call(self, images):
        return scale(images, self.mean, self.std)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def layer_for(stats: PixelStats, normalize: bool) -> PixelScaling:
    """The scaling of a run: normalised with ``stats`` when ``normalize``, else [0, 1] only."""
    if normalize:
        return PixelScaling(stats.mean, stats.std, name=NAME)
    return PixelScaling(name=NAME)


def with_scaling(network: tf.keras.Model, layer: PixelScaling) -> tf.keras.Model:
    """The exported model: stored pixels (float, 0..255) -> ``layer`` -> ``network``."""
    inputs = tf.keras.Input(shape=network.input_shape[1:], name="pixels", dtype=tf.float32)
    return tf.keras.Model(inputs, network(layer(inputs)), name=network.name)


def network(model: tf.keras.Model) -> tf.keras.Model:
    """The trained network inside an exported model (``model`` itself if it has no scaling)."""
    names = [layer.name for layer in model.layers]
    if NAME in names and isinstance(model.layers[-1], tf.keras.Model):
        return model.layers[-1]
    return model


def network_input(model: tf.keras.Model, pixels) -> tf.Tensor:
    """Stored pixels -> what ``network(model)`` takes (the model's own scaling applied)."""
    names = [layer.name for layer in model.layers]
    if NAME in names:
        return model.get_layer(NAME)(tf.cast(pixels, tf.float32))
    return tf.cast(pixels, tf.float32)
