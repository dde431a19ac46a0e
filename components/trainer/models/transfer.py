"""Transfer learning: a pre-trained backbone as feature extractor, then fine-tuned.

Phase 1 trains the head with the backbone frozen. Phase 2 (``fine_tune_epochs > 0``) unfreezes the
top layers of the backbone, keeps BatchNormalization in inference mode (the backbone is always
called with ``training=False``) and continues at a lower learning rate.
"""
from __future__ import annotations

import tensorflow as tf

from lensflow.components.trainer.backbones import build_backbone
from lensflow.components.trainer.models import common, tta
from lensflow.pipeline.config import ModelConfig

BACKBONE_LAYER = "backbone"


def build(input_shape, num_classes: int, *, weights="imagenet", options=None, cache_dir=None):
    """Images in [0, 1] (grey or colour, any size) -> backbone input -> frozen backbone -> head."""
    options = options or ModelConfig()     # the config's defaults, one place
    size = int(options.backbone_input_size)
    name = options.backbone
    dropout = options.dropout
    inputs = tf.keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    if input_shape[-1] == 1:
        x = tf.keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    if tuple(input_shape[:2]) != (size, size):
        x = tf.keras.layers.Resizing(size, size, name="to_backbone_size")(x)
    x = tf.keras.layers.Rescaling(255.0, name="to_pixel_range")(x)
    backbone = build_backbone(name, input_shape=(size, size, 3), weights=weights,
                              cache_dir=cache_dir, include_top=False)
    backbone._name = BACKBONE_LAYER
    backbone.trainable = False
    x = backbone(x, training=False)
    if dropout:
        x = tf.keras.layers.Dropout(dropout, name="head_dropout")(x)
    return tf.keras.Model(inputs, common.probabilities(x, num_classes), name=f"transfer_{name}")


def backbone_of(model) -> tf.keras.Model:
    """The nested backbone model (inside a flip-TTA wrapper too)."""
    return tta.unwrap(model).get_layer(BACKBONE_LAYER)


def unfreeze_top(model, layers: int = 0, fraction: float = 0.0) -> int:
    """Make the top ``layers`` (or ``fraction``) of weighted backbone layers trainable.

    BatchNormalization layers stay frozen. Returns how many layers were unfrozen.
    """
    backbone = backbone_of(model)
    weighted = [layer for layer in backbone.layers if layer.weights]
    count = layers or int(round(fraction * len(weighted)))
    count = max(0, min(count, len(weighted)))
    backbone.trainable = True
    chosen = set(id(layer) for layer in weighted[len(weighted) - count:]) if count else set()
    for layer in backbone.layers:
        is_bn = isinstance(layer, tf.keras.layers.BatchNormalization)
        layer.trainable = id(layer) in chosen and not is_bn
    return count
