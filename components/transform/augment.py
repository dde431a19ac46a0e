"""Training-only augmentation policy.

The policy belongs to the Transform stage (it describes how transformed images may vary) but it
runs on the fly on training batches in the Trainer's input pipeline: materialised once it would
lose its point, and inside ``preprocessing_fn`` it would leak into evaluation and serving.
Built from Keras preprocessing layers and stateless ``tf.image`` ops, seeded.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import tensorflow as tf

from lensflow.pipeline.config import AugmentConfig, ConfigError
from lensflow.pipeline.registry import AUGMENT_OPS, AUGMENT_PRESETS

PRESETS = AUGMENT_PRESETS


def resolve(cfg: AugmentConfig) -> Dict[str, object]:
    """The effective policy: preset values, overridden by explicit settings, minus forbidden ops."""
    if cfg.preset not in PRESETS:
        raise ConfigError(f"augment.preset={cfg.preset!r}; choose one of {', '.join(PRESETS)}")
    policy = dict(PRESETS[cfg.preset])
    for name in AUGMENT_OPS:
        value = getattr(cfg, name)
        if value is not None:
            policy[name] = value
    if not cfg.allow_orientation_changes:
        orientation = [name for name, op in AUGMENT_OPS.items() if op.orientation]
        explicit = [n for n in orientation if getattr(cfg, n)]
        if explicit:
            raise ConfigError(f"augment.{explicit[0]} is set but augment.allow_orientation_changes "
                              "is false: this dataset forbids orientation changes")
        for name in orientation:
            policy.pop(name, None)
    return {k: v for k, v in policy.items() if v}


def describe(cfg: AugmentConfig) -> Dict[str, object]:
    """A JSON-able record of the policy, kept with the run's artifacts."""
    return {"config": dataclasses.asdict(cfg), "effective": resolve(cfg)}


class _SeededAugmentation(tf.keras.layers.Layer):
    """A seeded random op that is the identity outside training; subclasses define ``augment``."""

    def __init__(self, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._generator = tf.random.Generator.from_seed(seed)

    def call(self, images, training=None):
        return self.augment(images) if training else images

    def augment(self, images):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomErasing(_SeededAugmentation):
    """Erase one random rectangle (up to a quarter of the image) with probability ``rate``."""

    def __init__(self, rate: float, seed: int, **kwargs):
        super().__init__(seed, **kwargs)
        self.rate = rate

    def augment(self, images):
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        uniform = self._generator.uniform([batch, 5])
        eh = tf.cast(tf.cast(height, tf.float32) * (0.2 + 0.3 * uniform[:, 0]), tf.int32)
        ew = tf.cast(tf.cast(width, tf.float32) * (0.2 + 0.3 * uniform[:, 1]), tf.int32)
        y0 = tf.cast(uniform[:, 2] * tf.cast(height - eh, tf.float32), tf.int32)
        x0 = tf.cast(uniform[:, 3] * tf.cast(width - ew, tf.float32), tf.int32)
        apply = uniform[:, 4] < self.rate
        rows = tf.range(height)[None, :, None]
        cols = tf.range(width)[None, None, :]
        inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None])
                  & (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None])
                  & apply[:, None, None])
        return tf.where(inside[..., None], tf.zeros_like(images), images)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class RandomBrightnessShift(_SeededAugmentation):
    """Add one random offset in [-delta, delta] per image (no clipping: inputs are normalised)."""

    def __init__(self, delta: float, seed: int, **kwargs):
        super().__init__(seed, **kwargs)
        self.delta = delta

    def augment(self, images):
        offsets = self._generator.uniform([tf.shape(images)[0], 1, 1, 1], -self.delta, self.delta)
        return images + offsets

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class RandomPadCrop(_SeededAugmentation):
    """Zero-pad by ``padding`` pixels, then crop back to the original size at a random offset
    per image (translation with a black border); the identity outside training."""

    def __init__(self, padding: int, seed: int, **kwargs):
        super().__init__(seed, **kwargs)
        self.padding = padding

    def augment(self, images):
        pad = self.padding
        shape = tf.shape(images)
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        offsets = self._generator.uniform([shape[0], 2], 0, 2 * pad + 1, dtype=tf.int32)

        def crop(args):
            image, offset = args
            return tf.image.crop_to_bounding_box(image, offset[0], offset[1], shape[1], shape[2])

        return tf.map_fn(crop, (padded, offsets), fn_output_signature=images.dtype)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def rotation(value, seed):
    return tf.keras.layers.RandomRotation(value, fill_mode="reflect", seed=seed)


def zoom(value, seed):
    return tf.keras.layers.RandomZoom(value, fill_mode="reflect", seed=seed)


def translation(value, seed):
    return tf.keras.layers.RandomTranslation(value, value, fill_mode="reflect", seed=seed)


def contrast(value, seed):
    return tf.keras.layers.RandomContrast(value, seed=seed)


def _layers(policy: Dict[str, object], seed: int) -> List[tf.keras.layers.Layer]:
    """The policy's layers in the registry's order; the flips share one ``RandomFlip``."""
    flips = [op.flip for op in AUGMENT_OPS.values() if op.flip and policy.get(op.name)]
    out: List[tf.keras.layers.Layer] = []
    if flips:
        out.append(tf.keras.layers.RandomFlip("_and_".join(flips), seed=seed))
    for op in AUGMENT_OPS.values():
        if op.layer and op.name in policy:
            out.append(op.load_layer()(policy[op.name], seed=seed + op.seed_offset))
    return out


def build_augmenter(cfg: AugmentConfig, image_shape) -> Optional[tf.keras.Sequential]:
    """A Sequential of augmentation layers for ``image_shape`` (H, W, C), or None when off."""
    layers = _layers(resolve(cfg), cfg.seed)
    if not layers:
        return None
    model = tf.keras.Sequential(layers, name="augmentation")
    model.build((None, *image_shape))
    return model


def augment_dataset(dataset: tf.data.Dataset, cfg: AugmentConfig, image_shape) -> tf.data.Dataset:
    """Apply the policy to batches of ``(images, labels)``; identity when the policy is empty."""
    augmenter = build_augmenter(cfg, image_shape)
    if augmenter is None:
        return dataset
    return dataset.map(lambda images, labels: (augmenter(images, training=True), labels),
                       num_parallel_calls=1, deterministic=True)
