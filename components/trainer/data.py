"""Trainer input pipelines over Transform's materialised examples.

Batches are global batches (``train.batch_size``). Under a distribution strategy Keras splits each
one over the replicas, and with several workers every pipeline is sharded by data
(``shard_by_data``): each worker reads the same seeded stream and keeps its slice of every global
batch, so the workers take the same number of steps and the optimisation is the one of a single
process, however many files Transform wrote.

Memory does not grow with the data: examples stay in their stored form (one uint8 tensor per
image) until after the shuffle; a split is cached in RAM only when its stored size fits
``train.cache_budget_mb`` and is read from disk each pass otherwise; the shuffle buffer holds at
most ``train.shuffle_buffer_mb`` of stored images (ImageExampleGen writes in a class-mixed order,
so a bounded buffer still gives batches of every class). Pixels are scaled (``scaling.PixelScaling``,
which the serving signatures apply too) after batching, before augmentation.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import tensorflow as tf
from tfx_bsl.public import tfxio

from lensflow.components.trainer import scaling
from lensflow.components.transform import augment, features, preprocessing

_READ_BATCH = 256
_PASS_SEED_STRIDE = 1_000_003
_ENDLESS = 2 ** 62
_RECORD_OVERHEAD = 64  # bytes per cached example beyond its pixels (tensor header, label)


def labelled_images(file_pattern, data_accessor, tf_transform_output) -> tf.data.Dataset:
    """Unbatched (stored image string, label) pairs, read once."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, label_key=features.LABEL_XF,
                                       num_epochs=1, shuffle=False),
        tf_transform_output.transformed_metadata.schema)
    return dataset.map(lambda feats, label: (feats[features.IMAGE_XF], label)).unbatch()


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Multi-worker auto-sharding by element, not by file: Transform may write fewer files than
    there are workers, and file shards would give workers different batches and step counts."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def stored_bytes(shape) -> int:
    """Bytes one example takes in memory in its stored form (uint8 pixels plus overhead)."""
    return max(1, int(np.prod(shape))) + _RECORD_OVERHEAD


