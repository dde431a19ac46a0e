"""Transform's module: the deterministic image preprocessing shared by training, eval and serving.

Decode (``decode.py``, the same pixels as ingestion) -> colour mode -> resize (policy) -> scale to [0, 1] -> per-channel normalisation with
full-pass statistics; labels map to ids through a vocabulary that keeps the class names.
Augmentation is deliberately absent: it would be materialised once (losing its point) and
would leak into the serving graph. It lives in ``augment.py`` and runs on training batches.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from lensflow.components.transform import decode, features
from lensflow.pipeline.config import DataConfig, ImageConfig, from_custom_config

_EPS = 1e-6


def channels_for(image_cfg: ImageConfig) -> int:
    """Model input channels for a colour mode."""
    return 1 if image_cfg.color_mode == "grayscale" else 3


def decode_one(encoded: tf.Tensor, channels: int, max_pixels: int) -> tf.Tensor:
    """Decode one image file to uint8 [H, W, channels] as ingestion's Pillow code sees it (EXIF
    orientation, alpha over white, 16-bit, CMYK): the one definition in ``decode.py``."""
    return decode.decode(encoded, channels, max_pixels)


def resize(image: tf.Tensor, size: int, policy: str) -> tf.Tensor:
    """Resize one float image to [size, size] by ``stretch``, ``pad`` or ``crop``."""
    if policy == "stretch":
        return tf.image.resize(image, [size, size], antialias=True)
    if policy == "pad":
        return tf.image.resize_with_pad(image, size, size, antialias=True)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    scaled = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    image = tf.image.resize(image, scaled, antialias=True)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def decode_and_resize(encoded: tf.Tensor, image_cfg: ImageConfig,
                      max_pixels: int = DataConfig.max_image_pixels) -> tf.Tensor:
    """Batch of encoded images [B] -> float32 [B, size, size, C] scaled to [0, 1]; a header
    declaring more than ``max_pixels`` is refused before decoding."""
    channels = channels_for(image_cfg)
    formats, png_kinds, png_exif = decode.inspect(encoded, max_pixels)  # header checks, per batch

    def one(args):
        image, is_grey = decode.decode_inspected(*args, max_pixels)
        pixels = tf.cast(decode.to_channels(image, is_grey, channels), tf.float32) / 255.0
        return resize(pixels, image_cfg.size, image_cfg.resize_policy)

    spec = tf.TensorSpec([image_cfg.size, image_cfg.size, channels], tf.float32)
    return tf.map_fn(one, (encoded, formats, png_kinds, png_exif), fn_output_signature=spec)


def normalise(images: tf.Tensor) -> tf.Tensor:
    """Per-channel (x - mean) / std with full-pass statistics over the training data."""
    channels = images.shape[-1]
    flat = tf.reshape(images, [-1, images.shape[1] * images.shape[2], channels])
    mean = tf.reduce_mean(tft.mean(flat, reduce_instance_dims=False), axis=0)
    mean_sq = tf.reduce_mean(tft.mean(tf.square(flat), reduce_instance_dims=False), axis=0)
    std = tf.sqrt(tf.maximum(mean_sq - tf.square(mean), 0.0) + _EPS)
    return (images - mean) / std


def _dense_scalar(value: tf.Tensor) -> tf.Tensor:
    """[B, 1] dense or sparse string feature -> [B]."""
    if isinstance(value, tf.sparse.SparseTensor):
        value = tf.sparse.to_dense(value, default_value="")
    return tf.reshape(value, [-1])


def preprocessing_fn(inputs, custom_config=None):
    """tf.Transform entry point: raw features -> ``image_xf`` and ``label_xf``."""
    cfg = from_custom_config(custom_config, "Transform")
    images = decode_and_resize(_dense_scalar(inputs[features.IMAGE_KEY]), cfg.image,
                               cfg.data.max_image_pixels)
    if cfg.effective_normalize:
        images = normalise(images)
    outputs = {features.IMAGE_XF: images}
    if features.LABEL_KEY in inputs:
        outputs[features.LABEL_XF] = tft.compute_and_apply_vocabulary(
            _dense_scalar(inputs[features.LABEL_KEY]), vocab_filename=features.LABEL_VOCAB_NAME)
    return outputs
