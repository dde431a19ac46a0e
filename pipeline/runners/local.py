"""Run the pipeline with LocalDagRunner and an embedded SQLite ML Metadata store."""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any, Dict, Optional

from absl import logging as absl_logging
from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from lensflow.pipeline import home_lock
from lensflow.pipeline.config import LensflowConfig
from lensflow.pipeline.pipeline import create_pipeline

_PROGRESS = re.compile(r"Component (\S+) is (running|finished)\.")


class _ProgressFilter(logging.Filter):
    """Print LocalDagRunner's per-component start/finish lines (with elapsed time) to stderr
    and swallow every other INFO record of the ``absl`` logger."""

    def __init__(self):
        super().__init__()
        self._started = {}

    def filter(self, record: logging.LogRecord) -> bool:
        match = _PROGRESS.match(record.getMessage())
        if not match:
            return record.levelno >= logging.WARNING
        node, state = match.groups()
        if state == "running":
            self._started[node] = time.time()
            print(f"  ▶ {node} ...", file=sys.stderr, flush=True)
        else:
            took = time.time() - self._started.get(node, time.time())
            print(f"  ✓ {node} ({took:.0f}s)", file=sys.stderr, flush=True)
        return False


def metadata_config(cfg: LensflowConfig):
    """SQLite MLMD under the lensflow home."""
    os.makedirs(os.path.dirname(cfg.metadata_path), exist_ok=True)
    return metadata.sqlite_metadata_connection_config(cfg.metadata_path)


def run(cfg: LensflowConfig, show_progress: bool = False, wait: bool = False,
        model_choice: Optional[Dict[str, Any]] = None) -> None:
    """Run (or resume: cached components are reused) the pipeline for ``cfg``, holding the
    home's lock (``lensflow.pipeline.home_lock``; re-entrant, so a caller may already hold it):
    ``HomeBusy`` when another process runs in the same home, unless ``wait``.
    ``model_choice``: the record of a ``model.family: auto`` the caller resolved."""
    with home_lock.hold(cfg.home_dir, wait=wait):
        _run(cfg, show_progress, model_choice)


def _run(cfg: LensflowConfig, show_progress: bool,
         model_choice: Optional[Dict[str, Any]] = None) -> None:
    os.makedirs(cfg.pipeline_root, exist_ok=True)
    pipeline = create_pipeline(cfg, metadata_connection_config=metadata_config(cfg),
                               model_choice=model_choice)
    progress = _ProgressFilter() if show_progress else None
    logger = logging.getLogger("absl")
    if progress is not None:
        absl_logging.set_verbosity(absl_logging.INFO)
        logger.addFilter(progress)
    try:
        LocalDagRunner().run(pipeline)
    finally:
        if progress is not None:
            logger.removeFilter(progress)
