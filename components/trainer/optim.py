"""Optimiser, learning-rate schedule and loss built from ``TrainConfig``.

The schedule is per step (linear warm-up, then constant or cosine decay to zero), so it behaves
the same for any batch size. The model outputs probabilities; with ``label_smoothing > 0`` the
loss needs one-hot targets, so the training labels are converted in the input pipeline
(``one_hot_labels``) and the metrics switch to their categorical versions.
"""
from __future__ import annotations

import math

import tensorflow as tf

from lensflow.pipeline.config import ConfigError


@tf.keras.utils.register_keras_serializable(package="lensflow")
class WarmupSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over ``warmup_steps``, then ``constant`` or ``cosine`` decay to zero at
    ``total_steps``."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0,
                 decay: str = "cosine"):
        if decay not in ("constant", "cosine"):
            raise ConfigError(f"train.lr_schedule={decay!r}; choose constant or cosine")
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = max(int(warmup_steps), 0)
        self.decay = decay

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak, tf.float32)
        warm = float(self.warmup_steps)
        warmup = peak * (step + 1.0) / max(warm, 1.0)
        if self.decay == "constant":
            after = peak
        else:
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = tf.clip_by_value((step - warm) / span, 0.0, 1.0)
            after = peak * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < warm, warmup, after)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "decay": self.decay}


def needs_steps(train_cfg) -> bool:
    """Whether the schedule needs the number of steps per epoch."""
    return train_cfg.lr_schedule != "constant" or train_cfg.warmup_epochs > 0


def learning_rate(train_cfg, peak: float, steps_per_epoch: int, epochs: int):
    """A float for the plain constant schedule without warm-up (the default), else a schedule."""
    warmup_steps = int(round(train_cfg.warmup_epochs * steps_per_epoch))
    if not needs_steps(train_cfg):
        return peak
    return WarmupSchedule(peak, steps_per_epoch * epochs, warmup_steps, train_cfg.lr_schedule)


def optimizer(train_cfg, lr):
    """``adam`` (the default), ``adamw`` or ``sgd`` (Nesterov momentum); ``weight_decay`` is
    decoupled (applied by the optimiser, scaled by the learning rate)."""
    wd = train_cfg.weight_decay or None
    name = train_cfg.optimizer
    if name == "adam":
        return tf.keras.optimizers.Adam(lr, weight_decay=wd)
    if name == "adamw":
        return tf.keras.optimizers.AdamW(lr, weight_decay=train_cfg.weight_decay)
    if name == "sgd":
        return tf.keras.optimizers.SGD(lr, momentum=train_cfg.momentum, nesterov=True,
                                       weight_decay=wd)
    raise ConfigError(f"train.optimizer={name!r}; choose adam, adamw or sgd")


def one_hot_labels(dataset: tf.data.Dataset, num_classes: int) -> tf.data.Dataset:
    """Sparse integer labels -> one-hot float targets, for label smoothing."""
    return dataset.map(lambda images, labels: (
        images, tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes)))


def loss_and_metrics(label_smoothing: float, top_k: int):
    """Cross-entropy on probabilities (smoothed targets when asked) with matching metrics."""
    if label_smoothing:
        return (tf.keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                [tf.keras.metrics.CategoricalAccuracy(name="accuracy"),
                 tf.keras.metrics.TopKCategoricalAccuracy(k=top_k, name="top_k_accuracy")])
    return (tf.keras.losses.SparseCategoricalCrossentropy(),
            [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
             tf.keras.metrics.SparseTopKCategoricalAccuracy(k=top_k, name="top_k_accuracy")])
