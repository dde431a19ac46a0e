"""Handcrafted filter bank in parallel with a learned convolution branch.

The bank sees the image itself, so each output keeps its meaning (an edge map stays an edge
map); the learned branch adds what the kernels miss; both are concatenated before the usual
Conv/Pool blocks. ``filter_mode`` ``fixed`` keeps the kernels, ``init`` lets training adapt them.
"""
from __future__ import annotations

import tensorflow as tf

from lensflow.components.trainer.filters import FilterBank
from lensflow.components.trainer.models import common
from lensflow.pipeline.config import ModelConfig

LEARNED_FILTERS = 16


def build(input_shape, num_classes: int, *, weights=None, options=None, cache_dir=None):
    """FilterBank || Conv(16) -> concat -> Conv(64)-Pool -> Conv(64)-Pool -> Dense -> softmax."""
    options = options or ModelConfig()     # the config's defaults, one place
    kernels = tuple(options.filters)
    mode = options.filter_mode
    dropout = options.dropout
    inputs = tf.keras.Input(shape=tuple(input_shape), name="image")
    handcrafted = FilterBank(kernels=kernels, mode=mode, name="filter_bank")(inputs)
    learned = tf.keras.layers.Conv2D(LEARNED_FILTERS, 3, padding="same", activation="relu",
                                     name="learned_conv")(inputs)
    x = tf.keras.layers.Concatenate(name="bank_and_learned")([handcrafted, learned])
    x = common.conv_trunk(x, filters=(64, 64))
    model = common.classifier_head(inputs, x, num_classes, dropout, name="filter_bank")
    common.load_weights(model, weights)
    return model
