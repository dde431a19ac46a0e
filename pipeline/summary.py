"""What a run did, read back from ML Metadata and the artifacts it points to."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from lensflow.pipeline.records import Record

RUN_CONTEXT = "pipeline_run"
_HEADLINE = (("accuracy", "accuracy"), ("sparse_top_k_categorical_accuracy", "top-k accuracy"),
             ("sparse_categorical_crossentropy", "loss"), ("example_count", "examples"))
log = logging.getLogger(__name__)
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT,
                  metadata_store_pb2.Event.PENDING_OUTPUT)


class Outcome(Record):
    """How the run ended (``lensflow.pipeline.outcome``): its name, exit code and reasons."""

    name: str
    exit_code: int
    reasons: List[str] = []


class RunSummary(Record):
    """The run summary: what ``--summary-json`` writes and the CLI, report, compare and tests
    read. Every field but ``run_id`` is set only when the run produced it."""

    run_id: str
    executions: Dict[str, str] = {}
    execution_seconds: Dict[str, Optional[float]] = {}
    found: Optional[int] = None
    ingested: Optional[int] = None
    rejected: List[Dict[str, Any]] = []
    ignored: List[Any] = []
    splits: Dict[str, Dict[str, Any]] = {}
    classes: List[str] = []
    warnings: List[Any] = []
    duplicates: Optional[Dict[str, Any]] = None
    examples_uri: Optional[str] = None
    drift: Optional[Dict[str, Any]] = None
    evaluation_uri: Optional[str] = None
    evaluation_split: Optional[str] = None
    metrics: Dict[str, Any] = {}
    metrics_by_slice: Dict[str, Dict[str, Any]] = {}
    failed_thresholds: List[Any] = []
    blessed: Optional[bool] = None
    serving_check: Optional[Dict[str, Any]] = None
    pushed_model_dir: Optional[str] = None
    push_unknown: Optional[bool] = None
    already_serving: Optional[bool] = None
    model_uri: Optional[str] = None
    model_run_uri: Optional[str] = None
    training: Optional[Dict[str, Any]] = None
    model_choice: Optional[Dict[str, Any]] = None
    report_uri: Optional[str] = None
    outcome: Optional[Outcome] = None
    report_path: Optional[str] = None


class RunNotFound(LookupError):
    """No run of that id (or no run at all) in the metadata store."""


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    """Read the SQLite ML Metadata store of a lensflow home."""
    if not os.path.exists(metadata_path):
        raise RunNotFound(f"no metadata store at {metadata_path}: run the pipeline first")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def run_ids(store) -> List[str]:
    """Run ids, oldest first."""
    contexts = store.get_contexts_by_type(RUN_CONTEXT)
    return [c.name for c in sorted(contexts, key=lambda c: (c.create_time_since_epoch, c.id))]


def run_artifacts(store, run_id: Optional[str] = None) -> Dict[str, Any]:
    """``{run_id, artifacts: {(component, output_key): Artifact}, executions: {component: state},
    properties: {component: {exec property: value}}, seconds: {component: wall seconds}}``.

    Wall seconds run from the execution's registration to its last update (for a cached
    component, the cache lookup)."""
    ids = run_ids(store)
    if not ids:
        raise RunNotFound("no pipeline run recorded yet")
    run_id = ids[-1] if run_id in (None, "latest") else run_id
    context = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
    if context is None:
        raise RunNotFound(f"no run {run_id!r}; known runs: {', '.join(ids[-5:])}")
    executions = store.get_executions_by_context(context.id)
    types = {t.id: t.name.rsplit(".", 1)[-1]
             for t in store.get_execution_types_by_id(list({e.type_id for e in executions}))}
    by_id = {e.id: e for e in executions}
    states = {types[e.type_id]: metadata_store_pb2.Execution.State.Name(e.last_known_state)
              for e in executions}
    properties = {types[e.type_id]: {k: v.string_value for k, v in e.custom_properties.items()}
                  for e in executions}
    seconds = {types[e.type_id]: (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
               for e in executions}
    artifacts: Dict[tuple, Any] = {}
    events = store.get_events_by_execution_ids(list(by_id))
    wanted = [e for e in events if e.type in _OUTPUT_EVENTS]
    found = {a.id: a for a in store.get_artifacts_by_id(list({e.artifact_id for e in wanted}))}
    for event in wanted:
        key = event.path.steps[0].key if event.path.steps else ""
        artifacts[(types[by_id[event.execution_id].type_id], key)] = found[event.artifact_id]
    return {"run_id": run_id, "artifacts": artifacts, "executions": states,
            "properties": properties, "seconds": seconds}


def _by_key(artifacts, output_key: str):
    for (node, key), artifact in artifacts.items():
        if key == output_key:
            return artifact
    return None


def _evaluated_split(properties: Dict[str, Dict[str, str]]) -> Optional[str]:
    """The split the Evaluator evaluated, from its ``example_splits`` exec property."""
    for component, props in properties.items():
        if component.endswith("Evaluator") and props.get("example_splits"):
            splits = json.loads(props["example_splits"])
            return splits[0] if splits else None
    return None


def serving_check_of(artifact) -> Optional[Dict[str, Any]]:
    """The serving check's verdict (``components/serving_check``) from its InfraBlessing (an ML
    Metadata or a TFX artifact), or None when it did not run."""
    artifact = getattr(artifact, "mlmd_artifact", artifact)
    if artifact is None or "blessed" not in artifact.custom_properties:
        return None
    props = artifact.custom_properties
    out = {"passed": bool(props["blessed"].int_value),
           "server": props["server"].string_value if "server" in props else "",
           "reason": props["reason"].string_value if "reason" in props else ""}
    try:
        with open(os.path.join(artifact.uri, "serving_check.json"), encoding="utf-8") as fh:
            detail = json.load(fh)
        out.update({k: detail[k] for k in ("seconds", "load_seconds", "answered",
                                           "warmup_requests") if k in detail})
    except (OSError, ValueError):
        pass
    return out


@dataclass
class RunArtifacts:
    """Where one run's artifacts are and what their metadata says, wherever that was read:
    ML Metadata (local runs), the report component's inputs, or a Kubeflow run's bucket."""

    run_id: str
    examples_uri: Optional[str] = None
    evaluation_uri: Optional[str] = None
    model_uri: Optional[str] = None
    model_run_uri: Optional[str] = None
    evaluation_split: Optional[str] = None
    blessed: Optional[bool] = None
    pushed_model_dir: Optional[str] = None
    already_serving: bool = False
    push_known: bool = True
    report_uri: Optional[str] = None
    serving_check: Optional[Dict[str, Any]] = None
    executions: Dict[str, str] = field(default_factory=dict)
    execution_seconds: Dict[str, float] = field(default_factory=dict)
    data_stop_reasons: Optional[List[str]] = None
    drift_uri: Optional[str] = None


def custom_value(artifact, key: str) -> Any:
    """A custom property of an ML Metadata artifact or a TFX artifact, or None. (Under
    Kubeflow the values reach TFX as struct values; TFX's getter decodes them.)"""
    if hasattr(artifact, "get_custom_property"):
        return artifact.get_custom_property(key) if artifact.has_custom_property(key) else None
    value = artifact.custom_properties.get(key)
    return None if value is None else getattr(value, value.WhichOneof("value"))


def apply_blessing(run: RunArtifacts, blessing) -> None:
    """``run.blessed`` from a ModelBlessing artifact's ``blessed`` property."""
    run.blessed = bool(custom_value(blessing, "blessed"))


def apply_push(run: RunArtifacts, pushed) -> None:
    """``run.pushed_model_dir`` (None if not pushed) and ``already_serving`` from a
    PushedModel artifact."""
    if custom_value(pushed, "pushed"):
        run.pushed_model_dir = custom_value(pushed, "pushed_destination")
        run.already_serving = bool(custom_value(pushed, "already_serving"))


def from_store(metadata_path: str, run_id: Optional[str] = None) -> RunArtifacts:
    """The artifacts of one run recorded in a local ML Metadata store."""
    store = open_store(metadata_path)
    found = run_artifacts(store, run_id)
    arts = found["artifacts"]
    run = RunArtifacts(found["run_id"], executions=found["executions"],
                       execution_seconds=found["seconds"],
                       evaluation_split=_evaluated_split(found["properties"]))
    for key in ("examples", "evaluation", "model", "model_run", "drift"):
        artifact = _by_key(arts, key)
        if artifact is not None:
            setattr(run, f"{key}_uri", artifact.uri)
    if ("RunReport", "report") in arts:
        run.report_uri = arts[("RunReport", "report")].uri
    if _by_key(arts, "blessing") is not None:
        apply_blessing(run, _by_key(arts, "blessing"))
    if _by_key(arts, "pushed_model") is not None:
        apply_push(run, _by_key(arts, "pushed_model"))
    run.serving_check = serving_check_of(_by_key(arts, "infra_blessing"))
    if found["executions"].get("DataGate") == "FAILED":
        run.data_stop_reasons = _data_stop_reasons(store, arts)
    return run


def _data_stop_reasons(store, arts) -> Optional[List[str]]:
    """Why the data gate stopped the run, recomputed by the gate's own rule from the statistics,
    schema, anomalies and drift verdict it read (a failed step keeps no outputs); None when they
    cannot be read, so the run counts as failed rather than stopped."""
    from tfx.types import artifact_utils

    from lensflow.components.data_validation import gate

    inputs = [arts.get(("StatisticsGen", "statistics")), arts.get(("ExampleValidator", "anomalies")),
              arts.get(("ImportSchemaGen", "schema"))]
    if None in inputs:
        return None
    drift = arts.get(("DriftCheck", "drift"))
    inputs += [drift] if drift is not None else []
    types = {t.id: t for t in store.get_artifact_types_by_id([a.type_id for a in inputs])}
    statistics, anomalies, schema, *drift_found = (
        artifact_utils.deserialize_artifact(types[a.type_id], a) for a in inputs)
    try:
        return gate.stop_reasons(statistics, anomalies, schema,
                                 drift_found[0] if drift_found else None) or None
    except Exception as err:  # noqa: BLE001 - unreadable inputs: a failure, not a data stop
        log.warning("cannot read the data gate's inputs: %s", err)
        return None


def summarise(metadata_path: str, run_id: Optional[str] = None) -> RunSummary:
    """The machine-readable run summary (also what ``--summary-json`` writes), with the run's
    ``outcome`` (``lensflow.pipeline.outcome``): ML Metadata knows every step's state, so it can tell."""
    from lensflow.pipeline import outcome

    run = from_store(metadata_path, run_id)
    summary = summarise_artifacts(run)
    summary["outcome"] = outcome.describe(summary, run.data_stop_reasons)
    return summary


def summarise_artifacts(run: RunArtifacts) -> RunSummary:
    """The run summary from the artifacts themselves (ingestion report, TFMA results)."""
    from lensflow.components.evaluator import results
    from lensflow.components.image_example_gen import report

    summary = RunSummary(run_id=run.run_id, executions=run.executions,
                         execution_seconds=run.execution_seconds)
    if run.examples_uri:
        ingestion = report.read(run.examples_uri)
        for key in ("found", "ingested", "rejected", "ignored", "splits", "classes", "warnings"):
            summary[key] = ingestion[key]
        summary["duplicates"] = ingestion.get("duplicates")
        summary["examples_uri"] = run.examples_uri
    if run.drift_uri:
        summary["drift"] = _drift(run.drift_uri)
    if run.evaluation_uri:
        summary["evaluation_uri"] = run.evaluation_uri
        summary["evaluation_split"] = run.evaluation_split
        for key, value in results.summary(run.evaluation_uri).items():
            summary[key] = value
    if run.blessed is not None:
        summary["blessed"] = run.blessed
    summary["serving_check"] = run.serving_check
    summary["pushed_model_dir"] = run.pushed_model_dir
    if not run.push_known:
        summary["push_unknown"] = True
    if run.pushed_model_dir:
        summary["already_serving"] = run.already_serving
    if run.model_uri:
        summary["model_uri"] = run.model_uri
    if run.model_run_uri:
        from lensflow.components.trainer import choice, resume

        summary["model_run_uri"] = run.model_run_uri
        summary["training"] = resume.read_record(run.model_run_uri)
        summary["model_choice"] = choice.read(run.model_run_uri)
    if run.report_uri:
        summary["report_uri"] = run.report_uri
    return summary


def _drift(uri: str) -> Optional[Dict[str, Any]]:
    """The drift check's verdict (``components/data_validation/drift.py``), None if unreadable."""
    from lensflow.components.data_validation import drift

    try:
        return drift.read(uri)
    except Exception as err:  # noqa: BLE001 - a missing verdict must not hide the summary
        log.warning("cannot read the drift check's verdict at %s: %s", uri, err)
        return None


def training_line(record: Dict[str, Any]) -> str:
    """How many epochs the Trainer ran, restored from a killed attempt's backups, or ran twice
    (``components/trainer/resume.py``'s ``resume.json``)."""
    line = f"training: {record['total_epochs']} epochs"
    if not record.get("resumed"):
        return line + ", not resumed"
    return (line + f"; resumed (attempt {record['attempt']}): {record['restored_epochs']} restored "
            f"from the backup, {record['trained_epochs']} trained, {record['rerun_epochs']} "
            "re-run after the interruption")


def format_text(summary: Dict[str, Any]) -> str:
    """A short human summary of a run."""
    lines = [f"run {summary.get('run_id')}"]
    if "found" in summary:
        lines.append(f"images: found {summary['found']}, ingested {summary['ingested']}, "
                     f"rejected {len(summary['rejected'])}, ignored {len(summary['ignored'])}")
        for split, entry in summary.get("splits", {}).items():
            lines.append(f"  {split:<5} {entry['total']:>6} images in {len(entry['per_class'])} classes")
        for item in summary["rejected"][:10]:
            lines.append(f"  rejected {item['path']}: {item['reason']}")
        if len(summary["rejected"]) > 10:
            lines.append(f"  ... {len(summary['rejected']) - 10} more rejected (see the report)")
        for warning in summary.get("warnings", []):
            lines.append(f"  warning: {warning}")
    if summary.get("drift"):
        from lensflow.components.data_validation.drift import summary_line

        lines.append(summary_line(summary["drift"]))
        lines += [f"  drifted: {line}" for line in summary["drift"]["drifted"][:10]]
    if summary.get("model_choice"):
        from lensflow.components.trainer.choice import describe

        lines.append(f"model: {describe(summary['model_choice'])}")
    metrics = summary.get("metrics") or {}
    if metrics:
        shown = ", ".join(
            f"{label} {metrics[key]:.0f}" if key == "example_count" else f"{label} {metrics[key]:.4f}"
            for key, label in _HEADLINE if isinstance(metrics.get(key), float))
        lines.append(f"metrics on the {summary.get('evaluation_split', '?')} split: {shown}")
    if summary.get("training"):
        lines.append(training_line(summary["training"]))
    if "blessed" in summary:
        verdict = "BLESSED" if summary["blessed"] else "NOT blessed"
        lines.append(f"model {verdict}")
        for failure in summary.get("failed_thresholds", []):
            lines.append(f"  failed: {failure}")
    check = summary.get("serving_check")
    if check:
        if check["passed"]:
            took = f" in {check['seconds']:.1f}s" if check.get("seconds") else ""
            lines.append(f"serving check PASSED on {check['server']}{took}"
                         + (f" ({check['reason']})" if check.get("reason") else ""))
        else:
            lines.append(f"serving check FAILED: {check['reason']}")
    pushed = summary.get("pushed_model_dir") or "not pushed"
    if summary.get("already_serving"):
        pushed += " (this exact model is already serving; no new version)"
    lines.append(f"pushed model: {pushed}")
    result = summary.get("outcome")
    if result:
        from lensflow.pipeline.outcome import by_name

        lines.append(f"outcome: {result['name']} (exit code {result['exit_code']}): "
                     f"{by_name(result['name']).meaning}")
        if result["name"] in ("data_stopped", "failed"):
            lines += [f"  - {reason}" for reason in result["reasons"]]
    if summary.get("examples_uri"):
        lines.append(f"quarantine report: {os.path.join(summary['examples_uri'], 'ingestion_report.json')}")
    if summary.get("report_path"):
        lines.append(f"report: {summary['report_path']}")
    return "\n".join(lines)


def write_json(summary: RunSummary, path: str) -> None:
    """Write the summary as JSON."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(summary.to_dict(), fh, indent=2, ensure_ascii=False)
