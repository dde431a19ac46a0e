"""A Trainer killed mid-training resumes at its last finished epoch and ends where an
uninterrupted Trainer ends.

Each execution is a real process (``tests/trainer_process.py``: TFX's Trainer executor with
lensflow's ``run_fn``, fresh output folders like a new pipeline run) on the shared e2e run's
Transform outputs, training the two-phase ``transfer`` family for 1 frozen + 2 fine-tuning epochs.
It is killed with SIGKILL once epoch 2 has begun (the first fine-tuning epoch: phase 1's backup
must be restored, not re-run), started again and killed once epoch 3 has begun (phase 2's own
backup must be restored mid-phase), then started a third time to the end.

Tolerance: the resumed run sees the same batches in every epoch (``data.epoch_stream`` keys the
shuffle to the epoch), restores float32 weights and optimiser state exactly from the backup, has no
dropout or augmentation (their random draws are not keyed to the epoch), and both processes run
with op determinism, so the two runs should agree to float32 rounding; 1e-5 absolute on weights and
per-epoch metrics allows for that and nothing more.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from lensflow.components.trainer import resume
from lensflow.pipeline import summary
from lensflow.pipeline.config import REPO_ROOT, load_config
from lensflow.pipeline.pipeline import TRAINER_KEYS

TOLERANCE = 1e-5
HANG_GUARD_SECONDS = 900
TRAINER = {"model.family": "transfer", "model.weights": None, "model.backbone_input_size": 32,
           "model.fine_tune_layers": 10, "model.dropout": 0.0, "augment.preset": "none",
           "train.epochs": 1, "train.fine_tune_epochs": 2, "train.batch_size": 64}


def transform_outputs(e2e):
    found = summary.run_artifacts(summary.open_store(e2e.config.metadata_path))["artifacts"]
    examples = found[("Transform", "transformed_examples")]
    return {"examples": examples.uri, "split_names": examples.properties["split_names"].string_value,
            "transform_graph": found[("Transform", "transform_graph")].uri,
            "schema": found[("DataGate", "validated_schema")].uri}


def start(inputs, out, cfg):
    os.makedirs(out)
    spec = os.path.join(out, "spec.json")
    with open(spec, "w", encoding="utf-8") as fh:
        json.dump({**inputs, "out": out, "config": cfg.to_json(TRAINER_KEYS)}, fh)
    log = open(os.path.join(out, "log.txt"), "w", encoding="utf-8")
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "trainer_process.py"), spec],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT))


def log_of(out):
    with open(os.path.join(out, "log.txt"), encoding="utf-8") as fh:
        return fh.read()


def started_epoch(resume_dir):
    """Highest epoch (0-based) begun, from the one backup folder's progress.json."""
    folders = os.listdir(resume_dir) if os.path.isdir(resume_dir) else []
    path = os.path.join(resume_dir, folders[0], resume.PROGRESS_FILE) if folders else ""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)["started"]
    except (OSError, ValueError):
        return -1


def kill_once_begun(process, resume_dir, epoch, out):
    """SIGKILL the Trainer as soon as it has begun ``epoch`` (0-based)."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while started_epoch(resume_dir) < epoch:
        if process.poll() is not None:
            pytest.fail(f"the Trainer ended before epoch {epoch + 1}:\n{log_of(out)[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no epoch {epoch + 1} after {HANG_GUARD_SECONDS}s:\n{log_of(out)[-3000:]}")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def finish(process, out):
    try:
        code = process.wait(timeout=HANG_GUARD_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the Trainer did not finish:\n{log_of(out)[-3000:]}")
    assert code == 0, log_of(out)[-3000:]


def epochs_run(out):
    """The epochs the Trainer began in this process ("lensflow: training epoch 2/3" -> 2)."""
    return [int(n) for n in re.findall(re.escape(resume.EPOCH_LINE) + r" (\d+)/\d+", log_of(out))]


def exported_weights(out):
    reader = tf.train.load_checkpoint(os.path.join(out, "model", "Format-Serving", "variables",
                                                   "variables"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("variables/")}


def test_a_killed_trainer_resumes_and_matches_an_uninterrupted_one(e2e, tmp_path):
    inputs = transform_outputs(e2e)
    resume_dir = str(tmp_path / "backups")
    cfg = load_config(None, {"home": e2e.home, **TRAINER, "train.resume_dir": resume_dir})
    straight_dir = str(tmp_path / "straight_backups")
    straight_cfg = cfg.replace(**{"train.resume": False, "train.resume_dir": straight_dir})
    straight = start(inputs, str(tmp_path / "straight"), straight_cfg)

    first = start(inputs, str(tmp_path / "first"), cfg)
    kill_once_begun(first, resume_dir, 1, str(tmp_path / "first"))
    (backup,) = [os.path.join(resume_dir, name) for name in os.listdir(resume_dir)]
    assert resume.next_epoch(resume.phase_dir(backup, 1)) == 1
    assert resume.next_epoch(resume.phase_dir(backup, 2)) is None

    second = start(inputs, str(tmp_path / "second"), cfg)
    kill_once_begun(second, resume_dir, 2, str(tmp_path / "second"))
    assert resume.next_epoch(resume.phase_dir(backup, 2)) == 2
    assert 1 not in epochs_run(str(tmp_path / "second")), "phase 1 ran again"

    third = start(inputs, str(tmp_path / "third"), cfg)
    finish(third, str(tmp_path / "third"))
    finish(straight, str(tmp_path / "straight"))

    assert epochs_run(str(tmp_path / "third")) == [3]
    assert epochs_run(str(tmp_path / "straight")) == [1, 2, 3]
    record = resume.read_record(str(tmp_path / "third" / "model_run"))
    assert record == {"resumed": True, "attempt": 3, "total_epochs": 3, "restored_epochs": 2,
                      "trained_epochs": 1, "rerun_epochs": 1, "backup_dir": backup}
    assert "2 restored from the backup, 1 trained, 1 re-run" in summary.training_line(record)
    assert not os.path.exists(backup), "backups stay after a successful finish"
    straight_record = resume.read_record(str(tmp_path / "straight" / "model_run"))
    assert straight_record["resumed"] is False and straight_record["trained_epochs"] == 3
    assert not os.path.exists(straight_dir), "train.resume=false still wrote backups"

    histories = []
    for name in ("third", "straight"):
        with open(tmp_path / name / "model_run" / "history.json", encoding="utf-8") as fh:
            histories.append(json.load(fh))
    resumed, uninterrupted = histories
    assert resumed["phase"] == uninterrupted["phase"] == [1, 2, 2]
    assert set(resumed) == set(uninterrupted) and "val_accuracy" in resumed
    for key in uninterrupted:
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=0, atol=TOLERANCE,
                                   err_msg=key)

    weights, reference = exported_weights(str(tmp_path / "third")), \
        exported_weights(str(tmp_path / "straight"))
    assert weights.keys() == reference.keys() and len(weights) > 10
    worst = max(float(np.max(np.abs(weights[k] - reference[k]))) for k in weights)
    assert worst <= TOLERANCE, f"largest weight difference {worst}"
