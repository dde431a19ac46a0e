"""Repo-wide pytest set-up: legacy Keras before TensorFlow, repo root importable, and the one
shared end-to-end pipeline run that every test needing real artifacts reuses."""
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
    from pipeline import summary
    from pipeline.runners import local

    local.run(cfg)
    return PipelineRun(cfg, summary.summarise(cfg.metadata_path))


@pytest.fixture(scope="session")
def e2e(tmp_path_factory) -> PipelineRun:
    """baseline_cnn on the bundled Fashion-MNIST sample, 2 epochs: blessed and pushed."""
    from pipeline.config import load_config

    home = tmp_path_factory.mktemp("lensflow_home")
    return run_pipeline(load_config(None, {"home": str(home), **E2E_OVERRIDES}))


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on loopback (an S3/MinIO stand-in), shared by the session."""
    from tests import s3_server as s3

    server = s3.start()
    yield server
    server.stop()
