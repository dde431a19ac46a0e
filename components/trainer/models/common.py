"""Pieces every model family shares."""
from __future__ import annotations

import tensorflow as tf

from pipeline.config import ConfigError


def classifier_head(inputs, features, num_classes: int, dropout: float, name: str):
    """Dropout + softmax Dense on ``features``; the model outputs probabilities."""
    x = tf.keras.layers.Dropout(dropout, name="head_dropout")(features) if dropout else features
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def load_weights(model, weights) -> None:
    """The ``weights=`` contract for families without pre-trained parts: None or a path."""
    if weights in (None, "none", "None"):
        return
    if weights == "imagenet":
        raise ConfigError(f"model {model.name!r} has no ImageNet weights; use weights=None or a path")
    model.load_weights(weights)
