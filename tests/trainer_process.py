"""One TFX Trainer execution in its own process, as the local runner would launch it: TFX's
``GenericExecutor`` with lensflow's ``run_fn`` on a finished run's Transform outputs, writing to
fresh output folders. ``tests/test_resume.py`` kills it with a signal and starts it again.

Usage: ``python tests/trainer_process.py SPEC.json`` where the spec holds the input URIs
(``examples``, ``transform_graph``, ``schema``), the output folder ``out`` and ``config`` (the
Trainer's ``custom_config`` JSON). Op determinism is switched on so two executions on the same
batches give the same numbers.
"""
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from tfx import v1 as tfx  # noqa: E402
from tfx.components.trainer.executor import GenericExecutor  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from pipeline.config import CUSTOM_CONFIG_KEY  # noqa: E402
from pipeline.pipeline import RUN_FN  # noqa: E402


def artifact(kind, uri, **properties):
    out = kind()
    out.uri = uri
    for key, value in properties.items():
        setattr(out, key, value)
    return out


def main(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    tf.config.experimental.enable_op_determinism()
    inputs = {
        "examples": [artifact(standard_artifacts.Examples, spec["examples"],
                              split_names=spec["split_names"])],
        "transform_graph": [artifact(standard_artifacts.TransformGraph, spec["transform_graph"])],
        "schema": [artifact(standard_artifacts.Schema, spec["schema"])],
    }
    outputs = {"model": [artifact(standard_artifacts.Model, os.path.join(spec["out"], "model"))],
               "model_run": [artifact(standard_artifacts.ModelRun,
                                      os.path.join(spec["out"], "model_run"))]}
    properties = {
        "run_fn": RUN_FN,
        "train_args": proto_utils.proto_to_json(tfx.proto.TrainArgs(splits=["train"])),
        "eval_args": proto_utils.proto_to_json(tfx.proto.EvalArgs(splits=["eval"])),
        "custom_config": json.dumps({CUSTOM_CONFIG_KEY: spec["config"]}),
    }
    GenericExecutor().Do(inputs, outputs, properties)


if __name__ == "__main__":
    main(sys.argv[1])
