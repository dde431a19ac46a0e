"""Exported signatures: serving on image bytes, on tf.Examples, and ``transform_features`` for TFMA."""
from __future__ import annotations

import tensorflow as tf

from components.transform import features

MAX_IMAGE_BYTES = 20 * 1024 * 1024


def _outputs(model, class_names, transformed):
    probabilities = model(transformed[features.IMAGE_XF], training=False)
    class_ids = tf.argmax(probabilities, axis=-1)
    return {features.PROBABILITIES: probabilities,
            features.CLASS_IDS: class_ids,
            features.CLASS_NAMES: tf.gather(class_names, class_ids)}


def make_signatures(model, tf_transform_output, class_names):
    """``serving_default`` (encoded images), ``serving_examples`` and ``transform_features``."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    names = tf.constant(class_names)
    raw_spec = tf_transform_output.raw_feature_spec()
    unlabeled_spec = {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]}
    labeled_spec = {**unlabeled_spec, features.LABEL_KEY: raw_spec[features.LABEL_KEY]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_IMAGES_INPUT)])
    def serve_images(images):
        too_big = tf.reduce_any(tf.strings.length(images) > MAX_IMAGE_BYTES)
        with tf.control_dependencies([tf.debugging.Assert(
                tf.logical_not(too_big), [f"image larger than {MAX_IMAGE_BYTES} bytes"])]):
            images = tf.identity(images)
        transformed = model.tft_layer({features.IMAGE_KEY: tf.reshape(images, [-1, 1])})
        return _outputs(model, names, transformed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_EXAMPLES_INPUT)])
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, unlabeled_spec)
        return _outputs(model, names, model.tft_layer(parsed))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_EXAMPLES_INPUT)])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, labeled_spec))

    return {"serving_default": serve_images.get_concrete_function(),
            "serving_examples": serve_examples.get_concrete_function(),
            "transform_features": transform_features.get_concrete_function()}
