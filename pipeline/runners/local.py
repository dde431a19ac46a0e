"""Run the pipeline with LocalDagRunner and an embedded SQLite ML Metadata store."""
from __future__ import annotations

import logging
import os
import re
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import logging as absl_logging  # noqa: E402
from tfx import v1 as tfx  # noqa: E402

from pipeline.config import LensflowConfig  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402

_PROGRESS = re.compile(r"Component (\S+) is (running|finished)\.")


class _ProgressFilter(logging.Filter):
    """Pass only LocalDagRunner's per-component start/finish lines, with elapsed time."""

    def __init__(self):
        super().__init__()
        self._started = {}

    def filter(self, record: logging.LogRecord) -> bool:
        match = _PROGRESS.match(record.getMessage())
        if not match:
            return False
        node, state = match.groups()
        if state == "running":
            self._started[node] = time.time()
            record.msg, record.args = f"  ▶ {node} ...", ()
        else:
            took = time.time() - self._started.get(node, time.time())
            record.msg, record.args = f"  ✓ {node} ({took:.0f}s)", ()
        return True


def metadata_config(cfg: LensflowConfig):
    """SQLite MLMD under the lensflow home."""
    os.makedirs(os.path.dirname(cfg.metadata_path), exist_ok=True)
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(cfg.metadata_path)


def run(cfg: LensflowConfig, show_progress: bool = False) -> None:
    """Run (or resume: cached components are reused) the pipeline for ``cfg``."""
    os.makedirs(cfg.pipeline_root, exist_ok=True)
    pipeline = create_pipeline(cfg, metadata_connection_config=metadata_config(cfg))
    handler = None
    if show_progress:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_ProgressFilter())
        absl_logging.get_absl_handler().setLevel(logging.WARNING)
        absl_logging.set_verbosity(absl_logging.INFO)
        logging.getLogger("absl").addHandler(handler)
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    finally:
        if handler is not None:
            logging.getLogger("absl").removeHandler(handler)
