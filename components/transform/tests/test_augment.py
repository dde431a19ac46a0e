"""Augmentation: varies across epochs in training, absent when off, never in evaluation."""
import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.transform import augment
from lensflow.pipeline.config import AugmentConfig, ConfigError


def batches(cfg: AugmentConfig):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 16, 16, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(8))).batch(4)
    return augment.augment_dataset(dataset, cfg, (16, 16, 1)), images


def epoch(dataset):
    return np.concatenate([x.numpy() for x, _ in dataset])


def test_standard_policy_gives_different_tensors_each_epoch():
    dataset, original = batches(AugmentConfig(preset="standard"))
    first, second = epoch(dataset), epoch(dataset)
    assert first.shape == second.shape == original.shape
    assert not np.allclose(first, second)
    assert not np.allclose(first, original)


def test_no_augmentation_is_the_identity_every_epoch():
    dataset, original = batches(AugmentConfig(preset="none"))
    np.testing.assert_array_equal(epoch(dataset), original)
    np.testing.assert_array_equal(epoch(dataset), original)


def test_augmenter_is_inactive_outside_training():
    model = augment.build_augmenter(AugmentConfig(preset="standard"), (16, 16, 1))
    images = tf.random.normal((4, 16, 16, 1), seed=1)
    np.testing.assert_array_equal(model(images, training=False).numpy(), images.numpy())


def test_orientation_can_be_forbidden_and_explicit_conflicts_are_errors():
    policy = augment.resolve(AugmentConfig(preset="standard", allow_orientation_changes=False))
    assert not {"horizontal_flip", "vertical_flip", "rotation"} & set(policy)
    assert "zoom" in policy
    with pytest.raises(ConfigError, match="forbids orientation"):
        augment.resolve(AugmentConfig(vertical_flip=True, allow_orientation_changes=False))
    assert augment.resolve(AugmentConfig(preset="light", zoom=0.3))["zoom"] == 0.3
    assert augment.resolve(AugmentConfig(preset="none")) == {}


def test_policy_is_recorded_as_json_serialisable():
    import json
    record = augment.describe(AugmentConfig(preset="light"))
    assert json.loads(json.dumps(record))["effective"]["horizontal_flip"] is True


def test_every_registered_op_becomes_a_seeded_layer_that_is_identity_outside_training():
    from lensflow.pipeline.registry import AUGMENT_OPS

    strengths = {name: (True if op.flip else 2 if name == "crop_padding" else 0.2)
                 for name, op in AUGMENT_OPS.items()}
    cfg = AugmentConfig(**strengths)
    model = augment.build_augmenter(cfg, (16, 16, 1))
    flips = [op.flip for op in AUGMENT_OPS.values() if op.flip]
    expected = 1 + sum(1 for op in AUGMENT_OPS.values() if op.layer)
    assert len(model.layers) == expected
    assert model.layers[0].mode == "_and_".join(flips)
    images = tf.random.uniform((4, 16, 16, 1), seed=3)
    np.testing.assert_array_equal(model(images, training=False).numpy(), images.numpy())
    assert not np.allclose(model(images, training=True).numpy(), images.numpy())
    no_orientation = augment.resolve(AugmentConfig(preset="standard",
                                                   allow_orientation_changes=False))
    assert not {name for name, op in AUGMENT_OPS.items() if op.orientation} & set(no_orientation)
