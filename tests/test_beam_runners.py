"""The Beam runner chosen in ``config.beam`` runs ImageExampleGen's real executor.

The same laced image tree (good, corrupt and stray files) is ingested under DirectRunner
in_memory, DirectRunner multi_processing with 2 worker processes, and PortableRunner against
Beam's pure-Python local job service (LOOPBACK workers); each must give the same ingestion
report and the same examples per split. Workers outside the launching process (EXTERNAL) are
tested in ``test_beam_external.py``.
"""
import os
from pathlib import Path

import click
import pytest
import tensorflow as tf
from google.protobuf import message
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from lensflow.components.image_example_gen import executor, report
from lensflow.components.image_example_gen.component import ImageExampleGen
from lensflow.components.image_example_gen.tests.badfiles import make_bad_tree
from lensflow.components.transform import features
from lensflow.pipeline.cli_options import make_config
from lensflow.pipeline.config import CUSTOM_CONFIG_KEY, REPO_ROOT, ConfigError, load_config
from lensflow.pipeline.pipeline import beam_pipeline_args
from tests import beam_services

# the laced tree has ten good images: even buckets keep every split non-empty
SPLITS = {"data.split_buckets": {"train": 1, "eval": 1, "test": 1}}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("beam") / "images"
    return root, make_bad_tree(root)


@pytest.fixture(scope="module")
def job_endpoint(tmp_path_factory):
    """Beam's local job service as a subprocess on localhost; always stopped afterwards."""
    with beam_services.job_service(tmp_path_factory.mktemp("job_service")) as endpoint:
        yield endpoint


def ingest(cfg, data_root: Path, out: Path):
    """Run ImageExampleGen's executor with ``cfg``'s Beam args; return (report, paths by split)."""
    component = ImageExampleGen(input_base=str(data_root),
                                custom_config={CUSTOM_CONFIG_KEY: cfg.to_json()})
    properties = {key: proto_utils.proto_to_json(value) if isinstance(value, message.Message)
                  else value for key, value in component.exec_properties.items()}
    examples = standard_artifacts.Examples()
    examples.uri = str(out / "examples")
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=beam_pipeline_args(cfg), tmp_dir=str(out / "tmp"), unique_id="1")
    executor.Executor(context).Do({}, {"examples": [examples]}, properties)
    return report.read(examples.uri), example_paths(examples.uri)


def example_paths(uri: str):
    """Relative image paths stored in each split's TFRecords."""
    spec = {features.PATH_KEY: tf.io.FixedLenFeature([], tf.string)}
    out = {}
    for split_dir in sorted(Path(uri).glob("Split-*")):
        files = [str(f) for f in sorted(split_dir.glob("*.gz"))]
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        out[split_dir.name[len("Split-"):]] = sorted(
            tf.io.parse_single_example(r, spec)[features.PATH_KEY].numpy().decode()
            for r in records)
    return out


@pytest.fixture(scope="module")
def direct(tree, tmp_path_factory):
    """The reference: DirectRunner, in memory."""
    cfg = load_config(None, {**SPLITS, "beam.runner": "DirectRunner"})
    return ingest(cfg, tree[0], tmp_path_factory.mktemp("direct"))


