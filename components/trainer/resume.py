"""Resumable training: per-epoch backups kept outside the Trainer's output folders.

Every TFX execution writes to fresh output folders, so a killed Trainer would start again from
epoch 0. The backups live instead under ``train.resume_dir`` (default ``<home>/resume``) in a
folder named by a hash of what the Trainer trains from — the transformed examples and transform
graph (their URIs: a changed input is a new Transform execution, a new folder), the Trainer's
config slice and the Tuner's hyperparameters — so a new execution on the same inputs finds the
backups of the killed one. Each phase has its own Keras ``BackupAndRestore`` folder; beside them
``progress.json`` keeps the per-epoch history (the restored epochs are not in a resumed ``fit``'s
history) and the highest epoch ever begun (so the epochs run twice can be counted). The whole
folder is deleted once the model is exported.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Optional

import tensorflow as tf

from lensflow.pipeline.config import LensflowConfig
from lensflow.pipeline.registry import FAMILIES, family_of

EPOCH_LINE = "lensflow: training epoch"
PROGRESS_FILE = "progress.json"
RESUME_FILE = "resume.json"
_SAVED_EPOCH = "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"
_NOT_KEYED = (("home",), ("train", "resume"), ("train", "resume_dir"))


def total_epochs(cfg: LensflowConfig) -> int:
    """Epochs of both phases (the second only for a family with an unfreeze step)."""
    second = family_of(cfg.model.family).unfreeze and cfg.train.fine_tune_epochs > 0
    return cfg.train.epochs + (cfg.train.fine_tune_epochs if second else 0)


def backup_key(fn_args, cfg: LensflowConfig) -> str:
    """Hash of the Trainer's inputs and the settings that shape training (not where the
    backups live or whether resuming is on)."""
    settings = cfg.to_dict()
    for path in _NOT_KEYED:
        node = settings
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
    hyperparameters = getattr(fn_args, "hyperparameters", None)
    if hyperparameters is not None and not isinstance(hyperparameters, dict):
        hyperparameters = hyperparameters.values
    inputs = {"train_files": list(fn_args.train_files), "eval_files": list(fn_args.eval_files),
              "transform_output": fn_args.transform_output, "settings": settings,
              "hyperparameters": hyperparameters}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def backup_dir(fn_args, cfg: LensflowConfig) -> str:
    """Where this Trainer's backups live: stable across executions on the same inputs."""
    base = cfg.train.resume_dir or str(cfg.home_dir / "resume")
    return os.path.join(base, backup_key(fn_args, cfg)[:24])


def phase_dir(root: str, phase: int) -> str:
    """The ``BackupAndRestore`` folder of one phase."""
    return os.path.join(root, f"phase{phase}")


def next_epoch(directory: str) -> Optional[int]:
    """The epoch a ``BackupAndRestore`` backup in ``directory`` resumes at (the last finished
    epoch + 1), or None without a backup."""
    latest = tf.train.latest_checkpoint(os.path.join(directory, "chief"))
    if latest is None:
        return None
    return int(tf.train.load_checkpoint(latest).get_tensor(_SAVED_EPOCH)) + 1


def restore_weights(model, directory: str) -> None:
    """Load the model weights of a phase's last backup (the phase has finished)."""
    latest = tf.train.latest_checkpoint(os.path.join(directory, "chief"))
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()


