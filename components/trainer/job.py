"""One TFX Trainer execution outside an orchestrator: what every replica of a multi-worker TFJob
runs (``kubeflow/training/``), and what the tests start as a process.

``python -m lensflow.components.trainer.job SPEC`` (a JSON file, or the JSON itself) runs TFX's Trainer
executor with lensflow's ``run_fn`` on a finished run's artifacts. The spec holds the input URIs
(``examples`` and its ``split_names``, ``transform_graph``, ``schema``), the output URIs
(``model``, ``model_run``) and ``config``: the Trainer's config as JSON (the pipeline's Trainer
slice, or a whole lensflow config). Every replica gets the same spec; ``train.distribution`` and
the ``TF_CONFIG`` the Training Operator sets make them one training cluster whose chief writes
the model (``distribution``), so the outputs must be on a store all replicas share (``gs://``,
``s3://``, a shared volume).
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict

from tfx.components.trainer.executor import GenericExecutor
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from lensflow.pipeline import object_store
from lensflow.pipeline.config import CUSTOM_CONFIG_KEY, ComponentConfig

RUN_FN = "lensflow.components.trainer.run.run_fn"
INPUT_KEYS = ("examples", "split_names", "transform_graph", "schema")
OUTPUT_KEYS = ("model", "model_run")
URI_KEYS = ("examples", "transform_graph", "schema") + OUTPUT_KEYS


class JobSpecError(ValueError):
    """The job spec is incomplete or malformed; the message names the key."""


def load_spec(text_or_path: str) -> Dict[str, Any]:
    """The spec from a JSON file or JSON text, checked: every URI present, the config valid."""
    text = text_or_path
    if not text_or_path.lstrip().startswith("{"):
        with open(text_or_path, encoding="utf-8") as fh:
            text = fh.read()
    try:
        spec = json.loads(text)
    except ValueError as err:
        raise JobSpecError(f"job spec is not JSON: {err}") from None
    missing = [key for key in INPUT_KEYS + OUTPUT_KEYS + ("config",) if not spec.get(key)]
    if missing:
        raise JobSpecError(f"job spec lacks {', '.join(missing)}")
    config = spec["config"]
    ComponentConfig.from_json(config, "Trainer") if isinstance(config, str) else \
        ComponentConfig(config, "Trainer")
    return spec


def _artifact(kind, uri, **properties):
    out = kind()
    out.uri = uri
    for key, value in properties.items():
        setattr(out, key, value)
    return out


def execute(spec: Dict[str, Any]) -> None:
    """TFX's ``GenericExecutor`` with lensflow's ``run_fn``, as a Trainer task runs it."""
    if any(object_store.uses_s3(spec[key]) for key in URI_KEYS):
        object_store.register_s3()
    config = spec["config"] if isinstance(spec["config"], str) else json.dumps(spec["config"])
    inputs = {
        "examples": [_artifact(standard_artifacts.Examples, spec["examples"],
                               split_names=spec["split_names"])],
        "transform_graph": [_artifact(standard_artifacts.TransformGraph, spec["transform_graph"])],
        "schema": [_artifact(standard_artifacts.Schema, spec["schema"])],
    }
    outputs = {"model": [_artifact(standard_artifacts.Model, spec["model"])],
               "model_run": [_artifact(standard_artifacts.ModelRun, spec["model_run"])]}
    properties = {
        "run_fn": RUN_FN,
        "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
        "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
        "custom_config": json.dumps({CUSTOM_CONFIG_KEY: config}),
    }
    GenericExecutor().Do(inputs, outputs, properties)


def main(argv) -> int:
    if len(argv) != 2:
        print("usage: python -m lensflow.components.trainer.job SPEC.json|'<json>'", file=sys.stderr)
        return 2
    spec = load_spec(argv[1])
    execute(spec)
    if any(object_store.uses_s3(spec[key]) for key in OUTPUT_KEYS):
        object_store.exit_now(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