def shuffle_buffer(shape, megabytes: int) -> int:
    """Stored examples of ``shape`` that fit ``megabytes`` (at least 1024): the whole split for
    small images, so every batch is drawn from every class whatever order the examples were
    written in."""
    return max(1024, megabytes * 2 ** 20 // stored_bytes(shape))


def fits_cache(examples: int, shape, budget_mb: int) -> bool:
    """Whether a split of ``examples`` stored images fits ``train.cache_budget_mb``."""
    return examples * stored_bytes(shape) <= budget_mb * 2 ** 20


def _source(file_pattern, data_accessor, tf_transform_output, cfg, examples: int, shape):
    """The split's stored examples, cached in RAM only within the budget."""
    dataset = labelled_images(file_pattern, data_accessor, tf_transform_output)
    if fits_cache(examples, shape, cfg.train.cache_budget_mb):
        return dataset.cache()
    return dataset


def _to_batches(dataset, cfg, stats: scaling.PixelStats) -> tf.data.Dataset:
    """Stored pairs -> batches of scaled float images (the network's input) and labels."""
    shape = stats.shape
    pixel_scaling = scaling.PixelScaling.of(stats, cfg.effective_normalize)
    dataset = dataset.map(lambda s, y: (preprocessing.decode_pixel(s, shape), y),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(cfg.train.batch_size).map(
        lambda x, y: (pixel_scaling(x), y), num_parallel_calls=tf.data.AUTOTUNE)


def train_dataset(file_pattern, data_accessor, tf_transform_output, cfg,
                  stats: scaling.PixelStats) -> tf.data.Dataset:
    """Cached within the budget, reshuffled each epoch, batched, scaled, then augmented on the
    fly (training only)."""
    shape = stats.shape
    dataset = _source(file_pattern, data_accessor, tf_transform_output, cfg, stats.count, shape)
    dataset = dataset.shuffle(shuffle_buffer(shape, cfg.train.shuffle_buffer_mb),
                              seed=cfg.train.seed, reshuffle_each_iteration=True)
    dataset = augment.augment_dataset(_to_batches(dataset, cfg, stats), cfg.augment, shape)
    return shard_by_data(dataset.prefetch(tf.data.AUTOTUNE))


def epoch_stream(file_pattern, data_accessor, tf_transform_output, cfg, steps_per_epoch: int,
                 batches_per_pass: int, stats: scaling.PixelStats,
                 first_epoch: int = 0) -> tf.data.Dataset:
    """The Trainer's batches from epoch ``first_epoch`` on, as one endless stream.

    Pass ``p`` over the split is shuffled with a seed derived from ``train.seed`` and ``p`` (not
    from how many iterators came before), and epoch ``e`` starts at batch ``e * steps_per_epoch``
    of the stream, so a run resumed at epoch ``e`` in a new process gets the batches an
    uninterrupted run gets. Augmentation follows (training only); its random draws are not
    keyed to the epoch."""
    shape = stats.shape
    source = _source(file_pattern, data_accessor, tf_transform_output, cfg, stats.count, shape)
    buffer = shuffle_buffer(shape, cfg.train.shuffle_buffer_mb)
    first_pass, offset = divmod(first_epoch * steps_per_epoch, batches_per_pass)

    def one_pass(index):
        seed = tf.constant(cfg.train.seed, tf.int64) * _PASS_SEED_STRIDE + index
        return _to_batches(source.shuffle(buffer, seed=seed, reshuffle_each_iteration=False),
                           cfg, stats)

    dataset = tf.data.Dataset.range(first_pass, _ENDLESS).flat_map(one_pass).skip(offset)
    dataset = augment.augment_dataset(dataset, cfg.augment, shape)
    return shard_by_data(dataset.prefetch(tf.data.AUTOTUNE))


def eval_dataset(file_pattern, data_accessor, tf_transform_output, cfg,
                 stats: scaling.PixelStats, examples: int) -> tf.data.Dataset:
    """Deterministic batches: no shuffling, no augmentation; scaled with the training ``stats``;
    cached within the budget (``examples`` in the split)."""
    dataset = _source(file_pattern, data_accessor, tf_transform_output, cfg, examples, stats.shape)
    return shard_by_data(_to_batches(dataset, cfg, stats).prefetch(tf.data.AUTOTUNE))


def pixel_sums(images: tf.data.Dataset, channels: int) -> Tuple[int, np.ndarray, np.ndarray]:
    """(images, per-channel sum of x, of x^2) over batches of uint8 images, x = pixel / 255,
    accumulated in float64 in one streaming pass."""
    zeros = tf.zeros([channels], tf.float64)

    def add(state, batch):
        count, total, squares = state
        x = tf.cast(batch, tf.float64) / 255.0
        return (count + tf.shape(x, out_type=tf.int64)[0],
                total + tf.reduce_sum(x, axis=[0, 1, 2]),
                squares + tf.reduce_sum(tf.square(x), axis=[0, 1, 2]))

    count, total, squares = images.reduce((tf.constant(0, tf.int64), zeros, zeros), add)
    return int(count), total.numpy(), squares.numpy()


def stored_shape(file_pattern, data_accessor, tf_transform_output) -> Tuple[int, int, int]:
    """(H, W, C) of the stored images, read from the split's first example (what Transform
    wrote, whatever the Trainer's config says)."""
    for serialized, _ in labelled_images(file_pattern, data_accessor, tf_transform_output).take(1):
        return tuple(int(d) for d in tf.io.parse_tensor(serialized, tf.uint8).shape)
    raise ValueError(f"no examples in {file_pattern}")


def split_statistics(file_pattern, data_accessor, tf_transform_output, cfg) -> scaling.PixelStats:
    """Examples behind ``file_pattern``, their per-channel pixel mean / std and the stored
    shape, in one streaming read (sizes the learning-rate schedule and the cache decision;
    normalises the model input)."""
    del cfg  # the statistics are of the data, whatever the settings
    shape = stored_shape(file_pattern, data_accessor, tf_transform_output)
    images = labelled_images(file_pattern, data_accessor, tf_transform_output).map(
        lambda s, _: preprocessing.decode_pixel(s, shape),
        num_parallel_calls=tf.data.AUTOTUNE).batch(_READ_BATCH)
    count, total, squares = pixel_sums(images, shape[-1])
    return scaling.PixelStats.from_sums(count, count * shape[0] * shape[1], total, squares, shape)


def count_examples(file_pattern, data_accessor, tf_transform_output) -> int:
    """Number of examples behind ``file_pattern`` (one read of the labels)."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, label_key=features.LABEL_XF,
                                       num_epochs=1, shuffle=False),
        tf_transform_output.transformed_metadata.schema)
    return int(dataset.reduce(tf.constant(0, tf.int64),
                              lambda count, batch: count + tf.shape(batch[1], out_type=tf.int64)[0]))
