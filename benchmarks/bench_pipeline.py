"""Benchmarks 1 and 2: ``lensflow run`` against a plain Keras script, and what the cache saves.

Both sides run as subprocesses (each pays its own imports and start-up, as a user would) on the
same image files with the same YAML config.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict, List

from lensflow.pipeline import summary as run_summary
from lensflow.pipeline.config import load_config

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM_OF_TRAINER = ("ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                       "DataGate", "Transform")
TRAINER_ONWARD = ("Trainer", "LensflowEvaluator", "LensflowPusher")


def _timed(cmd: List[str], log_path: str, ok_codes=(0,)) -> float:
    """Run ``cmd`` to completion, output to ``log_path``; wall seconds. Raises on an exit code
    outside ``ok_codes``."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    wall = time.perf_counter() - start
    if result.returncode not in ok_codes:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {result.returncode}); see {log_path}")
    return wall


def lensflow_run(config_path: str, work: str, tag: str, *extra: str) -> Dict:
    """One ``lensflow run``; its wall time and the run summary read back from ML Metadata."""
    summary_path = os.path.join(work, f"summary-{tag}.json")
    cmd = [os.path.join(os.path.dirname(sys.executable), "lensflow"), "run",
           "--config", config_path, "--summary-json", summary_path, *extra]
    # 3 is ``already_serving`` (pipeline.outcome): what an unchanged re-run ends with.
    wall = _timed(cmd, os.path.join(work, f"lensflow-{tag}.log"), ok_codes=(0, 3))
    with open(summary_path, encoding="utf-8") as fh:
        summary = json.load(fh)
    return {"wall_seconds": wall, "summary": summary}


def plain_keras(config_path: str, data: str, work: str) -> Dict:
    """The plain Keras script on the same files and config; it prints one JSON line."""
    log = os.path.join(work, "plain-keras.log")
    cmd = [sys.executable, os.path.join(HERE, "plain_keras.py"), "--data", data,
           "--config", config_path]
    wall = _timed(cmd, log)
    with open(log, encoding="utf-8") as fh:
        result = json.loads([line for line in fh if line.startswith("{")][-1])
    return {"wall_seconds": wall, **result}


def _accuracy(summary: Dict) -> float:
    return float((summary.get("metrics") or {}).get("accuracy", float("nan")))


def _states(summary: Dict) -> Dict[str, str]:
    return summary["executions"]


def overhead_and_cache(config_path: str, data: str, work: str) -> Dict:
    """Fresh run, plain script, unchanged re-run, training-only change (half the learning rate,
    one epoch: cheap even when the benchmarked config trains for long); ratios and checks."""
    cfg = load_config(config_path)
    first = lensflow_run(config_path, work, "first")
    plain = plain_keras(config_path, data, work)
    cached = lensflow_run(config_path, work, "cached")
    changed_lr = cfg.train.learning_rate * 0.5
    changed = lensflow_run(config_path, work, "train-change", "--learning-rate", str(changed_lr),
                           "--epochs", "1")
    states = _states(changed["summary"])
    reran = sorted(c for c, s in states.items() if s == "COMPLETE")
    cached_nodes = sorted(c for c, s in states.items() if s == "CACHED")
    only_trainer_onward = all(states.get(c) == "CACHED" for c in UPSTREAM_OF_TRAINER) and \
        all(states.get(c) == "COMPLETE" for c in TRAINER_ONWARD)
    stage_seconds = first["summary"].get("execution_seconds", {})
    return {
        "overhead": {
            "lensflow_wall_seconds": first["wall_seconds"],
            "plain_keras_wall_seconds": plain["wall_seconds"],
            "ratio": first["wall_seconds"] / plain["wall_seconds"],
            "target_ratio": 1.3,
            "lensflow_accuracy": _accuracy(first["summary"]),
            "lensflow_accuracy_split": first["summary"].get("evaluation_split"),
            "plain_keras_accuracy": plain["accuracy"],
            "stage_seconds": stage_seconds,
        },
        "cache": {
            "first_wall_seconds": first["wall_seconds"],
            "cached_wall_seconds": cached["wall_seconds"],
            "ratio": cached["wall_seconds"] / first["wall_seconds"],
            "target_ratio": 0.10,
            "cached_run_states": _states(cached["summary"]),
            "training_change": f"train.learning_rate {cfg.train.learning_rate} -> {changed_lr}, "
                               f"train.epochs {cfg.train.epochs} -> 1",
            "training_change_wall_seconds": changed["wall_seconds"],
            "training_change_reran": reran,
            "training_change_cached": cached_nodes,
            "only_trainer_onward_reran": only_trainer_onward,
        },
        "first_summary": first["summary"],
    }
