"""train.distribution: which strategy for which cluster, clear errors, who writes.

The two-process MultiWorkerMirroredStrategy run is in ``tests/test_distributed_training.py``."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer import distribution
from lensflow.components.trainer.distribution import Cluster, DistributionError
from lensflow.pipeline.config import ConfigError, LensflowConfig, load_config
from lensflow.pipeline.registry import DISTRIBUTIONS

GPUS = len(tf.config.list_physical_devices("GPU"))


def tf_config(cluster, task_type="worker", index=0):
    return {distribution.TF_CONFIG: json.dumps({"cluster": cluster,
                                                "task": {"type": task_type, "index": index}})}


def test_the_config_offers_the_registry_names_and_names_the_key_when_wrong():
    assert LensflowConfig().train.distribution == "auto"
    assert set(DISTRIBUTIONS) == {"auto", "none", "mirrored", "multi_worker"}
    for name in DISTRIBUTIONS:
        assert load_config(None, {"train.distribution": name}).train.distribution == name
    with pytest.raises(ConfigError, match=r"train\.distribution='tpu'.*multi_worker"):
        load_config(None, {"train.distribution": "tpu"})


def test_tf_config_of_a_tfjob_names_its_workers():
    assert distribution.cluster_from_env({}) is None
    assert distribution.cluster_from_env({distribution.TF_CONFIG: " "}) is None
    assert distribution.cluster_from_env({distribution.TF_CONFIG: '{"task": {}}'}) is None
    chief_and_workers = {"chief": ["a:2222"], "worker": ["b:2222", "c:2222"]}
    assert distribution.cluster_from_env(tf_config(chief_and_workers, "worker", 1)) == \
        Cluster(3, "worker", 1)
    assert distribution.cluster_from_env(tf_config({"worker": ["a:1"]})) == Cluster(1, "worker", 0)


@pytest.mark.parametrize("environ, message", [
    ({distribution.TF_CONFIG: "{cluster"}, "TF_CONFIG is not JSON"),
    (tf_config({"worker": ["a:1"], "ps": ["b:1"]}), "names ps tasks"),
    (tf_config({"worker": ["a:1", "b:1"]}, "worker", 2), "is not a task of its cluster"),
    (tf_config({"worker": ["a:1"]}, "evaluator", 0), "is not a task of its cluster"),
    (tf_config({"worker": "a:1"}), "expected task type -> list"),
])
def test_a_tf_config_lensflow_cannot_train_with_is_refused_naming_it(environ, message):
    with pytest.raises(DistributionError, match=message):
        distribution.cluster_from_env(environ)


@pytest.mark.parametrize("choice, cluster, gpus, expected", [
    ("auto", None, 0, "none"),
    ("auto", None, 1, "none"),
    ("auto", None, 4, "mirrored"),
    ("auto", Cluster(1, "worker", 0), 4, "mirrored"),
    ("auto", Cluster(2, "worker", 1), 0, "multi_worker"),
    ("auto", Cluster(3, "chief", 0), 8, "multi_worker"),
    ("none", None, 4, "none"),
    ("mirrored", None, 0, "mirrored"),
    ("multi_worker", Cluster(1, "worker", 0), 0, "multi_worker"),
])
def test_auto_picks_multi_worker_then_mirrored_then_none(choice, cluster, gpus, expected):
    assert distribution.resolve(choice, cluster, gpus) == expected


def test_impossible_choices_say_why():
    with pytest.raises(DistributionError, match="multi_worker needs TF_CONFIG"):
        distribution.resolve("multi_worker", None, 2)
    for choice in ("none", "mirrored"):
        with pytest.raises(DistributionError, match=f"train.distribution={choice} but TF_CONFIG "
                                                    "names 2 workers"):
            distribution.resolve(choice, Cluster(2, "worker", 0), 2)


def test_one_process_is_its_own_chief_and_writes_where_asked(tmp_path):
    strategy = distribution.strategy_for("auto", {})
    assert distribution.is_chief(strategy)
    assert distribution.describe(strategy, True).startswith(distribution.STRATEGY_LINE)
    distribution.barrier(strategy)
    target = str(tmp_path / "model")
    with distribution.write_dir(target, chief=True) as path:
        assert path == target


def test_another_worker_writes_to_a_temporary_folder_it_deletes(tmp_path):
    target = str(tmp_path / "model" / "Format-Serving")
    with distribution.write_dir(target, chief=False) as path:
        assert not path.startswith(str(tmp_path)) and path.endswith("Format-Serving")
        os.makedirs(path)
        open(os.path.join(path, "saved_model.pb"), "wb").close()
    assert not os.path.exists(os.path.dirname(path))
    assert not os.path.exists(target)


def test_the_tuner_mirrors_only_over_several_gpus():
    assert distribution.tuner_strategy("auto", gpus=1) is None
    assert distribution.tuner_strategy("multi_worker", gpus=0) is None
    assert distribution.tuner_strategy("none", gpus=8) is None
    assert isinstance(distribution.tuner_strategy("mirrored", gpus=GPUS),
                      tf.distribute.MirroredStrategy)


@pytest.mark.skipif(GPUS == 0, reason="no GPU here: MirroredStrategy over GPUs is not exercised")
def test_mirrored_replicates_over_every_gpu_and_trains_one_global_batch():
    strategy = distribution.strategy_for("mirrored", {})
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == GPUS
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,))])
        model.compile(tf.keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x[:, :3] * 2.0
    before = model.evaluate(x, y, batch_size=16 * GPUS, verbose=0)
    model.fit(x, y, batch_size=16 * GPUS, epochs=10, verbose=0)
    assert model.evaluate(x, y, batch_size=16 * GPUS, verbose=0) < before
    assert all("GPU" in v.device.upper() for v in model.weights[0].values)
