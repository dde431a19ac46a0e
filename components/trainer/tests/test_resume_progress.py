"""The bookkeeping of resumable training: which epochs a new attempt keeps, re-runs and reports,
and where the backups of a Trainer's inputs live."""
import json
from types import SimpleNamespace

import pytest

from lensflow.components.trainer import resume
from lensflow.pipeline.config import load_config
from lensflow.pipeline.summary import training_line


def attempt(root, total, first_epoch, epochs, phase=1, finished=True):
    """One Trainer attempt through the callback hooks Keras calls: begins ``epochs`` and ends
    them (the last only if ``finished``)."""
    progress = resume.Progress(root, total)
    progress.begin(phase, first_epoch)
    for epoch in epochs:
        progress.on_epoch_begin(epoch)
        if finished or epoch != epochs[-1]:
            progress.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "accuracy": 0.1 * epoch})
    return progress


def test_a_resumed_attempt_keeps_finished_epochs_and_counts_the_rerun_one(tmp_path):
    root = str(tmp_path / "backup")
    attempt(root, 3, 0, [0, 1], finished=False)  # killed during epoch 2
    # epoch 2's logs were written, then the kill came before its backup: it starts again at 1
    progress = attempt(root, 3, 1, [1, 2])
    assert progress.history()["loss"] == [1.0, 0.5, 1.0 / 3]
    assert progress.history()["phase"] == [1, 1, 1]
    record = progress.record()
    assert (record["attempt"], record["restored_epochs"], record["trained_epochs"],
            record["rerun_epochs"]) == (2, 1, 2, 1)
    assert "1 restored from the backup, 2 trained, 1 re-run" in training_line(record)


def test_logs_of_an_epoch_whose_backup_was_not_written_are_dropped(tmp_path):
    root = str(tmp_path / "backup")
    attempt(root, 2, 0, [0, 1])  # both epochs logged
    progress = attempt(root, 2, 1, [1])  # but only epoch 1's backup existed
    assert len(progress.history()["loss"]) == 2
    with open(tmp_path / "backup" / resume.PROGRESS_FILE, encoding="utf-8") as fh:
        assert [e["epoch"] for e in json.load(fh)["epochs"]] == [0, 1]


def test_an_uninterrupted_attempt_is_reported_as_not_resumed(tmp_path):
    record = attempt(str(tmp_path / "backup"), 2, 0, [0, 1]).record()
    assert not record["resumed"] and record["rerun_epochs"] == 0
    assert training_line(record) == "training: 2 epochs, not resumed"


def test_a_backup_that_resumes_elsewhere_than_the_data_stream_stops_training(tmp_path):
    progress = resume.Progress(str(tmp_path / "backup"), 3)
    progress.begin(1, 1)
    with pytest.raises(RuntimeError, match="resumed training at epoch 3, but its data stream "
                                           "starts at epoch 2"):
        progress.on_epoch_begin(2)


def fn_args(examples="/p/Transform/transformed_examples/7"):
    return SimpleNamespace(train_files=[f"{examples}/Split-train/*"],
                           eval_files=[f"{examples}/Split-eval/*"],
                           transform_output="/p/Transform/transform_graph/7", hyperparameters=None)


def test_backups_are_keyed_by_the_trainers_inputs_not_by_where_they_live(tmp_path):
    cfg = load_config(None, {"home": str(tmp_path)})
    here = resume.backup_dir(fn_args(), cfg)
    assert here.startswith(str(tmp_path / "resume"))
    moved = cfg.replace(**{"train.resume_dir": "/elsewhere"})
    assert resume.backup_dir(fn_args(), moved) == "/elsewhere/" + here.rsplit("/", 1)[1]
    assert resume.backup_dir(fn_args(), cfg.replace(**{"train.seed": 7})) != here
    assert resume.backup_dir(fn_args(), cfg.replace(**{"train.epochs": 4})) != here
    assert resume.backup_dir(fn_args("/p/Transform/transformed_examples/8"), cfg) != here
