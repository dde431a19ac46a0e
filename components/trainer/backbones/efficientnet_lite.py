"""EfficientNet-Lite0 in tf.keras, with layer names that map 1:1 to the PyTorch checkpoint keys.

Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 instead of swish and a fixed stem
(32 channels) and head (1280). The checkpoint is a port of Google's TensorFlow model
(num_batches_tracked is 0 everywhere: it was never trained in PyTorch), and its
state-dict metadata lists a ``static_padding`` module on every convolution (efficientnet_pytorch's
Conv2dStaticSamePadding, i.e. TensorFlow "same" padding with the extra pixel bottom/right), so
Keras ``padding="same"`` reproduces it exactly; symmetric ``k // 2`` padding would shift every
stride-2 feature map by one pixel. Inputs are scaled (x - 127) / 128 as in Google's Lite models;
the stem batch-norm running means confirm it (they imply non-zero-mean inputs of about -0.05,
-0.07, -0.12 per channel, as (x - 127) / 128 gives on ImageNet, not the ~0 of mean/std scaling).
"""
from typing import NamedTuple, Optional, Tuple

import tensorflow as tf

from lensflow.components.trainer.backbones.preprocessing import ScaleShift

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000
IMAGENET_INPUT_SHAPE = (224, 224, 3)
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


class Stage(NamedTuple):
    """A stage of MBConv blocks: expansion ratio, kernel, first stride, out filters, repeats."""

    expand: int
    kernel: int
    stride: int
    filters: int
    repeats: int


STAGES = (
    Stage(1, 3, 1, 16, 1),
    Stage(6, 3, 2, 24, 2),
    Stage(6, 5, 2, 40, 2),
    Stage(6, 3, 2, 80, 3),
    Stage(6, 5, 1, 112, 3),
    Stage(6, 5, 2, 192, 4),
    Stage(6, 3, 1, 320, 1),
)


def _bn(x, name: str):
    return tf.keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _relu6(x, name: str):
    return tf.keras.layers.ReLU(max_value=6.0, name=name)(x)


def _mbconv(x, in_filters: int, stage: Stage, stride: int, index: int):
    prefix = f"blocks_{index}"
    inputs = x
    if stage.expand != 1:
        x = tf.keras.layers.Conv2D(in_filters * stage.expand, 1, use_bias=False,
                                   name=f"{prefix}_expand_conv")(x)
        x = _relu6(_bn(x, f"{prefix}_bn0"), f"{prefix}_expand_relu")
    x = tf.keras.layers.DepthwiseConv2D(stage.kernel, stride, padding="same", use_bias=False,
                                        name=f"{prefix}_depthwise_conv")(x)
    x = _relu6(_bn(x, f"{prefix}_bn1"), f"{prefix}_depthwise_relu")
    x = tf.keras.layers.Conv2D(stage.filters, 1, use_bias=False, name=f"{prefix}_project_conv")(x)
    x = _bn(x, f"{prefix}_bn2")
    if stride == 1 and in_filters == stage.filters:
        x = tf.keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def block_specs():
    """Yield (block index, input filters, stage, stride) for every MBConv block, in order."""
    index, in_filters = 0, STEM_FILTERS
    for stage in STAGES:
        for repeat in range(stage.repeats):
            yield index, in_filters, stage, stage.stride if repeat == 0 else 1
            index, in_filters = index + 1, stage.filters


def efficientnet_lite0(input_shape: Tuple[int, int, int] = IMAGENET_INPUT_SHAPE,
                       include_top: bool = False,
                       name: Optional[str] = "efficientnet_lite0") -> tf.keras.Model:
    """Build EfficientNet-Lite0 taking [0, 255] pixels; (x - 127) / 128 happens inside the model.

    include_top=False ends in global average pooling (1280 features); True adds the 1000-way
    ImageNet classifier (softmax, as keras.applications) as layer ``fc``.
    """
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = ScaleShift(scale=1.0 / PIXEL_STD, offset=-PIXEL_MEAN / PIXEL_STD, name="preprocess")(inputs)
    x = tf.keras.layers.Conv2D(STEM_FILTERS, 3, 2, padding="same", use_bias=False,
                               name="conv_stem")(x)
    x = _relu6(_bn(x, "bn0"), "stem_relu")
    for index, in_filters, stage, stride in block_specs():
        x = _mbconv(x, in_filters, stage, stride, index)
    x = tf.keras.layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="conv_head")(x)
    x = _relu6(_bn(x, "bn1"), "head_relu")
    x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = tf.keras.layers.Dense(NUM_CLASSES, activation="softmax", name="fc")(x)
    return tf.keras.Model(inputs, x, name=name)
