"""Saliency, Grad-CAM and filter-bank views on small real Keras models."""
import types

import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.report import interpret
from lensflow.components.trainer.models import filter_bank, tta


def _left_half_model(num_classes: int = 3) -> tf.keras.Model:
    """A classifier that can only see the left half of an 8x8 image."""
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Cropping2D(((0, 0), (0, 4)))(inputs)
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)


def test_saliency_is_zero_where_the_model_cannot_look(images):
    tf.keras.utils.set_random_seed(1)
    maps = interpret.saliency(_left_half_model(), images, [0, 2])
    assert maps.shape == (2, 8, 8)
    assert np.all(maps[:, :, 4:] == 0)
    assert np.all(maps.max(axis=(1, 2)) == pytest.approx(1.0))


def test_grad_cam_uses_the_last_spatial_feature_map(images):
    tf.keras.utils.set_random_seed(1)
    result = interpret.grad_cam(_left_half_model(), images, [1, 1])
    assert result["layer"] == "conv"
    assert result["maps"].shape == (2, 8, 8)
    assert result["maps"].min() >= 0 and result["maps"].max() <= 1


def test_grad_cam_looks_inside_a_backbone_that_pools_its_features(images):
    """Like the transfer family: the nested backbone ends in global pooling."""
    tf.keras.utils.set_random_seed(1)
    backbone_in = tf.keras.Input((8, 8, 1))
    features = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                                      name="last_conv")(backbone_in)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(features)
    backbone = tf.keras.Model(backbone_in, pooled, name="backbone")
    inputs = tf.keras.Input((8, 8, 1))
    x = backbone(tf.keras.layers.Rescaling(2.0)(inputs), training=False)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))
    name, probe = interpret.feature_probe(model)
    assert name == "backbone/last_conv"
    feature_map, scores = probe(images)
    assert feature_map.shape == (2, 8, 8, 4)
    np.testing.assert_allclose(tf.nn.softmax(scores), model(images), atol=1e-6)
    assert interpret.grad_cam(model, images, [0, 2])["maps"].shape == (2, 8, 8)


def _scaled_output(model: tf.keras.Model, factor: float) -> tf.keras.Model:
    """A copy of ``model`` whose output Dense kernel is ``factor`` times larger (bias zero):
    the same pre-softmax scores up to scale, softmax saturated for large factors."""
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    dense = copy.layers[-1]
    dense.set_weights([dense.get_weights()[0] * factor, np.zeros_like(dense.get_weights()[1])])
    return copy


def test_explanations_use_pre_softmax_scores_so_a_confident_model_still_explains(images):
    tf.keras.utils.set_random_seed(1)
    model = _scaled_output(_left_half_model(), 1.0)
    confident = _scaled_output(model, 1e4)
    assert np.all(np.max(confident(images).numpy(), axis=1) == 1.0)
    np.testing.assert_allclose(interpret.grad_cam(confident, images, [1, 1])["maps"],
                               interpret.grad_cam(model, images, [1, 1])["maps"], atol=1e-4)
    np.testing.assert_allclose(interpret.saliency(confident, images, [1, 1]),
                               interpret.saliency(model, images, [1, 1]), atol=1e-4)
    assert interpret.grad_cam(confident, images, [1, 1])["maps"].max() == pytest.approx(1.0)


@pytest.mark.slow
def test_flip_tta_model_is_explained_through_both_of_its_passes(images):
    tf.keras.utils.set_random_seed(1)
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tta.with_flip_tta(tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x)))
    result = interpret.grad_cam(model, images, [0, 2])
    assert result["layer"] == "flip_tta/conv"
    mirrored = interpret.grad_cam(model, images[:, :, ::-1], [0, 2])["maps"]
    np.testing.assert_allclose(mirrored, result["maps"][:, :, ::-1], atol=1e-5)
    left_only = tta.with_flip_tta(_left_half_model())
    salient = interpret.saliency(left_only, images, [0, 2])
    assert np.all(salient[:, :, :4].max(axis=(1, 2)) > 0.1) and np.all(salient[:, :, 4:].max(axis=(1, 2)) > 0.1)


def test_grad_cam_needs_a_spatial_feature_map():
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, activation="softmax")(inputs))
    with pytest.raises(ValueError, match="no spatial feature map"):
        interpret.grad_cam(model, np.zeros((1, 4), np.float32), [0])


def test_filter_bank_view_after_a_savedmodel_round_trip(tmp_path):
    options = types.SimpleNamespace(filters=["sobel_x", "sobel_y", "laplacian"],
                                    filter_mode="fixed", dropout=0.0)
    model = filter_bank.build((12, 12, 1), 3, weights=None, options=options)
    model.save(str(tmp_path / "fb"), save_format="tf", save_traces=False)
    restored = tf.keras.models.load_model(str(tmp_path / "fb"), compile=False)
    step = np.zeros((12, 12, 1), np.float32)
    step[:, 6:] = 1.0
    view = interpret.filter_bank_view(restored, step)
    bank = interpret.filter_banks(restored)[0]
    assert list(view["kernels"]) == bank.base_names
    sobel_x = view["responses"]["sobel_x"]
    assert sobel_x.shape == (12, 12)
    assert sobel_x[6, 5] == pytest.approx(4.0) and sobel_x[6, 2] == pytest.approx(0.0)
    assert np.abs(view["responses"]["sobel_y"][3:9, 3:9]).max() == pytest.approx(0.0)
    assert interpret.filter_bank_view(_left_half_model(), step[:8, :8]) is None


def test_load_keras_model_rejects_a_model_without_transform_layer(tmp_path):
    _left_half_model().save(str(tmp_path / "plain"), save_format="tf", save_traces=False)
    with pytest.raises(ValueError, match="no tft_layer"):
        interpret.load_keras_model(str(tmp_path / "plain"))
