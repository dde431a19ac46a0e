"""A small ResNet for low-resolution images, built to spend compute where it is cheap.

A 3x3 stem at full resolution, then stages that each start with a 2x2 max-pool and a widening
3x3 conv, followed by basic residual blocks (two 3x3 convs + BN), so the widest layers run on the
smallest maps (at 28x28: 28 -> 14 -> 7), where a CPU computes them most efficiently. Global
average pooling, dropout, softmax.
``flip_tta`` averages the probabilities of the image and its horizontal mirror inside the model,
so evaluation and serving see the same predictions.
"""
from __future__ import annotations

import tensorflow as tf

from lensflow.components.trainer.models import common
from lensflow.pipeline.config import ModelConfig

BN_MOMENTUM = 0.9


def _conv_bn(x, width: int, name: str, relu: bool = True):
    """3x3 conv (no bias: BN follows), BatchNormalization, optional ReLU.

    BN's moving statistics use momentum 0.9 (Keras' default 0.99 needs hundreds of steps to
    forget their initial values, so short or small-data runs evaluated with wrong statistics)."""
    x = tf.keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                               kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return tf.keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _block(x, width: int, name: str):
    """Basic residual block at constant shape: two 3x3 conv + BN, identity shortcut."""
    y = _conv_bn(x, width, f"{name}_a")
    y = _conv_bn(y, width, f"{name}_b", relu=False)
    x = tf.keras.layers.Add(name=f"{name}_add")([x, y])
    return tf.keras.layers.ReLU(name=f"{name}_out")(x)


def trunk(inputs, widths, depths):
    """Stem, then per later stage: 2x2 max-pool and a widening 3x3 conv; each stage adds
    ``depths[i]`` residual blocks. Returns globally pooled features."""
    x = _conv_bn(inputs, widths[0], "stem")
    for stage, (width, depth) in enumerate(zip(widths, depths)):
        if stage > 0:
            x = tf.keras.layers.MaxPooling2D(name=f"s{stage}_pool")(x)
            x = _conv_bn(x, width, f"s{stage}_widen")
        for index in range(depth):
            x = _block(x, width, f"s{stage}b{index}")
    return tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)


def build(input_shape, num_classes: int, *, weights=None, options=None, cache_dir=None):
    """Stem -> residual stages (``model.widths``, ``model.depths``) -> GAP -> softmax."""
    options = options or ModelConfig()     # the config's defaults, one place
    widths = tuple(options.widths)
    depths = tuple(options.depths)
    dropout = options.dropout
    inputs = tf.keras.Input(shape=tuple(input_shape), name="image")
    features = trunk(inputs, widths, depths)
    model = common.classifier_head(inputs, features, num_classes, dropout, name="compact_resnet")
    common.load_weights(model, weights)
    return model
