"""Repo-wide pytest set-up: legacy Keras before TensorFlow, repo root importable, the markers
(derived from the fixtures a test uses, so a new test is marked without remembering to), and the
one shared end-to-end pipeline run that every test needing real artifacts reuses."""
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Dict

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", category=FutureWarning)

import pytest  # noqa: E402

E2E_OVERRIDES = {"train.epochs": 2, "train.batch_size": 32, "evaluation.min_accuracy": 0.5}


@dataclass
class PipelineRun:
    """A finished pipeline run: its config and the summary read back from ML Metadata."""

    config: Any
    summary: Dict[str, Any]

    @property
    def home(self) -> str:
        return str(self.config.home_dir)


def run_pipeline(cfg) -> PipelineRun:
    """Run the pipeline for ``cfg`` in-process and summarise its latest run."""
    from lensflow.pipeline import summary
    from lensflow.pipeline.runners import local

    local.run(cfg)
    return PipelineRun(cfg, summary.summarise(cfg.metadata_path))


# marker -> fixtures that imply it (directly or through other fixtures)
MARKER_FIXTURES = {
    "e2e": {"e2e", "pipeline_runner", "kfp_rehearsal"},
    "slow": {"pipeline_runner", "kfp_rehearsal"},
    "browser": {"chromium", "headless"},
}


def xdist_group(item, used) -> str:
    """The worker group of a test under ``make test`` (``pytest -n 2 --dist loadgroup``): the
    users of the shared run stay on one worker (several re-run on its home, and a home admits one
    run at a time), the rehearsal's on another; any other test keeps its file's module fixtures by
    staying with its file."""
    if "kfp_rehearsal" in used:
        return "kfp_rehearsal"
    if "e2e" in used:
        return "e2e"
    return item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items):
    """Mark each test by the fixtures it pulls in: ``e2e`` (a real pipeline run), ``slow`` (runs
    pipelines of its own), ``browser`` (headless Chromium); ``make test-fast`` deselects them.
    Each test also gets its ``xdist_group``."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in MARKER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(getattr(pytest.mark, marker))
        item.add_marker(pytest.mark.xdist_group(xdist_group(item, used)))


@pytest.fixture(scope="session")
def pipeline_runner():
    """``run(cfg) -> PipelineRun``: for tests that need a pipeline run of their own."""
    return run_pipeline


@pytest.fixture(scope="session")
def e2e(tmp_path_factory, worker_id) -> PipelineRun:
    """baseline_cnn on the bundled Fashion-MNIST sample, 2 epochs: blessed and pushed. Under
    pytest-xdist the workers share one run: the first to need it runs it under a file lock in the
    workers' common temp folder, the others wait for it and read its summary back."""
    import fcntl
    import json

    from lensflow.pipeline.config import load_config
    from lensflow.pipeline.summary import RunSummary

    if worker_id == "master":
        home = tmp_path_factory.mktemp("lensflow_home")
        return run_pipeline(load_config(None, {"home": str(home), **E2E_OVERRIDES}))
    shared = tmp_path_factory.getbasetemp().parent
    cfg = load_config(None, {"home": str(shared / "lensflow_home"), **E2E_OVERRIDES})
    done = shared / "lensflow_home.summary.json"
    with open(shared / "lensflow_home.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return PipelineRun(cfg, RunSummary.model_validate(json.loads(done.read_text())))
        summary = run_pipeline(cfg).summary
        done.write_text(json.dumps(summary.to_dict()))
        return PipelineRun(cfg, summary)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on loopback (an S3/MinIO stand-in), shared by the session."""
    from tests import s3_server as s3

    server = s3.start()
    yield server
    server.stop()


@dataclass
class KubeflowRehearsal:
    """The bundled-sample pipeline compiled for Kubeflow (S3 root on the moto stand-in) and
    rehearsed once; ``rehearse`` runs the same package again."""

    config: Any
    package: str
    volumes: Dict[str, str]
    state_dir: str
    s3: Any
    result: Any

    def rehearse(self, run_id: str):
        from lensflow.pipeline.config import REPO_ROOT
        from lensflow.pipeline.runners import rehearse
        from tests import s3_server

        rehearser = rehearse.Rehearser(
            self.package, state_dir=self.state_dir, mounts=self.volumes, run_id=run_id,
            secrets={self.config.kubeflow.s3_secret: {"accesskey": s3_server.ACCESS_KEY,
                                                      "secretkey": s3_server.SECRET_KEY}},
            dockerfile=str(REPO_ROOT / "kubeflow" / "Dockerfile"), workdir=str(REPO_ROOT),
            echo=print)
        try:
            return rehearser.run()
        except rehearse.RehearsalError as err:
            pytest.fail(f"{err}\n--- last lines of {err.task}'s log ---\n{err.log}")


@pytest.fixture(scope="session")
def kfp_rehearsal(tmp_path_factory, s3_server) -> KubeflowRehearsal:
    """``lensflow compile --target kubeflow`` of the e2e settings on an ``s3://`` root served by
    moto on loopback, rehearsed with the sample on a mapped data volume (minutes of CPU)."""
    import shutil

    from lensflow.pipeline.config import SAMPLE_DATA, load_config
    from lensflow.pipeline.runners import kubeflow

    work = tmp_path_factory.mktemp("kfp_rehearsal")
    from tests.s3_server import KFP_BUCKET

    s3_server.create_bucket(KFP_BUCKET)
    cfg = load_config(None, {**E2E_OVERRIDES, "evaluation.min_accuracy": 0.0,
                             "kubeflow.pipeline_root": f"s3://{KFP_BUCKET}/root",
                             "kubeflow.s3_endpoint": s3_server.endpoint})
    shutil.copytree(SAMPLE_DATA, work / "data" / "images")
    (work / "models").mkdir()
    package = str(work / "pipeline.yaml")
    kubeflow.compile_package(cfg, package)
    run = KubeflowRehearsal(cfg, package, {"lensflow-data": str(work / "data"),
                                           "lensflow-models": str(work / "models")},
                            str(work / "state"), s3_server, None)
    run.result = run.rehearse("first")
    return run
