"""The training input mixes classes however the examples were written."""
import numpy as np
import tensorflow as tf

from lensflow.components.trainer.data import shuffle_buffer


def test_small_images_are_shuffled_across_the_whole_split():
    assert shuffle_buffer((28, 28, 1), 512) >= 60_000
    assert shuffle_buffer((224, 224, 3), 512) >= 512 * 2 ** 20 // (4 * 224 * 224 * 3)
    assert shuffle_buffer((224, 224, 3), 1) == 1024


def test_a_class_sorted_split_gives_batches_of_every_class():
    labels = np.repeat(np.arange(10), 6000)
    dataset = tf.data.Dataset.from_tensor_slices(labels).shuffle(
        shuffle_buffer((28, 28, 1), 512), seed=1).batch(128)
    first = next(iter(dataset)).numpy()
    assert len(set(first.tolist())) == 10
