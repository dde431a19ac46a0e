"""RunReport, the pipeline's own report: under LocalDagRunner (the session's end-to-end run),
as the compiled Kubeflow task run through TFX's container entrypoint in a subprocess, and
read back by ``lensflow report --artifacts`` from a folder laid out like a Kubeflow run's
pipeline root (a local stand-in for the bucket)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from lensflow.components.report import markdown, reuse, sources
from lensflow.components.report.cli import report
from lensflow.components.report.component import DISPLAY_NAMES, headline
from lensflow.pipeline import summary as run_summary

RUN_ID = "0d9a6f5e-5c1b-4f7e-9a57-3f2b1c0e8d41"  # KFP run ids are UUIDs
KFP_LAYOUT = {"examples": ("ImageExampleGen", "examples"), "model": ("Trainer", "model"),
              "model_run": ("Trainer", "model_run"),
              "evaluation": ("LensflowEvaluator", "evaluation"),
              "blessing": ("LensflowEvaluator", "blessing"),
              "pushed_model": ("LensflowPusher", "pushed_model")}


@pytest.fixture(scope="module")
def local_outputs(e2e):
    """The RunReport outputs of the end-to-end run, as recorded in ML Metadata (that run's, not
    the newest: other tests re-run on the shared home)."""
    store = run_summary.open_store(e2e.config.metadata_path)
    artifacts = run_summary.run_artifacts(store, e2e.summary["run_id"])["artifacts"]
    types = {t.id: t.name for t in store.get_artifact_types()}
    return {key: (artifacts[("RunReport", key)], types[artifacts[("RunReport", key)].type_id])
            for key in ("report", "summary", "metrics")}


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_the_local_run_writes_the_report_as_system_artifacts(local_outputs, e2e):
    assert {key: type_name for key, (_, type_name) in local_outputs.items()} == {
        "report": "system.HTML", "summary": "system.Markdown", "metrics": "system.Metrics"}
    for key, (artifact, _) in local_outputs.items():
        assert os.path.isfile(artifact.uri), key
        assert artifact.custom_properties["display_name"].string_value == DISPLAY_NAMES[key]
    accuracy = e2e.summary["metrics"]["accuracy"]
    html = read(local_outputs["report"][0].uri)
    assert f'data-value="{accuracy!r}"' in html and 'id="verdict" class="pass">BLESSED' in html
    assert e2e.summary["pushed_model_dir"] in html
    assert e2e.summary["run_id"] in html  # LocalDagRunner's pipeline run id
    md = read(local_outputs["summary"][0].uri)
    assert "- verdict: **BLESSED**" in md and f"| accuracy | {accuracy:.4f} | — |" in md
    metrics = local_outputs["metrics"][0]
    assert metrics.custom_properties["accuracy"].double_value == pytest.approx(accuracy)
    assert metrics.custom_properties["blessed"].double_value == 1.0
    assert metrics.custom_properties["pushed"].double_value == 1.0
    recorded = json.loads(read(metrics.uri))
    assert recorded["pushed_model_dir"] == e2e.summary["pushed_model_dir"]
    assert recorded["evaluation_split"] == e2e.summary["evaluation_split"]
    assert recorded["errors"] == {}


def test_lensflow_run_keeps_the_report_the_pipeline_wrote(local_outputs, e2e, capsys):
    """After a run whose RunReport executed, ``lensflow run`` copies that page instead of
    building the report a second time."""
    from lensflow.pipeline.cli import _finish

    if run_summary.summarise(e2e.config.metadata_path)["run_id"] != e2e.summary["run_id"]:
        pytest.skip("a later run of this home is the latest; the copy applies to e2e's run")
    assert e2e.summary["executions"]["RunReport"] == "COMPLETE"
    _finish(e2e.config, None, run_summary)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("report: ")]
    assert printed and printed[0].startswith(f"report: {os.path.join(e2e.home, 'reports')}")
    assert read(printed[0][len("report: "):]) == read(local_outputs["report"][0].uri)


def test_runreport_keeps_its_costly_sections_beside_the_report(local_outputs, report_data):
    """The sections kept are those of the run's artifacts (the newest run of the home is a
    cached re-run of the same artifacts, so its key is the same) and read back as built."""
    kept = reuse.load(reuse.path_beside(local_outputs["report"][0].uri))
    assert kept is not None and kept["key"] == report_data["sections_key"]
    assert kept["predictions"]["wrong"] == report_data["predictions"]["wrong"]
    assert kept["interpretation"]["cam_layer"] == report_data["interpretation"]["cam_layer"]
    assert kept["interpretation"]["sample_count"] == len(report_data["interpretation"]["samples"])
    assert set(kept["charts"]) >= {"confusion", "per_class", "training", "explanations"}


def test_a_report_of_the_same_artifacts_takes_the_kept_sections_and_no_others(
        local_outputs, e2e, tmp_path):
    """A kept chart marked with a sentinel shows in the report written with it; with a key
    naming another model it does not (the sections are computed instead)."""
    from lensflow.components.report.render import write_report

    kept = json.loads(read(reuse.path_beside(local_outputs["report"][0].uri)))
    kept["charts"]["confusion"] = "data:image/png;base64,U0VOVElORUw="
    matching = tmp_path / "matching.json"
    matching.write_text(json.dumps(kept))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**kept, "key": {**kept["key"], "model_uri": "/elsewhere"}}))
    run_id = e2e.summary["run_id"]
    reused = read(write_report(e2e.config.metadata_path, run_id, str(tmp_path / "a.html"),
                               kept_sections=str(matching)))
    assert "U0VOVElORUw=" in reused
    assert reused.count('<figure>') == read(local_outputs["report"][0].uri).count('<figure>')
    assert run_id in reused
    fresh = read(write_report(e2e.config.metadata_path, run_id, str(tmp_path / "b.html"),
                              kept_sections=str(other)))
    assert "U0VOVElORUw=" not in fresh and 'id="wrong-grid"' in fresh


def test_headline_and_markdown_follow_the_report_data(report_data):
    numbers = headline(report_data)
    ev = report_data["evaluation"]
    assert numbers["accuracy"] == pytest.approx(ev["accuracy"])
    assert numbers["examples"] == ev["example_count"]
    assert numbers["min_class_recall"] == min(r["recall"] for r in ev["per_class"]
                                              if r["recall"] is not None)
    assert "baseline_accuracy" not in numbers  # a first run has no serving model to compare
    hostile = {**report_data, "errors": {"evaluation": "a|b\nc"}}
    assert "- evaluation: a\\|b c" in markdown.summary(hostile)


@pytest.fixture(scope="module")
def kfp_run(e2e, tmp_path_factory):
    """A pipeline root laid out as a Kubeflow run leaves it (``<root>/<run id>/<task>/<key>``),
    holding copies of the end-to-end run's artifacts, with their metadata as KFP's ML Metadata
    would deliver it."""
    root = tmp_path_factory.mktemp("kfp_root")
    run_root = root / RUN_ID
    store = run_summary.open_store(e2e.config.metadata_path)
    artifacts = run_summary.run_artifacts(store)["artifacts"]
    inputs = {}
    for key, (task, output) in KFP_LAYOUT.items():
        artifact = artifacts[(task, output)]
        target = run_root / task / output
        shutil.copytree(artifact.uri, target)
        metadata = {name: getattr(value, value.WhichOneof("value"))
                    for name, value in artifact.custom_properties.items()}
        inputs[key] = {"uri": str(target), "metadata": metadata}
    return {"root": root, "run_root": run_root, "inputs": inputs}


@pytest.fixture(scope="module")
def compiled_task(e2e, kfp_run):
    """The RunReport task of the compiled package, executed as KFP's launcher would: its own
    command and args, ``{{$}}`` replaced by an ExecutorInput, in a subprocess."""
    from lensflow.pipeline.runners import kubeflow

    cfg = e2e.config.replace(**{"kubeflow.pipeline_root": "gs://unused/root"})
    spec = kubeflow.compile_job(cfg)["pipelineSpec"]
    component = spec["components"]["RunReport"]
    task = spec["root"]["dag"]["tasks"]["RunReport"]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    executor_input = {
        "inputs": {
            "parameterValues": {name: value["runtimeValue"]["constant"]
                                for name, value in task["inputs"]["parameters"].items()},
            "artifacts": {
                key: {"artifacts": [{"name": f"{key}-1", "uri": found["uri"],
                                     "metadata": found["metadata"],
                                     "type": component["inputDefinitions"]["artifacts"][key][
                                         "artifactType"]}]}
                for key, found in kfp_run["inputs"].items()}},
        "outputs": {
            "outputFile": str(kfp_run["root"] / "kfp_outputs" / "output_metadata.json"),
            "artifacts": {
                key: {"artifacts": [{"uri": str(kfp_run["run_root"] / "RunReport" / key),
                                     "type": output["artifactType"]}]}
                for key, output in component["outputDefinitions"]["artifacts"].items()}}}
    json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())
    substituted = json.dumps(executor_input)
    args = [substituted if arg == "{{$}}" else arg for arg in container["args"]]
    command = [sys.executable] + container["command"][1:] + args
    assert container["command"][:3] == ["python", "-m", kubeflow.ENTRYPOINT[2]]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env,
                          cwd=str(kfp_run["root"]))
    assert done.returncode == 0, done.stderr[-4000:]
    with open(executor_input["outputs"]["outputFile"], encoding="utf-8") as fh:
        return {"output": json.load(fh), "uris": executor_input["outputs"]["artifacts"]}


def test_the_compiled_task_runs_through_the_tfx_entrypoint(compiled_task, e2e):
    output = compiled_task["output"]["artifacts"]
    assert set(output) == {"report", "summary", "metrics"}
    for key, listed in output.items():
        (artifact,) = listed["artifacts"]
        assert artifact["metadata"]["display_name"] == DISPLAY_NAMES[key]
        assert os.path.isfile(artifact["uri"]), key
    metrics = output["metrics"]["artifacts"][0]["metadata"]
    assert metrics["accuracy"] == pytest.approx(e2e.summary["metrics"]["accuracy"])
    assert metrics["blessed"] == 1.0 and metrics["pushed"] == 1.0
    html = read(output["report"]["artifacts"][0]["uri"])
    assert f'<code id="run-id">{RUN_ID}</code>' in html  # the KFP run id, from the URI
    assert 'id="verdict" class="pass">BLESSED' in html
    assert e2e.summary["pushed_model_dir"] in html


def test_report_from_a_kubeflow_run_folder(compiled_task, kfp_run, e2e, tmp_path):
    out = tmp_path / "from_bucket.html"
    result = CliRunner().invoke(report, ["--artifacts", str(kfp_run["root"]), "--run", RUN_ID,
                                         "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    html = out.read_text()
    assert 'id="verdict" class="pass">BLESSED' in html  # from the BLESSED marker file
    assert e2e.summary["pushed_model_dir"] in html  # from the report task's metrics file
    assert f'data-value="{e2e.summary["metrics"]["accuracy"]!r}"' in html
    assert f"({e2e.summary['evaluation_split']} split)" in html


def test_a_folder_without_run_outputs_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(report, ["--artifacts", str(tmp_path), "--out",
                                         str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert "no output of a lensflow run" in result.output and "Trainer/model" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.html").exists()


def test_outputs_are_found_with_or_without_the_newer_drivers_salt(tmp_path):
    (tmp_path / "Trainer" / "model").mkdir(parents=True)
    (tmp_path / "LensflowEvaluator" / "3f2a" / "blessing").mkdir(parents=True)
    assert sources.kfp_output_uri(str(tmp_path), "Trainer", "model") == \
        str(tmp_path / "Trainer" / "model")
    assert sources.kfp_output_uri(str(tmp_path), "LensflowEvaluator", "blessing") == \
        str(tmp_path / "LensflowEvaluator" / "3f2a" / "blessing")
    assert sources.kfp_output_uri(str(tmp_path), "Trainer", "model_run") is None
