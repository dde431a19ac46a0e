"""TF Serving's version folders: atomic publication and retention.

TF Serving polls ``<base>/<model_name>/`` and loads any numeric folder it finds, so a version must
appear whole or not at all: it is staged in a dot-folder beside (ignored by TF Serving, same
filesystem) and renamed into place in one step.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import List, Optional

from tfx.utils import io_utils

STAGING_PREFIX = ".staging-"


def versions(model_base: str) -> List[int]:
    """Complete version numbers under ``model_base``, oldest first."""
    if not os.path.isdir(model_base):
        return []
    return sorted(int(name) for name in os.listdir(model_base)
                  if name.isdigit() and os.path.exists(os.path.join(model_base, name, "saved_model.pb")))


def next_version(model_base: str, now: Optional[float] = None) -> int:
    """Unix seconds, bumped past the newest existing version so two pushes never collide."""
    existing = versions(model_base)
    candidate = int(now if now is not None else time.time())
    return max(candidate, existing[-1] + 1) if existing else candidate


def publish(model_dir: str, model_base: str, version: int) -> str:
    """Copy ``model_dir`` to ``<model_base>/<version>`` atomically; return the final path."""
    final = os.path.join(model_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"version {version} already exists at {final}")
    staging = os.path.join(model_base, f"{STAGING_PREFIX}{version}")
    os.makedirs(model_base, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    io_utils.copy_dir(model_dir, staging)
    os.rename(staging, final)
    return final


def prune(model_base: str, keep: int) -> List[int]:
    """Delete all but the newest ``keep`` versions and stale staging folders; return removed."""
    removed = []
    for version in versions(model_base)[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(model_base, str(version)))
        removed.append(version)
    for name in os.listdir(model_base) if os.path.isdir(model_base) else []:
        if name.startswith(STAGING_PREFIX):
            shutil.rmtree(os.path.join(model_base, name), ignore_errors=True)
    return removed
