"""The Beam stages on workers that share nothing with the launching process.

Beam's SDK worker pool runs as a process of its own (its own environment and working directory,
lensflow imported from the installed code, as in lensflow's image) and Beam's Python job service
as another; the pipeline's own ImageExampleGen, StatisticsGen (TFDV) and Transform (taken from
``create_pipeline``, so with the production settings) run on them through ``PortableRunner``
with ``beam.environment_type: EXTERNAL``, the images read by their paths. Every output must equal the same chain's on DirectRunner.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import message
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from lensflow.components.image_example_gen import report
from lensflow.components.image_example_gen.tests.badfiles import make_bad_tree
from lensflow.components.transform import features
from lensflow.pipeline.config import CURATED_SCHEMA, load_config
from lensflow.pipeline.pipeline import beam_pipeline_args, create_pipeline
from tests import beam_services

# Workers with lensflow's environment have TFX: naming their image (docs/BEAM.md) keeps TFX from
# building and staging an sdist of itself at every Beam step.
TINY = {"image.size": 8, "data.split_buckets": {"train": 2, "eval": 1, "test": 1},
        "beam.extra_args": ["--sdk_container_image=lensflow:under-test"]}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("external") / "images"
    return root, make_bad_tree(root, good_per_class=12)


def run_stage(component, inputs: Dict[str, list], out: Path, beam_args: List[str]):
    """Run ``component``'s executor as TFX's launcher would: fresh output artifacts under
    ``out``, the component's own execution properties, ``beam_args``."""
    outputs = {}
    for key, channel in component.outputs.items():
        artifact = channel.type()
        artifact.uri = str(out / component.id / key)
        os.makedirs(artifact.uri, exist_ok=True)
        outputs[key] = [artifact]
    properties = {key: proto_utils.proto_to_json(value) if isinstance(value, message.Message)
                  else value for key, value in component.exec_properties.items()
                  if value is not None}
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=beam_args, tmp_dir=str(out / component.id / ".tmp"),
        unique_id=component.id)
    component.executor_spec.executor_class(context).Do(inputs, outputs, properties)
    return outputs


def run_chain(overrides: dict, data_root: Path, out: Path):
    """ImageExampleGen -> StatisticsGen and Transform of the real pipeline under ``overrides``."""
    cfg = load_config(None, {**TINY, "data.path": str(data_root), **overrides})
    pipeline = create_pipeline(cfg, pipeline_root=str(out / "root"),
                               serving_dir=str(out / "serving"))
    stages = {component.id: component for component in pipeline.components}
    args = beam_pipeline_args(cfg)
    schema = standard_artifacts.Schema()
    schema.uri = str(out / "schema")
    os.makedirs(schema.uri)
    shutil.copy(CURATED_SCHEMA, os.path.join(schema.uri, "schema.pbtxt"))
    examples = run_stage(stages["ImageExampleGen"], {}, out, args)["examples"]
    statistics_gen = run_stage(stages["StatisticsGen"], {"examples": examples, "schema": [schema]},
                               out, args)
    transformed = run_stage(stages["Transform"], {"examples": examples, "schema": [schema]},
                            out, args)
    return {"examples": examples[0], "statistics": statistics_gen["statistics"][0],
            **{key: artifacts[0] for key, artifacts in transformed.items()}}


def records(artifact) -> Dict[str, List[bytes]]:
    """Every example of each split, serialized deterministically (a map's order follows the
    process's hash seed) and sorted (shards and order may differ by runner)."""
    out = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([artifact], split),
                                              "*"))
        out[split] = sorted(
            tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
            for r in tf.data.TFRecordDataset(files, "GZIP"))
    return out


_REAL = re.compile(r"-?\d+\.\d+(e[-+]?\d+)?")


def statistics(artifact, split: str) -> str:
    """StatisticsGen's statistics of ``split``, as text."""
    path = os.path.join(artifact_utils.get_split_uri([artifact], split), "FeatureStats.pb")
    with tf.io.gfile.GFile(path, "rb") as fh:
        return str(statistics_pb2.DatasetFeatureStatisticsList.FromString(fh.read()))


def assert_same_statistics(external: str, direct: str):
    """Equal but for real numbers, which agree to rounding: sums may add in another order on
    other workers and differ in their last bits (CI saw it on Transform's float statistics)."""
    assert _REAL.sub("R", external) == _REAL.sub("R", direct)
    reals = [[float(m.group()) for m in _REAL.finditer(text)] for text in (external, direct)]
    np.testing.assert_allclose(reals[0], reals[1], rtol=1e-5, atol=1e-6)


def assets(artifact) -> Dict[str, bytes]:
    root = Path(artifact.uri)
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.glob("transform_fn/assets/*"))}


@pytest.fixture(scope="module")
def direct(tree, tmp_path_factory):
    return run_chain({"beam.runner": "DirectRunner"}, tree[0], tmp_path_factory.mktemp("direct"))


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """A worker pool and a job service, each a process of its own; stopped afterwards."""
    with beam_services.worker_pool(tmp_path_factory.mktemp("worker_pool")) as (pool, pool_log), \
            beam_services.job_service(tmp_path_factory.mktemp("job_service")) as job:
        yield {"pool": pool, "pool_log": pool_log, "job": job}


@pytest.fixture(scope="module")
def external(tree, services, tmp_path_factory):
    return run_chain({"beam.runner": "PortableRunner", "beam.job_endpoint": services["job"],
                      "beam.environment_type": "EXTERNAL",
                      "beam.environment_config": services["pool"]},
                     tree[0], tmp_path_factory.mktemp("external_run"))


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_ingestion_on_external_workers_matches_direct(direct, external, tree, services):
    expected = tree[1]
    summary = report.read(external["examples"].uri)
    assert summary == report.read(direct["examples"].uri)
    assert summary["ingested"] == expected["good"]
    assert {r["path"] for r in summary["rejected"]} == set(expected["rejected"])
    assert records(external["examples"]) == records(direct["examples"])
    # The work ran in SDK workers the pool started (one per Beam job), not in this process.
    started = services["pool_log"].read_text(errors="replace").count(
        beam_services.POOL_STARTED_WORKER)
    assert started >= 2


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_transform_on_external_workers_matches_direct(direct, external):
    assert assets(external["transform_graph"]) == assets(direct["transform_graph"])
    vocabulary = assets(direct["transform_graph"])["transform_fn/assets/label"].split()
    train = [tf.train.Example.FromString(row) for row in records(direct["examples"])["train"]]
    train_labels = {row.features.feature[features.LABEL_KEY].bytes_list.value[0] for row in train}
    assert sorted(vocabulary) == sorted(train_labels)
    transformed = records(external["transformed_examples"])
    assert transformed == records(direct["transformed_examples"])
    assert {split: len(rows) for split, rows in transformed.items()} == {
        split: len(rows) for split, rows in records(direct["examples"]).items()}


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_statistics_on_external_workers_match_direct(direct, external):
    for split, rows in records(direct["examples"]).items():
        assert_same_statistics(statistics(external["statistics"], split),
                               statistics(direct["statistics"], split))
        assert f"num_examples: {len(rows)}\n" in statistics(direct["statistics"], split)
