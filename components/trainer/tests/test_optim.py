"""Learning-rate schedules, optimisers and label smoothing from TrainConfig."""
import math

import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer import optim
from lensflow.components.trainer.run import compile_model
from lensflow.pipeline.config import ConfigError, LensflowConfig, TrainConfig


def lr_at(schedule, step):
    return float(schedule(tf.constant(step)))


def test_default_is_a_plain_float_learning_rate():
    assert optim.learning_rate(TrainConfig(), 1e-3, steps_per_epoch=10, epochs=3) == 1e-3
    assert not optim.needs_steps(TrainConfig())


def test_cosine_with_warmup_ramps_up_peaks_and_decays_to_zero():
    train = TrainConfig(lr_schedule="cosine", warmup_epochs=1, epochs=5)
    schedule = optim.learning_rate(train, 0.1, steps_per_epoch=10, epochs=5)
    assert lr_at(schedule, 0) == pytest.approx(0.01)
    assert lr_at(schedule, 4) == pytest.approx(0.05)
    assert lr_at(schedule, 10) == pytest.approx(0.1)
    assert lr_at(schedule, 30) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(schedule, 50) == pytest.approx(0.0, abs=1e-9)
    values = [lr_at(schedule, s) for s in range(10, 51)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_constant_with_warmup_holds_the_peak_after_warmup():
    train = TrainConfig(lr_schedule="constant", warmup_epochs=0.5, epochs=2)
    schedule = optim.learning_rate(train, 0.2, steps_per_epoch=8, epochs=2)
    assert lr_at(schedule, 1) == pytest.approx(0.1)
    assert lr_at(schedule, 4) == lr_at(schedule, 15) == pytest.approx(0.2)


@pytest.mark.parametrize("name,cls", [("adam", tf.keras.optimizers.Adam),
                                      ("adamw", tf.keras.optimizers.AdamW),
                                      ("sgd", tf.keras.optimizers.SGD)])
def test_optimizer_choice_and_weight_decay(name, cls):
    opt = optim.optimizer(TrainConfig(optimizer=name, weight_decay=1e-4), 0.01)
    assert isinstance(opt, cls)
    assert opt.weight_decay == pytest.approx(1e-4)
    if name == "sgd":
        assert opt.nesterov and opt.momentum == pytest.approx(0.9)


def test_label_smoothing_changes_the_loss_and_keeps_accuracy_correct():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = rng.integers(0, 3, 12)
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, activation="softmax", input_shape=(4,))])
    expected_accuracy = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    results = {}
    for smoothing in (0.0, 0.2):
        compile_model(model, 1e-3, top_k=2, train_cfg=TrainConfig(label_smoothing=smoothing))
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        if smoothing:
            ds = optim.one_hot_labels(ds, 3)
        results[smoothing] = model.evaluate(ds, verbose=0, return_dict=True)
    assert results[0.2]["loss"] != pytest.approx(results[0.0]["loss"], abs=1e-3)
    assert results[0.2]["accuracy"] == pytest.approx(expected_accuracy)
    assert results[0.0]["accuracy"] == pytest.approx(expected_accuracy)
    probabilities = model.predict(x, verbose=0)
    targets = np.full((12, 3), 0.2 / 3) + 0.8 * np.eye(3)[y]
    manual = -np.mean(np.sum(targets * np.log(probabilities), axis=1))
    assert results[0.2]["loss"] == pytest.approx(manual, rel=1e-4)


@pytest.mark.parametrize("key,value,field", [
    ("train.optimizer", "rmsprop", "train.optimizer"),
    ("train.lr_schedule", "step", "train.lr_schedule"),
    ("train.label_smoothing", 1.0, "train.label_smoothing"),
    ("train.weight_decay", -1e-4, "train.weight_decay"),
    ("train.warmup_epochs", 10.0, "train.warmup_epochs"),
    ("train.momentum", 1.0, "train.momentum"),
])
def test_invalid_training_options_are_rejected(key, value, field):
    with pytest.raises(ConfigError, match=field):
        LensflowConfig().replace(**{key: value})


@pytest.mark.slow
def test_train_runs_the_configured_recipe_end_to_end(tmp_path):
    """run.train with SGD, cosine warm-up, label smoothing and flip TTA on a tiny dataset."""
    from lensflow.components.trainer.models import build_model
    from lensflow.components.trainer.run import train

    cfg = LensflowConfig().replace(**{
        "model.family": "compact_resnet", "model.widths": [4, 8], "model.depths": [0, 1],
        "model.flip_tta": True, "train.epochs": 2, "train.batch_size": 8,
        "train.optimizer": "sgd", "train.learning_rate": 0.05, "train.weight_decay": 5e-4,
        "train.lr_schedule": "cosine", "train.warmup_epochs": 1.0,
        "train.label_smoothing": 0.1, "evaluation.top_k": 2})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    ds = optim.one_hot_labels(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), 3)
    model = build_model(cfg, (8, 8, 1), 3)
    history = train(model, cfg, ds, ds, str(tmp_path), steps_per_epoch=2)
    assert len(history["accuracy"]) == 2 and 0.0 <= history["val_accuracy"][-1] <= 1.0
    assert set(history) >= {"loss", "top_k_accuracy", "val_loss"}
    assert int(model.optimizer.iterations) == 4
    # the last (4th) step ran halfway through the cosine after 2 warm-up steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.025)
