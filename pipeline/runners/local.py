"""Run the pipeline with LocalDagRunner and an embedded SQLite ML Metadata store."""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx import v1 as tfx  # noqa: E402

from pipeline.config import LensflowConfig  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402


def metadata_config(cfg: LensflowConfig):
    """SQLite MLMD under the lensflow home."""
    os.makedirs(os.path.dirname(cfg.metadata_path), exist_ok=True)
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(cfg.metadata_path)


def run(cfg: LensflowConfig) -> None:
    """Run (or resume: cached components are reused) the pipeline for ``cfg``."""
    os.makedirs(cfg.pipeline_root, exist_ok=True)
    pipeline = create_pipeline(cfg, metadata_connection_config=metadata_config(cfg))
    tfx.orchestration.LocalDagRunner().run(pipeline)
