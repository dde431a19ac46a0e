"""Trainer input pipelines over Transform's materialised examples.

Batches are global batches (``train.batch_size``). Under a distribution strategy Keras splits each
one over the replicas, and with several workers every pipeline is sharded by data
(``shard_by_data``): each worker reads the same seeded stream and keeps its slice of every global
batch, so the workers take the same number of steps and the optimisation is the one of a single
process, however many files Transform wrote.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tfx_bsl.public import tfxio

from lensflow.components.transform import augment, features

_READ_BATCH = 256
_PASS_SEED_STRIDE = 1_000_003
_ENDLESS = 2 ** 62


def labelled_images(file_pattern, data_accessor, tf_transform_output) -> tf.data.Dataset:
    """Unbatched (image, label) pairs, read once."""
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


def shuffle_buffer(shape, megabytes: int) -> int:
    """Examples of ``shape`` (float32) that fit ``megabytes``: the whole split for small images,
    so every batch is drawn from every class whatever order the examples were written in."""
    per_example = 4 * max(1, int(np.prod(shape)))
    return max(1024, megabytes * 2 ** 20 // per_example)


def train_dataset(file_pattern, data_accessor, tf_transform_output, cfg) -> tf.data.Dataset:
    """Cached, reshuffled each epoch, batched, then augmented on the fly (training only)."""
    shape = image_shape(tf_transform_output)
    dataset = labelled_images(file_pattern, data_accessor, tf_transform_output).cache()
    dataset = dataset.shuffle(shuffle_buffer(shape, cfg.train.shuffle_buffer_mb),
                              seed=cfg.train.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(cfg.train.batch_size)
    dataset = augment.augment_dataset(dataset, cfg.augment, shape)
    return shard_by_data(dataset.prefetch(tf.data.AUTOTUNE))


def epoch_stream(file_pattern, data_accessor, tf_transform_output, cfg, steps_per_epoch: int,
                 batches_per_pass: int, first_epoch: int = 0) -> tf.data.Dataset:
    """The Trainer's batches from epoch ``first_epoch`` on, as one endless stream.

    Pass ``p`` over the split is shuffled with a seed derived from ``train.seed`` and ``p`` (not
    from how many iterators came before), and epoch ``e`` starts at batch ``e * steps_per_epoch``
    of the stream, so a run resumed at epoch ``e`` in a new process gets the batches an
    uninterrupted run gets. Augmentation follows (training only); its random draws are not
    keyed to the epoch."""
    shape = image_shape(tf_transform_output)
    cached = labelled_images(file_pattern, data_accessor, tf_transform_output).cache()
    buffer = shuffle_buffer(shape, cfg.train.shuffle_buffer_mb)
    first_pass, offset = divmod(first_epoch * steps_per_epoch, batches_per_pass)

    def one_pass(index):
        seed = tf.constant(cfg.train.seed, tf.int64) * _PASS_SEED_STRIDE + index
        return cached.shuffle(buffer, seed=seed, reshuffle_each_iteration=False) \
            .batch(cfg.train.batch_size)

    dataset = tf.data.Dataset.range(first_pass, _ENDLESS).flat_map(one_pass).skip(offset)
    dataset = augment.augment_dataset(dataset, cfg.augment, shape)
    return shard_by_data(dataset.prefetch(tf.data.AUTOTUNE))


def eval_dataset(file_pattern, data_accessor, tf_transform_output, cfg) -> tf.data.Dataset:
    """Deterministic batches: no shuffling, no augmentation."""
    dataset = labelled_images(file_pattern, data_accessor, tf_transform_output).cache()
    return shard_by_data(dataset.batch(cfg.train.batch_size).prefetch(tf.data.AUTOTUNE))


def count_examples(file_pattern, data_accessor, tf_transform_output) -> int:
    """Number of examples behind ``file_pattern`` (one read; sizes the learning-rate schedule)."""
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, label_key=features.LABEL_XF,
                                       num_epochs=1, shuffle=False),
        tf_transform_output.transformed_metadata.schema)
    return int(dataset.reduce(tf.constant(0, tf.int64),
                              lambda count, batch: count + tf.shape(batch[1], out_type=tf.int64)[0]))


def image_shape(tf_transform_output):
    """(H, W, C) of the transformed image feature."""
    spec = tf_transform_output.transformed_feature_spec()[features.IMAGE_XF]
    return tuple(int(d) for d in spec.shape)
