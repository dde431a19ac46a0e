"""Horizontal-flip test-time augmentation baked into the model.

The wrapper averages the probabilities of an image and its mirror at inference; in training it
is the plain model. Being part of the exported model, serving and TFMA see the same predictions.
Only valid where mirrored images keep their class (``augment.allow_orientation_changes``).
"""
from __future__ import annotations

import tensorflow as tf

LAYER_NAME = "flip_tta"


def mirror(images):
    """Images ``[N, H, W, C]`` (or maps ``[N, H, W]``) flipped left to right: the TTA's second view."""
    return tf.reverse(images, axis=[2])


@tf.keras.utils.register_keras_serializable(package="lensflow")
class FlipAverage(tf.keras.layers.Layer):
    """``(inner(x) + inner(mirror(x))) / 2`` outside training, ``inner(x)`` in training."""

    def __init__(self, inner: tf.keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, images, training=None):
        if training:
            return self.inner(images, training=True)
        mirrored = mirror(images)
        both = self.inner(tf.concat([images, mirrored], axis=0), training=False)
        plain, flipped = tf.split(both, 2, axis=0)
        return (plain + flipped) / 2.0

    def get_config(self):
        return {**super().get_config(), "inner": tf.keras.layers.serialize(self.inner)}

    @classmethod
    def from_config(cls, config):
        inner = tf.keras.layers.deserialize(config.pop("inner"))
        return cls(inner, **config)


def with_flip_tta(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` wrapped so inference averages over the image and its horizontal mirror."""
    inputs = tf.keras.Input(shape=model.input_shape[1:], name="image")
    outputs = FlipAverage(model, name=LAYER_NAME)(inputs)
    return tf.keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")


def unwrap(model: tf.keras.Model) -> tf.keras.Model:
    """The model inside a flip-TTA wrapper, or ``model`` itself."""
    names = {layer.name for layer in model.layers}
    return model.get_layer(LAYER_NAME).inner if LAYER_NAME in names else model
