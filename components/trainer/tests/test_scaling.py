"""The scaling applied before the network is Transform's former scaling and normalisation on the
stored pixels, and it survives being written beside an exported model."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from lensflow.components.trainer import scaling
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
    got = scaling.PixelScaling.of(stats, normalize=True)(tf.constant(pixels)).numpy()
    former = _former_transform(floats)
    # the only difference is the uint8 rounding: half a level per pixel, in units of the std,
    # plus its (smaller) effect on the mean and std of the split
    assert np.abs(got - former).max() <= 0.6 / 255 / min(stats.std)
    unnormalised = scaling.PixelScaling.of(stats, normalize=False)(tf.constant(pixels)).numpy()
    assert np.abs(unnormalised - floats).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_gets_its_registry_normalisation(family):
    stats = scaling.PixelStats(10, [0.2, 0.3, 0.4], [0.1, 0.2, 0.3])
    cfg = LensflowConfig().replace(**{"model.family": family, "image.color_mode": "rgb"})
    pixel_scaling = scaling.PixelScaling.of(stats, cfg.effective_normalize)
    assert cfg.effective_normalize == FAMILIES[family].normalize
    white = pixel_scaling(tf.fill([1, 2, 2, 3], 255.0)).numpy()[0, 0, 0]
    expected = (1.0 - np.array(stats.mean)) / np.array(stats.std) \
        if FAMILIES[family].normalize else np.ones(3)
    np.testing.assert_allclose(white, expected, rtol=1e-6)


@pytest.mark.parametrize("normalize", [True, False])
def test_scaling_written_beside_a_model_reads_back_the_same(tmp_path, normalize):
    stats = scaling.PixelStats(4, [0.4, 0.5, 0.6], [0.25, 0.2, 0.3])
    written = scaling.PixelScaling.of(stats, normalize)
    written.write(str(tmp_path))
    read = scaling.PixelScaling.read(str(tmp_path))
    assert read == written
    pixels = np.random.default_rng(2).integers(0, 256, (2, 3, 3, 3)).astype(np.uint8)
    np.testing.assert_array_equal(read(pixels).numpy(), written(pixels).numpy())
    expected = (pixels / 255.0 - stats.mean) / stats.std if normalize else pixels / 255.0
    np.testing.assert_allclose(read(pixels).numpy(), expected, atol=1e-6)


def test_a_model_folder_without_scaling_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pixel_scaling.json"):
        scaling.PixelScaling.read(str(tmp_path))
    with pytest.raises(ValueError, match="both mean and std"):
        scaling.PixelScaling((0.5,), None)
