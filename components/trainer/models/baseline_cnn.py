"""The article's baseline CNN: two Conv/MaxPool blocks and a Dense head (the control)."""
from __future__ import annotations

import tensorflow as tf

from components.trainer.models import common


def build(input_shape, num_classes: int, *, weights=None, options=None, cache_dir=None):
    """Conv(32)-Pool-Conv(64)-Pool-Dense(128)-Dropout-Softmax on transformed images."""
    dropout = getattr(options, "dropout", 0.25)
    inputs = tf.keras.Input(shape=tuple(input_shape), name="image")
    x = tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = tf.keras.layers.MaxPooling2D(name="pool1")(x)
    x = tf.keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = tf.keras.layers.MaxPooling2D(name="pool2")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = tf.keras.layers.Dense(128, activation="relu", name="dense")(x)
    model = common.classifier_head(inputs, x, num_classes, dropout, name="baseline_cnn")
    common.load_weights(model, weights)
    return model
