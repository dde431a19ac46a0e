"""Pixel scaling and per-channel normalisation, applied outside the trained network.

Transform stores images as uint8 (``components/transform/preprocessing.py``). The network is
trained on ``PixelScaling`` of those pixels: ``x / 255``, then ``(x - mean) / std`` per channel
when ``image.normalize`` is in effect, with mean and std over the training split's stored pixels
(``PixelStats``, one streaming pass in the Trainer). It is the normalisation Transform used to
apply, so every family sees the values it saw before; the only difference is the uint8 rounding
of the resized pixels (at most 0.5/255).

The exported Keras model is the trained network itself, nothing wrapped around it. The serving
signatures (``signatures.py``) apply the same ``PixelScaling`` with its statistics as constants
of their graph, so serving is still one graph from image bytes to classes; the statistics are
also written beside the class names (``PIXEL_SCALING_FILE``), so whatever calls the Keras model
directly (the report's interpretation, benchmarks, tests) applies the same scaling with
``PixelScaling.read(serving_dir)``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

PIXEL_SCALING_FILE = "assets.extra/pixel_scaling.json"
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


def scale(images, mean: Optional[Sequence[float]] = None,
          std: Optional[Sequence[float]] = None) -> tf.Tensor:
    """Pixels 0..255 (any numeric dtype) -> float32 in [0, 1], normalised if ``mean`` is given."""
    x = tf.cast(images, tf.float32) / 255.0
    if mean is None:
        return x
    return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


@dataclass(frozen=True)
class PixelScaling:
    """The scaling a network was trained with: stored pixels -> the network's input.
    ``mean``/``std`` are None when the run does not normalise ([0, 1] only)."""

    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None

    def __post_init__(self):
        if (self.mean is None) != (self.std is None):
            raise ValueError("PixelScaling needs both mean and std, or neither")

    @classmethod
    def of(cls, stats: PixelStats, normalize: bool) -> "PixelScaling":
        """A run's scaling: normalised with ``stats`` when ``normalize``, else [0, 1] only."""
        if not normalize:
            return cls()
        return cls(tuple(float(m) for m in stats.mean), tuple(float(s) for s in stats.std))

    def __call__(self, pixels) -> tf.Tensor:
        """Stored pixels (uint8 or float 0..255) -> float32 network input."""
        return scale(pixels, self.mean, self.std)

    def write(self, serving_dir: str) -> None:
        """``PIXEL_SCALING_FILE`` in an exported model's folder."""
        path = os.path.join(serving_dir, PIXEL_SCALING_FILE)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "w") as fh:
            fh.write(json.dumps({"mean": None if self.mean is None else list(self.mean),
                                 "std": None if self.std is None else list(self.std)}))

    @classmethod
    def read(cls, serving_dir: str) -> "PixelScaling":
        """The scaling an exported model's network was trained with."""
        path = os.path.join(serving_dir, PIXEL_SCALING_FILE)
        if not tf.io.gfile.exists(path):
            raise ValueError(f"{serving_dir} has no {PIXEL_SCALING_FILE}: not a lensflow "
                             "serving model of this version")
        with tf.io.gfile.GFile(path) as fh:
            values = json.loads(fh.read())
        mean, std = values.get("mean"), values.get("std")
        return cls(None if mean is None else tuple(float(m) for m in mean),
                   None if std is None else tuple(float(s) for s in std))
