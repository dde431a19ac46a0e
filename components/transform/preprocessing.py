"""Transform's module: the deterministic image preprocessing shared by training, eval and serving.

Decode (``decode.py``, the same pixels as ingestion) -> colour mode -> resize (policy) -> rounded
to uint8 and stored compactly (``encode_pixels``: one serialised uint8 tensor per image, ~1.0x the
pixels where float32 was 4x); labels map to ids through a vocabulary that keeps the class names.
Scaling to [0, 1] and the per-channel normalisation come after (``components/trainer/scaling.py``:
the training input applies them, and so do the serving signatures, with the statistics as
constants), so the materialised examples stay small and the serving SavedModel is still one
graph: this transform, the scaling, then the trained network.
Augmentation is deliberately absent: it would be materialised once (losing its point) and
would leak into the serving graph. It lives in ``augment.py`` and runs on training batches.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from lensflow.components.transform import decode, features
from lensflow.pipeline.config import DataConfig, ImageConfig, from_custom_config

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


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """Float pixels in [0, 1] -> uint8 [0, 255], rounded to nearest (what is stored)."""
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)


def encode_pixels(images: tf.Tensor) -> tf.Tensor:
    """uint8 [B, H, W, C] -> [B] strings, each one serialised tensor (the pixels plus a header of
    a few bytes): the stored form of ``image_xf``."""
    return tf.map_fn(tf.io.serialize_tensor, images,
                     fn_output_signature=tf.TensorSpec([], tf.string))


def decode_pixel(serialized: tf.Tensor, shape) -> tf.Tensor:
    """One stored ``image_xf`` string -> uint8 ``shape`` (H, W, C)."""
    return tf.ensure_shape(tf.io.parse_tensor(serialized, tf.uint8), shape)


def decode_pixels(serialized: tf.Tensor, shape) -> tf.Tensor:
    """[B] stored ``image_xf`` strings -> uint8 [B, H, W, C] (the model's input)."""
    return tf.map_fn(lambda s: decode_pixel(s, shape), serialized,
                     fn_output_signature=tf.TensorSpec(shape, tf.uint8))


def image_shape(cfg) -> tuple:
    """(H, W, C) of the stored image for a config."""
    return (cfg.image.size, cfg.image.size, channels_for(cfg.image))


def _dense_scalar(value: tf.Tensor) -> tf.Tensor:
    """[B, 1] dense or sparse string feature -> [B]."""
    if isinstance(value, tf.sparse.SparseTensor):
        value = tf.sparse.to_dense(value, default_value="")
    return tf.reshape(value, [-1])


def preprocessing_fn(inputs, custom_config=None):
    """tf.Transform entry point: raw features -> ``image_xf`` (stored uint8) and ``label_xf``."""
    cfg = from_custom_config(custom_config, "Transform")
    images = decode_and_resize(_dense_scalar(inputs[features.IMAGE_KEY]), cfg.image,
                               cfg.data.max_image_pixels)
    outputs = {features.IMAGE_XF: encode_pixels(to_uint8(images))}
    if features.LABEL_KEY in inputs:
        outputs[features.LABEL_XF] = tft.compute_and_apply_vocabulary(
            _dense_scalar(inputs[features.LABEL_KEY]), vocab_filename=features.LABEL_VOCAB_NAME)
    return outputs