class Progress(tf.keras.callbacks.Callback):
    """Per-epoch history across phases and attempts; with ``root``, saved to ``progress.json``
    at every epoch's start and end (by the ``writer``: the chief of a multi-worker cluster).

    Placed before ``BackupAndRestore`` in the callback list, so an epoch's logs are written
    before its backup: a kill in between re-runs that epoch, and ``begin`` drops the logs of
    every epoch at or after the one training resumes at."""

    def __init__(self, root: Optional[str], total_epochs: int, writer: bool = True):
        super().__init__()
        self.root = root
        self.writer = writer
        self.total_epochs = total_epochs
        self.state: Dict[str, Any] = {"epochs": [], "started": -1, "attempts": 0}
        if root and tf.io.gfile.exists(os.path.join(root, PROGRESS_FILE)):
            with tf.io.gfile.GFile(os.path.join(root, PROGRESS_FILE)) as fh:
                self.state = json.loads(fh.read())
        self.previously_started = self.state["started"]
        self.state["attempts"] += 1
        self.first_epoch: Optional[int] = None
        self.phase = 1
        self.expected: Optional[int] = None
        self.ran: List[int] = []

    def begin(self, phase: int, first_epoch: int) -> None:
        """A phase starts (or resumes) at ``first_epoch``: earlier epochs are restored."""
        self.phase, self.expected = phase, first_epoch
        if self.first_epoch is None:
            self.first_epoch = first_epoch
        self.state["epochs"] = [e for e in self.state["epochs"] if e["epoch"] < first_epoch]
        self._save()

    def on_epoch_begin(self, epoch, logs=None):
        if self.expected is not None and epoch != self.expected:
            raise RuntimeError(f"the backup in {self.root} resumed training at epoch {epoch + 1}, "
                               f"but its data stream starts at epoch {self.expected + 1}")
        self.expected = None
        self.state["started"] = max(self.state["started"], epoch)
        self.ran.append(epoch)
        self._save()
        # Keras prints no "Epoch i/n" line when a phase has one epoch: say it for every epoch.
        print(f"{EPOCH_LINE} {epoch + 1}/{self.total_epochs} (phase {self.phase})", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        self.state["epochs"].append({"epoch": epoch, "phase": self.phase,
                                     "logs": {k: float(v) for k, v in (logs or {}).items()}})
        self._save()

    def _save(self) -> None:
        if not self.root or not self.writer:
            return
        tf.io.gfile.makedirs(self.root)
        tmp = os.path.join(self.root, PROGRESS_FILE + ".tmp")
        with tf.io.gfile.GFile(tmp, "w") as fh:
            fh.write(json.dumps(self.state))
        tf.io.gfile.rename(tmp, os.path.join(self.root, PROGRESS_FILE), overwrite=True)

    def history(self) -> Dict[str, List[float]]:
        """Keras-style history of every epoch (restored ones included), with its ``phase``."""
        out: Dict[str, List[float]] = {}
        for entry in sorted(self.state["epochs"], key=lambda e: e["epoch"]):
            for key, value in entry["logs"].items():
                out.setdefault(key, []).append(value)
            out.setdefault("phase", []).append(entry["phase"])
        return out

    def record(self) -> Dict[str, Any]:
        """What ``resume.json`` says: epochs restored from backups (not re-run), epochs trained
        by this execution, and how many of those an earlier attempt had begun (re-run)."""
        restored = self.first_epoch if self.first_epoch is not None else self.total_epochs
        return {"resumed": restored > 0 or self.state["attempts"] > 1,
                "attempt": self.state["attempts"],
                "total_epochs": self.total_epochs,
                "restored_epochs": restored,
                "trained_epochs": len(self.ran),
                "rerun_epochs": sum(1 for e in self.ran if e <= self.previously_started),
                "backup_dir": self.root}


def write_record(model_run_dir: str, record: Dict[str, Any]) -> None:
    """``resume.json`` beside the training history."""
    with tf.io.gfile.GFile(os.path.join(model_run_dir, RESUME_FILE), "w") as fh:
        fh.write(json.dumps(record))


def read_record(model_run_uri: str) -> Optional[Dict[str, Any]]:
    """``resume.json`` of a Trainer's model run, or None (older runs have none)."""
    path = os.path.join(model_run_uri, RESUME_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as fh:
        return json.loads(fh.read())


def discard(root: Optional[str]) -> None:
    """Delete the backups after a successful finish."""
    if root and tf.io.gfile.exists(root):
        tf.io.gfile.rmtree(root)
