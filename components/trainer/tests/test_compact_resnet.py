"""The compact_resnet family: builds from config widths/depths, trains a step, serialises."""
import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer.models import FAMILIES, build_model
from lensflow.components.trainer.run import compile_model
from lensflow.pipeline.config import LensflowConfig


def cfg(**dotted):
    return LensflowConfig().replace(**{"model.family": "compact_resnet", **dotted})


def test_widths_and_depths_shape_the_network():
    model = build_model(cfg(**{"model.widths": [8, 16, 24], "model.depths": [1, 0, 2]}),
                        (28, 28, 1), 4)
    convs = [l for l in model.layers if isinstance(l, tf.keras.layers.Conv2D)]
    # stem + 2 (stage 0 block) + widen + widen + 4 (two stage-2 blocks)
    assert len(convs) == 9
    assert [c.filters for c in convs] == [8, 8, 8, 16, 24, 24, 24, 24, 24]
    assert model.get_layer("s2_widen_conv").output_shape[1:3] == (7, 7)
    assert any(isinstance(l, tf.keras.layers.BatchNormalization) for l in model.layers)
    assert model.output_shape == (None, 4)
    assert "compact_resnet" in FAMILIES


@pytest.mark.slow
def test_training_steps_lower_the_loss_on_a_fixed_batch():
    tf.keras.utils.set_random_seed(0)
    model = build_model(cfg(**{"model.widths": [8, 16], "model.depths": [0, 1],
                               "model.dropout": 0.0}), (16, 16, 1), 3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 3, 32)
    compile_model(model, 1e-2, top_k=2)
    loss = tf.keras.losses.SparseCategoricalCrossentropy()
    before = float(loss(y, model(x, training=True)))
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert float(loss(y, model(x, training=True))) < before
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
