"""Read one finished run back for ``lensflow compare``: TFMA metrics, blessing, Trainer time,
parameter count and which components executed, all from ML Metadata and the artifacts."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import numpy as np
from ml_metadata.proto import metadata_store_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tfx.utils import path_utils

from lensflow.components.transform import features
from lensflow.pipeline import summary as run_summary
from lensflow.pipeline.compare.stats import recall_spread
from lensflow.pipeline.records import Record

ACCURACY = "sparse_categorical_accuracy"
_COMPLETE = metadata_store_pb2.Execution.COMPLETE
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def count_params(saved_model_dir: str) -> Optional[int]:
    """Weights of the Keras model (trainable and not, what ``model.count_params()`` counts), read
    from the SavedModel's object graph: the shapes of its root's ``variables`` list. No loading."""
    path = os.path.join(saved_model_dir, "saved_model.pb")
    if not os.path.exists(path):
        return None
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as fh:
        saved.ParseFromString(fh.read())
    graph = saved.meta_graphs[0].object_graph_def
    listing = next((c.node_id for c in graph.nodes[0].children if c.local_name == "variables"), None)
    if listing is None:
        return None
    shapes = [graph.nodes[child.node_id].variable.shape for child in graph.nodes[listing].children]
    return int(sum(np.prod([dim.size for dim in shape.dim], dtype=np.int64) for shape in shapes))


def class_recalls(metrics_by_slice: Dict[str, Dict[str, float]], names) -> Dict[str, Any]:
    """Top-1 recall per class name: TFMA's accuracy on the class's ``label`` slice (the images
    of class c, of which the share predicted c)."""
    return {name: metrics_by_slice.get(f"{features.LABEL_KEY}={name}", {}).get(ACCURACY)
            for name in names}


def producer_seconds(store, artifact_id: int) -> Optional[float]:
    """Wall seconds of the execution that produced an artifact (not of a cache hit reusing it)."""
    events = store.get_events_by_artifact_ids([artifact_id])
    ids = [e.execution_id for e in events if e.type in _OUTPUTS]
    for execution in store.get_executions_by_id(ids):
        if execution.last_known_state == _COMPLETE:
            return (execution.last_update_time_since_epoch
                    - execution.create_time_since_epoch) / 1000
    return None


def _trainer_seconds(metadata_path: str, run_id: str, summary: Dict[str, Any]) -> Optional[float]:
    store = run_summary.open_store(metadata_path)
    model = run_summary.run_artifacts(store, run_id)["artifacts"].get(("Trainer", "model"))
    seconds = producer_seconds(store, model.id) if model is not None else None
    return seconds if seconds is not None else summary.get("execution_seconds", {}).get("Trainer")


class RunRecord(Record):
    """Everything compare keeps of one run: its metrics on the evaluated split, per-class recall
    and its spread, blessing and push, which components executed, Trainer time, parameters."""

    variant: str
    seed: int
    run_id: str
    accuracy: Optional[float] = None
    top_k_accuracy: Optional[float] = None
    loss: Optional[float] = None
    example_count: Optional[float] = None
    evaluation_split: Optional[str] = None
    split_totals: Dict[str, int] = {}
    blessed: Optional[bool] = None
    failed_thresholds: List[Any] = []
    pushed_model_dir: Optional[str] = None
    executions: Dict[str, str] = {}
    trainer_cached: bool = False
    trainer_seconds: Optional[float] = None
    model_uri: Optional[str] = None
    recall: Dict[str, Optional[float]] = {}
    recall_min: Optional[float] = None
    recall_max: Optional[float] = None
    recall_min_class: Optional[str] = None
    recall_max_class: Optional[str] = None
    params: Optional[int] = None


def run_record(metadata_path: str, variant: str, seed: int,
               run_id: Optional[str] = None) -> RunRecord:
    """Everything compare keeps of one run (default: the newest run in the store)."""
    from lensflow.components.evaluator.component import class_names_of

    summary = run_summary.summarise(metadata_path, run_id)
    metrics = summary.get("metrics") or {}
    record: Dict[str, Any] = {
        "variant": variant, "seed": seed, "run_id": summary["run_id"],
        "accuracy": metrics.get("accuracy"),
        "top_k_accuracy": metrics.get("sparse_top_k_categorical_accuracy"),
        "loss": metrics.get("sparse_categorical_crossentropy"),
        "example_count": metrics.get("example_count"),
        "evaluation_split": summary.get("evaluation_split"),
        "split_totals": {s: e["total"] for s, e in summary.get("splits", {}).items()},
        "blessed": summary.get("blessed"),
        "failed_thresholds": summary.get("failed_thresholds", []),
        "pushed_model_dir": summary.get("pushed_model_dir"),
        "executions": summary.get("executions", {}),
        "trainer_cached": summary.get("executions", {}).get("Trainer") == "CACHED",
        "trainer_seconds": _trainer_seconds(metadata_path, summary["run_id"], summary),
        "model_uri": summary.get("model_uri"),
    }
    names = class_names_of(summary["model_uri"]) if summary.get("model_uri") else []
    record["recall"] = class_recalls(summary.get("metrics_by_slice") or {}, names)
    record.update(recall_spread(record["recall"]))
    record["params"] = count_params(path_utils.serving_model_path(summary["model_uri"])) \
        if summary.get("model_uri") else None
    return RunRecord(**record)
