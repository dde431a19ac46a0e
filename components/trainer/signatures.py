"""Exported signatures: serving on image bytes, on tf.Examples, and ``transform_features`` for TFMA."""
from __future__ import annotations

import tensorflow as tf

from lensflow.components.transform import decode, features, preprocessing


def _outputs(model, pixel_scaling, class_names, transformed):
    """Transform's stored pixels -> the training scaling (its statistics are constants of this
    graph) -> the trained network -> the outputs."""
    pixels = preprocessing.decode_pixels(transformed[features.IMAGE_XF], model.input_shape[1:])
    probabilities = model(pixel_scaling(pixels), training=False)
    class_ids = tf.argmax(probabilities, axis=-1)
    return {features.PROBABILITIES: probabilities,
            features.CLASS_IDS: class_ids,
            features.CLASS_NAMES: tf.gather(class_names, class_ids)}


def make_signatures(model, tf_transform_output, class_names, max_file_bytes: int,
                    pixel_scaling):
    """``serving_default`` (encoded images), ``serving_examples`` and ``transform_features``.

    ``model`` is the trained network; ``pixel_scaling`` (``scaling.PixelScaling``) the scaling
    it was trained with, applied between Transform's graph and the network.

    ``serving_default`` refuses requests over ``max_file_bytes`` (``data.max_file_bytes``, the
    limit ingestion applies); the Transform layer's decode checks format and declared pixels."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    names = tf.constant(class_names)
    raw_spec = tf_transform_output.raw_feature_spec()
    unlabeled_spec = {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]}
    labeled_spec = {**unlabeled_spec, features.LABEL_KEY: raw_spec[features.LABEL_KEY]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_IMAGES_INPUT)])
    def serve_images(images):
        images = decode.check_request_bytes(images, max_file_bytes)
        transformed = model.tft_layer({features.IMAGE_KEY: tf.reshape(images, [-1, 1])})
        return _outputs(model, pixel_scaling, names, transformed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_EXAMPLES_INPUT)])
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, unlabeled_spec)
        return _outputs(model, pixel_scaling, names, model.tft_layer(parsed))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_EXAMPLES_INPUT)])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, labeled_spec))

    return {"serving_default": serve_images.get_concrete_function(),
            "serving_examples": serve_examples.get_concrete_function(),
            "transform_features": transform_features.get_concrete_function()}
