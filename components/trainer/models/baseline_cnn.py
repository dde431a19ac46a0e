"""The article's baseline CNN: two Conv/MaxPool blocks and a Dense head (the control)."""
from __future__ import annotations

import tensorflow as tf

from lensflow.components.trainer.models import common
from lensflow.pipeline.config import ModelConfig


def build(input_shape, num_classes: int, *, weights=None, options=None, cache_dir=None):
    """Conv(32)-Pool-Conv(64)-Pool-Dense(128)-Dropout-Softmax on transformed images."""
    options = options or ModelConfig()     # the config's defaults, one place
    dropout = options.dropout
    inputs = tf.keras.Input(shape=tuple(input_shape), name="image")
    x = common.conv_trunk(inputs, filters=(32, 64))
    model = common.classifier_head(inputs, x, num_classes, dropout, name="baseline_cnn")
    common.load_weights(model, weights)
    return model
