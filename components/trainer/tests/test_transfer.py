"""Transfer learning's two phases: frozen backbone, then only the unfrozen top layers change."""
import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer.models import transfer
from lensflow.components.trainer.run import compile_model
from lensflow.pipeline.config import ModelConfig


def weights_by_name(model):
    return {w.name: w.numpy().copy() for w in transfer.backbone_of(model).weights}


def fit(model, lr):
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    compile_model(model, lr, top_k=2)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)


@pytest.mark.slow
def test_phase_one_freezes_the_backbone_and_phase_two_changes_only_unfrozen_layers(tmp_path):
    options = ModelConfig(family="transfer", backbone="efficientnet_lite0", backbone_input_size=32)
    model = transfer.build((28, 28, 1), 3, weights=None, options=options, cache_dir=str(tmp_path))
    head_before = model.get_layer("probabilities").get_weights()[0].copy()
    before = weights_by_name(model)
    fit(model, 1e-2)
    after_one = weights_by_name(model)
    assert all(np.array_equal(before[k], after_one[k]) for k in before)
    assert not np.array_equal(head_before, model.get_layer("probabilities").get_weights()[0])

    unfrozen = transfer.unfreeze_top(model, layers=5)
    assert unfrozen == 5
    trainable = {w.name for w in transfer.backbone_of(model).trainable_weights}
    assert trainable and not any("bn" in n.lower() and "batch" in n.lower() for n in trainable)
    fit(model, 1e-3)
    after_two = weights_by_name(model)
    changed = {k for k in before if not np.array_equal(after_one[k], after_two[k])}
    assert changed and changed <= trainable
    frozen_bn = [l for l in transfer.backbone_of(model).layers
                 if isinstance(l, tf.keras.layers.BatchNormalization)]
    assert frozen_bn and not any(l.trainable for l in frozen_bn)
