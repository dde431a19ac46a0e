"""RunReport: the pipeline writes its own run report, as artifacts the Kubeflow UI renders.

Runs after the Pusher and builds the same report as ``lensflow report`` (``build`` +
``render``), from its input artifacts instead of ML Metadata, so it works under LocalDagRunner
and inside a Kubeflow pod alike. Outputs (types in the ``system`` package):

- ``report`` (``system.HTML``): the self-contained HTML report;
- ``summary`` (``system.Markdown``): verdict, headline metrics, data counts;
- ``metrics`` (``system.Metrics``): headline numbers as custom properties (the KFP UI's
  "Scalar Metrics" table); its file holds them as JSON with what the push recorded.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Optional

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

import system
from lensflow.components.report import build, markdown, render, reuse, sources

log = logging.getLogger(__name__)

DISPLAY_NAMES = {"report": "lensflow run report", "summary": "run summary",
                 "metrics": "headline metrics"}


class RunReportSpec(ComponentSpec):
    """Inputs: what the report reads; parameters: the evaluated split and the image budget."""

    PARAMETERS = {"evaluation_split": ExecutionParameter(type=str),
                  "max_images": ExecutionParameter(type=int)}
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel, optional=True),
        "drift": ChannelParameter(type=standard_artifacts.ExampleAnomalies, optional=True),
    }
    OUTPUTS = {"report": ChannelParameter(type=system.HTML),
               "summary": ChannelParameter(type=system.Markdown),
               "metrics": ChannelParameter(type=system.Metrics)}


def headline(data: Dict[str, Any]) -> Dict[str, float]:
    """The numbers of the ``metrics`` artifact: accuracy, top-k, loss, examples, lowest class
    recall, calibration error, baseline accuracy, blessed (1/0), pushed (1/0)."""
    summary = data["summary"]
    overall = summary.get("metrics") or {}
    ev = data.get("evaluation") or {}
    recalls = [row["recall"] for row in ev.get("per_class", []) if row["recall"] is not None]
    values = {
        "accuracy": overall.get("sparse_categorical_accuracy"),
        "top_k_accuracy": overall.get("sparse_top_k_categorical_accuracy"),
        "loss": overall.get("sparse_categorical_crossentropy"),
        "examples": overall.get("example_count"),
        "min_class_recall": min(recalls) if recalls else None,
        "expected_calibration_error": (ev.get("calibration") or {}).get("ece"),
        "baseline_accuracy": overall.get("baseline/sparse_categorical_accuracy"),
        "blessed": None if data.get("blessed") is None else float(bool(data["blessed"])),
        "pushed": float(bool(data.get("pushed_model_dir"))),
    }
    return {key: float(value) for key, value in values.items() if value is not None}


def _write(outputs: Dict[str, types.Artifact], key: str, text: str) -> None:
    """Write an output's file (a ``system.*`` artifact is one file at its URI) and name it
    for the KFP UI, which shows only artifacts with a ``display_name``."""
    uri = outputs[key].uri
    if "://" not in uri:  # no folder markers on object stores (kubeflow/pipelines#13476)
        tf.io.gfile.makedirs(os.path.dirname(uri))
    with tf.io.gfile.GFile(uri, "w") as fh:
        fh.write(text)
    outputs[key].set_string_custom_property("display_name", DISPLAY_NAMES[key])


class Executor(base_executor.BaseExecutor):
    """Build the report from the input artifacts and write the three outputs."""

    def Do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        outputs = {key: output_dict[key][0] for key in ("report", "summary", "metrics")}
        run = sources.from_component(input_dict, self._run_id(outputs["report"].uri),
                                     exec_properties["evaluation_split"])
        data = build.collect_artifacts(run, max_images=int(exec_properties["max_images"]))
        if data["errors"]:
            log.warning("report sections unavailable: %s", data["errors"])
        _write(outputs, "report", render.render(data))
        reuse.save(reuse.path_beside(outputs["report"].uri), data)
        _write(outputs, "summary", markdown.summary(data))
        numbers = headline(data)
        _write(outputs, "metrics", json.dumps(
            {"metrics": numbers, "evaluation_split": data.get("evaluation_split"),
             "blessed": data.get("blessed"), "pushed_model_dir": data.get("pushed_model_dir"),
             "already_serving": data["summary"].get("already_serving", False),
             "errors": data["errors"]}, indent=2, sort_keys=True))
        for name, value in numbers.items():
            outputs["metrics"].set_float_custom_property(name, value)

    def _run_id(self, output_uri: str) -> str:
        """The pipeline run id (LocalDagRunner) or the Kubeflow run id in the output URI."""
        context_run = getattr(self._context, "pipeline_run_id", None) if self._context else None
        return context_run or sources.kfp_run_id(output_uri) or "unknown"


class RunReport(base_component.BaseComponent):
    """The run's HTML report, Markdown summary and headline metrics as output artifacts."""

    SPEC_CLASS = RunReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 model_run: types.BaseChannel, evaluation: types.BaseChannel,
                 blessing: types.BaseChannel, pushed_model: Optional[types.BaseChannel] = None,
                 drift: Optional[types.BaseChannel] = None,
                 evaluation_split: str = "test", max_images: int = build.MAX_IMAGES):
        spec = RunReportSpec(
            examples=examples, model=model, model_run=model_run, evaluation=evaluation,
            blessing=blessing, pushed_model=pushed_model, drift=drift,
            evaluation_split=evaluation_split,
            max_images=max_images, report=types.Channel(type=system.HTML),
            summary=types.Channel(type=system.Markdown),
            metrics=types.Channel(type=system.Metrics))
        super().__init__(spec=spec)