def test_direct_runner_ingests_the_laced_tree(direct, tree):
    summary, paths = direct
    expected = tree[1]
    assert summary["ingested"] == expected["good"]
    assert {r["path"] for r in summary["rejected"]} == set(expected["rejected"])
    for rejected in summary["rejected"]:
        assert expected["rejected"][rejected["path"]] in rejected["reason"]
    assert {r["path"] for r in summary["ignored"]} == set(expected["ignored"])
    assert sorted(p for split in paths.values() for p in split) == sorted(expected["labels"])


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_direct_runner_with_two_worker_processes_matches(direct, tree, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cfg = load_config(None, {**SPLITS, "beam.runner": "DirectRunner",
                             "beam.direct_running_mode": "multi_processing",
                             "beam.direct_num_workers": 2})
    assert "--direct_num_workers=2" in beam_pipeline_args(cfg)
    assert ingest(cfg, tree[0], tmp_path) == direct


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_portable_runner_on_the_local_job_service_matches(direct, tree, tmp_path, job_endpoint):
    cfg = load_config(None, {**SPLITS, "beam.runner": "PortableRunner",
                             "beam.job_endpoint": job_endpoint})
    assert beam_pipeline_args(cfg)[:3] == ["--runner=PortableRunner",
                                           f"--job_endpoint={job_endpoint}",
                                           "--environment_type=LOOPBACK"]
    assert ingest(cfg, tree[0], tmp_path) == direct


def test_extra_args_pass_through_for_other_runners():
    extra = ["--project=p", "--region=europe-west1", "--temp_location=gs://b/tmp"]
    cfg = load_config(None, {"beam.runner": "DataflowRunner", "beam.extra_args": extra})
    assert beam_pipeline_args(cfg) == ["--runner=DataflowRunner"] + extra


def test_environment_settings_become_beam_args():
    docker = load_config(None, {"beam.runner": "FlinkRunner", "beam.environment_type": "DOCKER",
                                "beam.environment_config": "registry/lensflow:0.1.0",
                                "beam.extra_args": ["--flink_master=flink:8081"]})
    assert beam_pipeline_args(docker) == [
        "--runner=FlinkRunner", "--environment_type=DOCKER",
        "--environment_config=registry/lensflow:0.1.0", "--flink_master=flink:8081"]
    assert beam_pipeline_args(load_config(None, {"beam.runner": "SparkRunner"})) == [
        "--runner=SparkRunner"]


def test_the_readme_command_line_reaches_the_beam_args():
    cfg = make_config(None, "/tmp/lensflow-home", sets=[
        "beam.runner=PortableRunner", "beam.job_endpoint=localhost:8099",
        "beam.environment_type=EXTERNAL", "beam.environment_config=localhost:50000"])
    assert beam_pipeline_args(cfg) == [
        "--runner=PortableRunner", "--job_endpoint=localhost:8099",
        "--environment_type=EXTERNAL", "--environment_config=localhost:50000"]
    with pytest.raises(click.UsageError, match="beam.environment_config"):
        make_config(None, "/tmp/lensflow-home", sets=[
            "beam.runner=FlinkRunner", "beam.environment_type=PROCESS",
            'beam.environment_config={"command": "/opt/apache/beam/boot"}'])


PORTABLE = {"beam.runner": "PortableRunner", "beam.job_endpoint": "localhost:8099"}


@pytest.mark.parametrize("overrides, message", [
    ({"beam.runner": "PortableRunner"}, "job_endpoint"),
    ({**PORTABLE, "beam.environment_type": "EXTERNAL"}, "environment_config: the worker pool"),
    ({**PORTABLE, "beam.environment_type": "EXTERNAL", "beam.environment_config": "pool"},
     "host:port"),
    ({**PORTABLE, "beam.environment_type": "DOCKER"}, "SDK container image"),
    ({**PORTABLE, "beam.environment_type": "PROCESS", "beam.environment_config": "boot"},
     "boot command as JSON"),
    ({**PORTABLE, "beam.environment_type": "LOOPBACK", "beam.environment_config": "x:1"},
     "takes no"),
    ({**PORTABLE, "beam.environment_type": "SUBPROCESS"}, "choose one of"),
    ({**PORTABLE, "beam.environment_config": "localhost:50000"}, "environment_type is not"),
    ({"beam.environment_type": "EXTERNAL", "beam.environment_config": "localhost:50000"},
     "sdk_container_image"),
    ({"beam.runner": "SparkRunner", "beam.extra_args": "--spark_master_url=x"}, "extra_args"),
    ({"beam.runner": "LocalRunner"}, "choose one of"),
])
def test_bad_beam_settings_fail_when_the_config_loads(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_direct_runner_spares_tfx_building_itself_before_each_step():
    """With a dependency flag TFX passes the args through instead of building an sdist of itself
    (``dependency_utils.make_beam_dependency_flags``); a user's own flag is kept alone."""
    from tfx.utils import dependency_utils

    args = beam_pipeline_args(load_config(None, {}))
    assert dependency_utils.make_beam_dependency_flags(args) == args
    own = load_config(None, {"beam.extra_args": ["--extra_package=/tmp/x.tar.gz"]})
    assert not [arg for arg in beam_pipeline_args(own) if arg.startswith("--setup_file")]


def test_direct_runner_stages_no_package_build_locally():
    """Beam's stager builds ``setup.py sdist`` twice per Beam pipeline when ``--setup_file`` is
    given; locally the lock file is named instead and nothing is downloaded, and the staged
    resources Beam computes contain no built package."""
    import tempfile

    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.stager import Stager

    args = beam_pipeline_args(load_config(None, {}))
    assert not [arg for arg in args if arg.startswith("--setup_file")]
    assert "--requirements_cache=skip" in args
    resources = Stager.create_job_resources(PipelineOptions(args), tempfile.mkdtemp())
    staged = [r.role_payload for r in resources]
    assert not [p for p in staged if b"workflow.tar.gz" in p], staged
