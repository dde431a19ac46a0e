"""Two Trainer processes on loopback train one model with MultiWorkerMirroredStrategy, and the
exported model behaves as the one a single process trains.

Each worker is a real process (``tests/trainer_process.py``: TFX's Trainer executor with lensflow's
``run_fn``) on the shared e2e run's Transform outputs, given the same output folders as the
Training Operator gives the replicas of a TFJob, with its own ``TF_CONFIG`` naming both workers on
free loopback ports; the collectives run over gRPC on the CPU. A third process trains alone
(``train.distribution: none``, no TF_CONFIG) as the reference.

Tolerance: both runs see the same global batches (the input is sharded by element, each worker
keeping half of every global batch of the same seeded stream), start from the same initial
weights (worker 0 broadcasts its seeded ones) and have no dropout or augmentation; what differs
is the order of float32 additions (each worker's half-batch mean, then an all-reduce, against
one mean over the whole batch). Over 8 Adam steps that left weight differences of 1.5e-7 and
metric differences of 3e-7 here; 1e-5 absolute on weights, per-epoch metrics and served
probabilities allows for that, while training on other batches moves weights by about the
learning rate, 1e-3, per step.
"""
import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer import distribution
from lensflow.components.transform import features
from lensflow.pipeline import summary
from lensflow.pipeline.config import REPO_ROOT, load_config
from lensflow.pipeline.pipeline import TRAINER_KEYS
from tests.test_resume import transform_outputs

TOLERANCE = 1e-5
HANG_GUARD_SECONDS = 600
TRAINER = {"model.family": "baseline_cnn", "model.dropout": 0.0, "augment.preset": "none",
           "train.epochs": 2, "train.steps_per_epoch": 4, "train.batch_size": 32}


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start(spec_path, log_path, tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != distribution.TF_CONFIG}
    if tf_config is not None:
        env[distribution.TF_CONFIG] = json.dumps(tf_config)
    log = open(log_path, "w", encoding="utf-8")
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "trainer_process.py"),
                             spec_path], stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=str(REPO_ROOT))


def write_spec(inputs, out, cfg):
    os.makedirs(out)
    path = os.path.join(out, "spec.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({**inputs, "out": out, "config": cfg.to_json(TRAINER_KEYS)}, fh)
    return path


def finish(processes, logs):
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=HANG_GUARD_SECONDS))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            codes.append(None)
    text = {log: open(log, encoding="utf-8").read() for log in logs}
    assert codes == [0] * len(processes), \
        "\n\n".join(f"{log} exited {code}:\n{text[log][-3000:]}" for log, code in zip(logs, codes))
    return text


def strategy_lines(log_text):
    return [line for line in log_text.splitlines() if line.startswith(distribution.STRATEGY_LINE)]


def exported_weights(out):
    """The model's weights in the exported SavedModel (not the optimiser's or metrics')."""
    reader = tf.train.load_checkpoint(os.path.join(out, "model", "Format-Serving", "variables",
                                                   "variables"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("layer_with_weights-")}


def served_probabilities(model_dir, serialized):
    signature = tf.saved_model.load(model_dir).signatures["serving_examples"]
    outputs = signature(**{features.SERVING_EXAMPLES_INPUT: tf.constant(serialized)})
    return outputs[features.PROBABILITIES].numpy()


def eval_examples(e2e, count=64):
    found = summary.run_artifacts(summary.open_store(e2e.config.metadata_path))["artifacts"]
    files = sorted(glob.glob(os.path.join(found[("ImageExampleGen", "examples")].uri,
                                          "Split-eval", "*")))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return [record.numpy() for record in records]


def test_two_workers_train_the_model_one_process_trains(e2e, tmp_path):
    inputs = transform_outputs(e2e)
    cfg = load_config(None, {"home": e2e.home, **TRAINER,
                             "train.resume_dir": str(tmp_path / "backups")})
    pair_spec = write_spec(inputs, str(tmp_path / "pair"), cfg.replace(
        **{"train.distribution": "multi_worker"}))
    alone_spec = write_spec(inputs, str(tmp_path / "alone"), cfg.replace(
        **{"train.distribution": "none", "train.resume": False}))
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    logs = [str(tmp_path / f"worker{i}.txt") for i in range(2)] + [str(tmp_path / "alone.txt")]
    processes = [start(pair_spec, logs[i], {"cluster": {"worker": hosts},
                                            "task": {"type": "worker", "index": i}})
                 for i in range(2)]
    processes.append(start(alone_spec, logs[2]))
    text = finish(processes, logs)

    assert strategy_lines(text[logs[0]]) == [
        f"{distribution.STRATEGY_LINE} MultiWorkerMirroredStrategy, 2 replica(s) in sync; "
        "task worker 0 (chief: writes the model)"]
    assert strategy_lines(text[logs[1]]) == [
        f"{distribution.STRATEGY_LINE} MultiWorkerMirroredStrategy, 2 replica(s) in sync; "
        "task worker 1 (exports to a temporary folder)"]
    assert strategy_lines(text[logs[2]]) == [
        f"{distribution.STRATEGY_LINE} the default strategy, 1 replica(s) in sync"]

    pair, alone = tmp_path / "pair", tmp_path / "alone"
    assert sorted(os.listdir(pair / "model")) == ["Format-Serving"], "a worker left files"
    assert not [name for name in os.listdir(pair / "model_run") if "workertemp" in name]
    backups = tmp_path / "backups"
    assert not backups.exists() or not os.listdir(backups), "backups stay after the finish"

    histories = [json.loads((run / "model_run" / "history.json").read_text())
                 for run in (pair, alone)]
    assert set(histories[0]) == set(histories[1]) and len(histories[0]["loss"]) == 2
    for key in histories[1]:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=0, atol=TOLERANCE,
                                   err_msg=key)

    weights, reference = exported_weights(str(pair)), exported_weights(str(alone))
    assert weights.keys() == reference.keys() and len(weights) == 8  # 4 layers: kernel, bias
    worst = max(float(np.max(np.abs(weights[k] - reference[k]))) for k in weights)
    assert worst <= TOLERANCE, f"largest weight difference {worst}"

    examples = eval_examples(e2e)
    served = served_probabilities(str(pair / "model" / "Format-Serving"), examples)
    expected = served_probabilities(str(alone / "model" / "Format-Serving"), examples)
    assert served.shape[0] == len(examples) == 64
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(served, expected, rtol=0, atol=TOLERANCE)
    assert (served.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.98
