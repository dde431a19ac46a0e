"""Scaling in the model's graph is Transform's former scaling and normalisation on the stored pixels."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from lensflow.components.trainer import scaling
from lensflow.components.trainer.models import build_model
from lensflow.components.transform import preprocessing
from lensflow.pipeline.config import ImageConfig, LensflowConfig
from lensflow.pipeline.registry import FAMILIES


def _former_transform(floats: np.ndarray) -> np.ndarray:
    """What Transform used to emit: float pixels in [0, 1] normalised per channel with the
    split's full-pass mean and sqrt(max(E[x^2] - mean^2, 0) + 1e-6)."""
    mean = floats.mean(axis=(0, 1, 2))
    std = np.sqrt(np.maximum((floats ** 2).mean(axis=(0, 1, 2)) - mean ** 2, 0) + 1e-6)
    return (floats - mean) / std


def _photos(n=6, size=(23, 17)):
    rng = np.random.default_rng(5)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (*size, 3)).astype(np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def test_model_scaling_of_stored_pixels_equals_the_former_transform_output():
    cfg = ImageConfig(size=12, color_mode="rgb", resize_policy="stretch")
    floats = preprocessing.decode_and_resize(tf.constant(_photos()), cfg).numpy()
    pixels = preprocessing.to_uint8(tf.constant(floats)).numpy()
    x = pixels.astype(np.float64) / 255.0
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    stats = scaling.PixelStats.from_sums(len(x), x[..., 0].size, x.sum(axis=(0, 1, 2)),
                                         (x ** 2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(stats.std, np.sqrt(std ** 2 + 1e-6), rtol=1e-9)
    layer = scaling.layer_for(stats, normalize=True)
    got = layer(tf.constant(pixels, tf.float32)).numpy()
    former = _former_transform(floats)
    # the only difference is the uint8 rounding: half a level per pixel, in units of the std,
    # plus its (smaller) effect on the mean and std of the split
    assert np.abs(got - former).max() <= 0.6 / 255 / min(stats.std)
    unnormalised = scaling.layer_for(stats, normalize=False)(tf.constant(pixels)).numpy()
    assert np.abs(unnormalised - floats).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_gets_its_registry_normalisation(family):
    stats = scaling.PixelStats(10, [0.2, 0.3, 0.4], [0.1, 0.2, 0.3])
    cfg = LensflowConfig().replace(**{"model.family": family, "image.color_mode": "rgb"})
    layer = scaling.layer_for(stats, cfg.effective_normalize)
    assert cfg.effective_normalize == FAMILIES[family].normalize
    white = layer(tf.fill([1, 2, 2, 3], 255.0)).numpy()[0, 0, 0]
    expected = (1.0 - np.array(stats.mean)) / np.array(stats.std) \
        if FAMILIES[family].normalize else np.ones(3)
    np.testing.assert_allclose(white, expected, rtol=1e-6)


def test_exported_model_is_scaling_then_the_trained_network_and_survives_saving(tmp_path):
    cfg = LensflowConfig().replace(**{"model.family": "baseline_cnn", "image.size": 12})
    network = build_model(cfg, (12, 12, 1), 3)
    stats = scaling.PixelStats(4, [0.4], [0.25])
    model = scaling.with_scaling(network, scaling.layer_for(stats, True))
    pixels = np.random.default_rng(2).integers(0, 256, (5, 12, 12, 1)).astype(np.float32)
    expected = network(scaling.scale(pixels, stats.mean, stats.std), training=False).numpy()
    np.testing.assert_allclose(model(pixels, training=False).numpy(), expected, atol=1e-6)
    assert scaling.network(model) is network
    model.save(str(tmp_path / "m"), save_format="tf")
    restored = tf.keras.models.load_model(str(tmp_path / "m"), compile=False)
    np.testing.assert_allclose(restored(pixels, training=False).numpy(), expected, atol=1e-5)
    assert isinstance(restored.get_layer(scaling.NAME), scaling.PixelScaling)
    np.testing.assert_allclose(scaling.network_input(restored, pixels).numpy(),
                               scaling.scale(pixels, stats.mean, stats.std).numpy(), atol=1e-6)
    inner = scaling.network(restored)
    np.testing.assert_allclose(
        inner(scaling.network_input(restored, pixels), training=False).numpy(), expected,
        atol=1e-5)
