"""The training input mixes classes however the examples were written, and memory stays bounded:
a split is cached only within ``train.cache_budget_mb``, streamed otherwise, same batches."""
import hashlib
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx.components.util import tfxio_utils
from tfx.types import standard_artifacts

from lensflow.components.trainer import data
from lensflow.components.trainer.data import fits_cache, shuffle_buffer
from lensflow.components.transform import features
from lensflow.pipeline.config import LensflowConfig


def test_small_images_are_shuffled_across_the_whole_split():
    assert shuffle_buffer((28, 28, 1), 512) >= 60_000
    assert shuffle_buffer((224, 224, 3), 512) >= 512 * 2 ** 20 // (224 * 224 * 3 + 64)
    assert shuffle_buffer((224, 224, 3), 1) == 1024


def test_a_class_sorted_split_gives_batches_of_every_class():
    labels = np.repeat(np.arange(10), 6000)
    dataset = tf.data.Dataset.from_tensor_slices(labels).shuffle(
        shuffle_buffer((28, 28, 1), 512), seed=1).batch(128)
    first = next(iter(dataset)).numpy()
    assert len(set(first.tolist())) == 10


def test_the_cache_holds_a_split_only_within_the_budget():
    assert fits_cache(60_000, (28, 28, 1), 256)          # Fashion-MNIST: 51 MB
    assert not fits_cache(25_000, (224, 224, 3), 256)    # 3.8 GB of uint8 pixels
    assert fits_cache(1_000, (224, 224, 3), 256)
    assert not fits_cache(1, (8, 8, 1), 0)               # 0: never cache


CLASSES, PER_CLASS, SHAPE = 4, 700, (32, 32, 3)


def _write_split(folder, order: str):
    """A transformed split as Transform writes it (stored uint8 images, label ids, gzip), each
    image's pixels all equal to its label; ``order``: ``sorted`` by class or ImageExampleGen's
    ``hashed`` order of paths."""
    rows = [(c, f"class{c}/{i}.png") for c in range(CLASSES) for i in range(PER_CLASS)]
    if order == "hashed":
        rows.sort(key=lambda row: hashlib.sha256(row[1].encode()).digest())
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "part-0.gz"), "GZIP") as writer:
        for label, _ in rows:
            pixels = np.full(SHAPE, label * 60 + 10, np.uint8)
            example = tf.train.Example(features=tf.train.Features(feature={
                features.IMAGE_XF: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[tf.io.serialize_tensor(pixels).numpy()])),
                features.LABEL_XF: tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[label]))}))
            writer.write(example.SerializeToString())
    return [os.path.join(folder, "*")]


def _transform_output(folder):
    spec = {features.IMAGE_XF: tf.io.FixedLenFeature([], tf.string),
            features.LABEL_XF: tf.io.FixedLenFeature([], tf.int64)}
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec)),
        os.path.join(folder, tft.TFTransformOutput.TRANSFORMED_METADATA_DIR))
    return tft.TFTransformOutput(folder)


def _accessor():
    return DataAccessor(tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
        [standard_artifacts.Examples()], []), record_batch_factory=None, data_view_decode_fn=None)


def _cfg(budget_mb: int) -> LensflowConfig:
    return LensflowConfig().replace(**{
        "image.size": SHAPE[0], "image.color_mode": "rgb", "train.batch_size": 64,
        "train.cache_budget_mb": budget_mb, "train.shuffle_buffer_mb": 1,
        "augment.preset": "none"})


def _batches(pattern, output, cfg, stats, count=6):
    steps = -(-stats.count // cfg.train.batch_size)
    stream = data.epoch_stream(pattern, _accessor(), output, cfg, steps, steps, stats)
    return [(x.numpy(), y.numpy()) for x, y in stream.take(count)]


def test_streaming_a_split_over_the_budget_gives_the_cached_batches_of_every_class(tmp_path):
    # a global seed of 0 (set by other tests) breaks tf.data's shuffle with a tensor seed
    tf.keras.utils.set_random_seed(1)
    pattern = _write_split(str(tmp_path / "hashed"), "hashed")
    output = _transform_output(str(tmp_path / "transform"))
    stats = data.split_statistics(pattern, _accessor(), output, _cfg(0))
    assert stats.count == CLASSES * PER_CLASS > shuffle_buffer(SHAPE, 1)
    streamed = _batches(pattern, output, _cfg(0), stats)
    cached = _batches(pattern, output, _cfg(256), stats)
    for (x_stream, y_stream), (x_cache, y_cache) in zip(streamed, cached):
        np.testing.assert_array_equal(y_stream, y_cache)
        np.testing.assert_array_equal(x_stream, x_cache)
        assert set(y_stream.tolist()) == set(range(CLASSES))
    # every image's pixels equal its label's value: the scaled input is that value normalised
    x, y = streamed[0]
    values = (np.array([label * 60 + 10 for label in y]) / 255.0)[:, None]
    expected = (values - np.array(stats.mean)) / np.array(stats.std)
    np.testing.assert_allclose(x.reshape(len(y), -1, 3)[:, 0, :], expected, atol=1e-5)


def test_split_statistics_are_the_pixel_mean_and_std_of_the_split(tmp_path):
    pattern = _write_split(str(tmp_path / "sorted"), "sorted")
    output = _transform_output(str(tmp_path / "transform"))
    stats = data.split_statistics(pattern, _accessor(), output, _cfg(0))
    values = np.repeat(np.arange(CLASSES) * 60 + 10, PER_CLASS) / 255.0
    assert stats.count == CLASSES * PER_CLASS and stats.shape == SHAPE
    np.testing.assert_allclose(stats.mean, [values.mean()] * 3, rtol=1e-9)
    np.testing.assert_allclose(stats.std, [np.sqrt(values.var() + 1e-6)] * 3, rtol=1e-9)
