"""Pieces every model family shares."""
from __future__ import annotations

import tensorflow as tf

from lensflow.pipeline.config import ConfigError


def conv_trunk(x, filters=(32, 64), dense: int = 128):
    """Conv(3x3, ReLU)-MaxPool per entry of ``filters``, then Flatten and a ReLU Dense."""
    for index, width in enumerate(filters, start=1):
        x = tf.keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                   name=f"conv{index}")(x)
        x = tf.keras.layers.MaxPooling2D(name=f"pool{index}")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    return tf.keras.layers.Dense(dense, activation="relu", name="dense")(x)


def classifier_head(inputs, features, num_classes: int, dropout: float, name: str):
    """Dropout + softmax Dense on ``features``; the model outputs probabilities."""
    x = tf.keras.layers.Dropout(dropout, name="head_dropout")(features) if dropout else features
    return tf.keras.Model(inputs, probabilities(x, num_classes), name=name)


def probabilities(x, num_classes: int):
    """The softmax output layer, always float32 (under mixed precision too: a bfloat16 softmax
    loses the small probabilities the loss and TFMA's calibration need)."""
    return tf.keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="probabilities")(x)


def load_weights(model, weights) -> None:
    """The ``weights=`` contract for families without pre-trained parts: None or a path."""
    if weights in (None, "none", "None"):
        return
    if weights == "imagenet":
        raise ConfigError(f"model {model.name!r} has no ImageNet weights; use weights=None or a path")
    model.load_weights(weights)
