"""Flip test-time augmentation: inside the model, mean of the two passes, config-validated."""
import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer.models import build_model, transfer, tta
from lensflow.pipeline.config import ConfigError, LensflowConfig


def small_cfg(**dotted):
    return LensflowConfig().replace(**{"model.family": "compact_resnet", "model.widths": [4, 8],
                                       "model.depths": [0, 1], "model.flip_tta": True,
                                       "model.dropout": 0.0, **dotted})


def test_tta_output_is_the_mean_of_the_image_and_its_mirror():
    model = build_model(small_cfg(), (12, 12, 1), 3)
    inner = tta.unwrap(model)
    assert inner is not model
    x = np.random.default_rng(0).normal(size=(5, 12, 12, 1)).astype("float32")
    expected = (inner.predict(x, verbose=0) + inner.predict(x[:, :, ::-1], verbose=0)) / 2
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, inner.predict(x, verbose=0), atol=1e-4)


def test_training_passes_through_the_plain_model():
    model = build_model(small_cfg(), (12, 12, 1), 3)
    x = np.random.default_rng(1).normal(size=(4, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(model(x, training=True).numpy(),
                               tta.unwrap(model)(x, training=True).numpy(), rtol=1e-5)


def test_saved_tta_model_reloads_with_the_same_predictions(tmp_path):
    model = build_model(small_cfg(), (12, 12, 1), 3)
    x = np.random.default_rng(2).normal(size=(3, 12, 12, 1)).astype("float32")
    model.save(str(tmp_path / "m"), save_format="tf")
    reloaded = tf.keras.models.load_model(str(tmp_path / "m"))
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5)


def test_flip_tta_is_rejected_when_orientation_must_not_change():
    with pytest.raises(ConfigError, match="flip_tta"):
        small_cfg(**{"augment.allow_orientation_changes": False})


def test_backbone_is_found_through_the_wrapper(tmp_path):
    cfg = LensflowConfig().replace(**{"model.family": "transfer", "model.weights": None,
                                      "model.backbone_input_size": 32, "model.flip_tta": True})
    model = build_model(cfg, (28, 28, 1), 3)
    assert transfer.backbone_of(model).name == transfer.BACKBONE_LAYER


@pytest.mark.parametrize("key,value", [
    ("model.widths", []), ("model.widths", [8, 0]), ("model.depths", [0, 1]),
    ("model.depths", [0, -1, 1]), ("model.widths", [4, 8, 16, 32, 64, 128]),
])
def test_invalid_widths_and_depths_are_rejected(key, value):
    with pytest.raises(ConfigError, match="model.(widths|depths)"):
        LensflowConfig().replace(**{"model.family": "compact_resnet", "image.size": 16,
                                    key: value})
