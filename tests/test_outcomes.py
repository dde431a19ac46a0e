"""Exit codes of ``lensflow run`` that say what happened (``pipeline/outcome.py``), from real runs
or, where a run per code would take too long, from the real summary of real artifacts."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from markupsafe import escape

from lensflow.pipeline import outcome
from lensflow.pipeline.config import REPO_ROOT, SAMPLE_DATA

CLASSES = ("bag", "sandal")          # in every split
TEST_ONLY = "coat"                   # only in test: a label the model could never learn


def _copy(names, folder):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        shutil.copy(name, folder)


def _sample(label, count, skip=0):
    folder = os.path.join(SAMPLE_DATA, label)
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))[skip:skip + count]]


def _lensflow_run(*args, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "lensflow.pipeline.cli", "run", *map(str, args)],
                          capture_output=True, text=True, cwd=str(REPO_ROOT), env=env,
                          timeout=timeout)


def test_readme_documents_every_exit_code():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| `?([a-z_]+|click[^|]*?)`? \|", readme, re.M))
    for item in outcome.OUTCOMES:
        assert table.get(str(item.code)) == item.name, (item, table)
    codes = [item.code for item in outcome.OUTCOMES]
    assert len(set(codes)) == len(codes) and not set(codes) & set(outcome.RESERVED_CODES)
    assert set(outcome.RESERVED_CODES) <= {int(code) for code in table}


@pytest.mark.e2e
@pytest.mark.slow
def test_a_label_missing_from_train_stops_the_run_before_transform(tmp_path):
    """Real images, a pre-split tree whose test split holds a class train never has: the data
    gate stops the run with its reason on screen, in the summary and in the report."""
    data = tmp_path / "data"
    for label in CLASSES:
        _copy(_sample(label, 6), data / "train" / label)
        _copy(_sample(label, 2, skip=6), data / "eval" / label)
        _copy(_sample(label, 2, skip=8), data / "test" / label)
    _copy(_sample(TEST_ONLY, 2), data / "test" / TEST_ONLY)
    home, out = tmp_path / "home", tmp_path / "summary.json"

    done = _lensflow_run("--home", home, "--data", data, "--summary-json", out)

    assert done.returncode == outcome.DATA_STOPPED.code, (done.stdout[-3000:], done.stderr[-3000:])
    reason = f"test: label '{TEST_ONLY}' (2 images) never appears in train"
    assert reason in done.stdout and "outcome: data_stopped (exit code 6)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert summary["outcome"]["name"] == "data_stopped"
    assert summary["outcome"]["exit_code"] == outcome.DATA_STOPPED.code
    assert len(summary["outcome"]["reasons"]) == 1 and reason in summary["outcome"]["reasons"][0]
    assert summary["executions"]["DataGate"] == "FAILED"
    assert summary["executions"]["ExampleValidator"] == "COMPLETE"
    assert not {"Transform", "Trainer", "LensflowPusher"} & set(summary["executions"])
    assert summary["ingested"] == 2 * (6 + 2 + 2) + 2 and summary["pushed_model_dir"] is None
    assert not [p for p in home.rglob("*") if p.name == "Transform"], "Transform ran"
    html = open(summary["report_path"], encoding="utf-8").read()
    assert 'id="stopped"' in html and "Stopped by the data gate" in html
    assert str(escape(reason)) in html
    assert 'id="outcome" class="fail">data_stopped' in html


@pytest.mark.e2e
@pytest.mark.slow
def test_a_step_that_fails_exits_failed_with_its_error(tmp_path):
    """One class only: ImageExampleGen itself refuses the dataset, a failure of a step (not a
    stop by the data gate), so the run is ``failed`` and the error is shown."""
    data = tmp_path / "data"
    _copy(_sample("bag", 4), data / "bag")
    out = tmp_path / "summary.json"

    done = _lensflow_run("--home", tmp_path / "home", "--data", data, "--summary-json", out)

    assert done.returncode == outcome.FAILED.code, (done.stdout[-3000:], done.stderr[-3000:])
    assert "Traceback" in done.stderr and "need at least two classes" in done.stderr
    assert "model: baseline_cnn, 28 px grayscale; chosen from the data" in done.stdout
    summary = json.loads(out.read_text())
    assert summary["executions"]["ImageExampleGen"] == "FAILED"
    assert "StatisticsGen" not in summary["executions"]
    assert summary["outcome"]["name"] == "failed"
    assert summary["outcome"]["reasons"][0].startswith("ImageExampleGen failed")
    assert "DatasetError: need at least two classes" in summary["outcome"]["reasons"][-1]
    html = open(summary["report_path"], encoding="utf-8").read()
    assert "The run failed" in html and "ImageExampleGen failed" in html


def test_the_shared_run_pushed_a_new_version(e2e):
    assert e2e.summary["outcome"] == {
        "name": "pushed", "exit_code": 0,
        "reasons": [f"pushed: {e2e.summary['pushed_model_dir']}"]}


def _artifacts_of(e2e):
    """The shared run's artifacts as TFX artifacts, by (component, output key)."""
    from tfx.types import artifact_utils

    from lensflow.pipeline import summary

    store = summary.open_store(e2e.config.metadata_path)
    found = summary.run_artifacts(store, e2e.summary["run_id"])["artifacts"]
    types = {t.id: t for t in store.get_artifact_types_by_id(
        list({a.type_id for a in found.values()}))}
    return {key: artifact_utils.deserialize_artifact(types[a.type_id], a)
            for key, a in found.items()}


def _push(e2e, tmp_path, artifacts, infra_blessing):
    """The real Pusher on the shared run's model, into a serving folder holding the version the
    shared run pushed (later tests may have pushed newer ones into the shared home)."""
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from lensflow.components.pusher.component import Executor as PusherExecutor

    serving = tmp_path / "serving"
    version = os.path.basename(e2e.summary["pushed_model_dir"].rstrip("/"))
    shutil.copytree(e2e.summary["pushed_model_dir"], serving / e2e.config.push.model_name / version)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    os.makedirs(pushed.uri)
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(serving / e2e.config.push.model_name)))
    PusherExecutor().Do(
        {"model": [artifacts[("Trainer", "model")]],
         "model_blessing": [artifacts[("LensflowEvaluator", "blessing")]],
         "infra_blessing": [infra_blessing], "examples": [artifacts[("ImageExampleGen", "examples")]]},
        {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination),
         "custom_config": json.dumps({"model_name": e2e.config.push.model_name,
                                      "serving_dir": str(serving), "keep_versions": 5})})
    return pushed


def test_a_blessed_model_identical_to_the_serving_version_is_already_serving(e2e, tmp_path):
    """The shared run's checked model pushed again by the real Pusher: no new version, and the
    summary of those artifacts says ``already_serving`` (exit code 3)."""
    from lensflow.pipeline import summary

    artifacts = _artifacts_of(e2e)
    pushed = _push(e2e, tmp_path, artifacts, artifacts[("ServingCheck", "infra_blessing")])
    assert pushed.get_int_custom_property("already_serving") == 1
    run = summary.from_store(e2e.config.metadata_path, e2e.summary["run_id"])
    summary.apply_push(run, pushed)
    result = summary.summarise_artifacts(run)
    assert outcome.decide(result) is outcome.ALREADY_SERVING
    assert outcome.describe(result)["reasons"] == [
        f"identical to the version serving now: {result['pushed_model_dir']}"]
