"""TF Serving's version folders: atomic publication and retention.

TF Serving polls ``<base>/<model_name>/`` and loads any numeric folder it finds, so a version must
appear whole or not at all: it is staged in a uniquely named dot-folder beside (ignored by TF
Serving, same filesystem) and renamed into place in one step. The version number is claimed by
that rename, so two pushes racing for the same second end up with distinct versions.

The readers here (versions, push records, content digests, the incumbent) go through
``tf.io.gfile`` and so also read a model base on an object store (``s3://``, ``gs://``), which
``components/pusher/remote.py`` publishes to; a version is complete once its
``saved_model.pb`` exists, in both.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
from tfx.utils import io_utils

from lensflow.pipeline.disk_errors import disk_cause
from lensflow.pipeline.object_store import ensure_filesystem

STAGING_PREFIX = ".staging-"
PUSH_RECORD = os.path.join("assets.extra", "lensflow_push.json")
# Files the Pusher adds beside the model (push record, training statistics): not the model's.
ADDED_PREFIX = os.path.join("assets.extra", "lensflow_")
STALE_STAGING_SECONDS = 3600.0
MAX_CLAIM_ATTEMPTS = 1000


class PushWriteError(OSError):
    """Copying a model into the serving folder failed (disk full, file too large, read-only):
    nothing was published."""


def _names(model_base: str) -> List[str]:
    """The entries of ``model_base`` (none when absent), local or on an object store."""
    ensure_filesystem(model_base)
    if not tf.io.gfile.isdir(model_base):
        return []
    return [name.rstrip("/") for name in tf.io.gfile.listdir(model_base)]


def versions(model_base: str) -> List[int]:
    """Complete version numbers under ``model_base``, oldest first."""
    return sorted(int(name) for name in _names(model_base) if name.isdigit()
                  and tf.io.gfile.exists(os.path.join(model_base, name, "saved_model.pb")))


def numeric_names(model_base: str) -> List[int]:
    """Every numeric folder name, complete or not (a version number that is taken)."""
    return sorted(int(name) for name in _names(model_base) if name.isdigit())


def next_version(model_base: str, now: Optional[float] = None) -> int:
    """Unix seconds, bumped past every existing numeric folder so two pushes never collide."""
    taken = numeric_names(model_base)
    candidate = int(now if now is not None else time.time())
    return max(candidate, taken[-1] + 1) if taken else candidate


def _stage(model_dir: str, model_base: str, record: Optional[dict] = None,
           added: Optional[Dict[str, bytes]] = None) -> str:
    """Copy ``model_dir`` (and ``record`` as the push record, ``added`` files by their paths
    under ``ADDED_PREFIX``) into a fresh staging folder under ``model_base``; return its path."""
    os.makedirs(model_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_base)
    try:
        io_utils.copy_dir(model_dir, staging)
        if record is not None:
            os.makedirs(os.path.dirname(os.path.join(staging, PUSH_RECORD)), exist_ok=True)
            with open(os.path.join(staging, PUSH_RECORD), "w") as fh:
                json.dump(record, fh, sort_keys=True)
        for relative, content in (added or {}).items():
            if not relative.startswith(ADDED_PREFIX):
                raise ValueError(f"{relative}: files added to a version go under {ADDED_PREFIX}")
            os.makedirs(os.path.dirname(os.path.join(staging, relative)), exist_ok=True)
            with open(os.path.join(staging, relative), "wb") as fh:
                fh.write(content)
    except (OSError, tf.errors.OpError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise PushWriteError(getattr(err, "errno", None) or errno.EIO,
                             f"could not copy the model {model_dir} into {model_base} "
                             f"({disk_cause(err) or err}); nothing was published, the "
                             "versions there are unchanged") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _claim(staging: str, final: str) -> bool:
    """Rename ``staging`` to ``final``; False when ``final`` already exists (someone else won)."""
    if os.path.exists(final):
        return False
    try:
        os.rename(staging, final)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def publish(model_dir: str, model_base: str, version: int) -> str:
    """Copy ``model_dir`` to ``<model_base>/<version>`` atomically; return the final path."""
    final = os.path.join(model_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"version {version} already exists at {final}")
    staging = _stage(model_dir, model_base)
    if not _claim(staging, final):
        shutil.rmtree(staging, ignore_errors=True)
        raise FileExistsError(f"version {version} already exists at {final}")
    return final


def publish_next(model_dir: str, model_base: str, now: Optional[float] = None,
                 record: Optional[dict] = None, added: Optional[Dict[str, bytes]] = None
                 ) -> Tuple[int, str]:
    """Publish ``model_dir`` (with ``record`` as its push record and the ``added`` files) as
    the next free version, claimed atomically; return it and its path."""
    staging = _stage(model_dir, model_base, record, added)
    try:
        for _ in range(MAX_CLAIM_ATTEMPTS):
            version = next_version(model_base, now)
            final = os.path.join(model_base, str(version))
            if _claim(staging, final):
                return version, final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    raise RuntimeError(f"could not claim a free version under {model_base} "
                       f"after {MAX_CLAIM_ATTEMPTS} attempts")


def withdraw(model_base: str, version: int) -> None:
    """Take ``version`` back out of ``model_base`` in one step (renamed out of TF Serving's
    sight, then deleted), so a reader never sees it half deleted."""
    hidden = os.path.join(model_base, f"{STAGING_PREFIX}withdrawn-{version}-{os.getpid()}")
    os.rename(os.path.join(model_base, str(version)), hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def prune(model_base: str, keep: int, stale_after: float = STALE_STAGING_SECONDS,
          protected: Sequence[int] = ()) -> List[int]:
    """Delete all but the newest ``keep`` versions (never a ``protected`` one, e.g. labelled
    ``stable``) and staging folders older than ``stale_after`` seconds (left by killed pushes;
    younger ones may be in progress); return the removed versions."""
    removed = []
    for version in versions(model_base)[:-keep] if keep > 0 else []:
        if version in protected:
            continue
        shutil.rmtree(os.path.join(model_base, str(version)))
        removed.append(version)
    cutoff = time.time() - stale_after
    for name in os.listdir(model_base) if os.path.isdir(model_base) else []:
        path = os.path.join(model_base, name)
        if name.startswith(STAGING_PREFIX) and _mtime(path) < cutoff:
            shutil.rmtree(path, ignore_errors=True)
    return removed


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except FileNotFoundError:
        return float("inf")


def _content_digest(folder: str) -> str:
    """sha256 over every file's relative path and bytes (the Pusher's added files aside)."""
    digest = hashlib.sha256()
    for relative in files_of(folder):
        if relative.startswith(ADDED_PREFIX):
            continue
        digest.update(relative.encode())
        with tf.io.gfile.GFile(os.path.join(folder, relative), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def files_of(folder: str) -> List[str]:
    """Every file's path relative to ``folder`` (``/``-separated), sorted; local or a URI."""
    ensure_filesystem(folder)
    folder = folder.rstrip("/")
    found = []
    for root, _, files in tf.io.gfile.walk(folder):
        prefix = root.rstrip("/")[len(folder):].lstrip("/")
        found += [f"{prefix}/{name}" if prefix else name for name in files]
    return sorted(found)


def serving_copy_of(model_dir: str, model_base: str) -> Optional[int]:
    """The newest version if it holds exactly ``model_dir``'s files, else None."""
    found = versions(model_base)
    if not found:
        return None
    newest = os.path.join(model_base, str(found[-1]))
    return found[-1] if _content_digest(newest) == _content_digest(model_dir) else None


def push_record(model_base: str, version: int) -> dict:
    """The push record of ``version`` ({} for a version pushed without one)."""
    path = os.path.join(model_base, str(version), PUSH_RECORD)
    try:
        with tf.io.gfile.GFile(path) as fh:
            return json.loads(fh.read())
    except (tf.errors.NotFoundError, FileNotFoundError, ValueError):
        return {}


def incumbent(model_base: str, fingerprint: str, field: str = "training_fingerprint"
              ) -> Optional[int]:
    """The newest version whose push record's ``field`` is not ``fingerprint``: the model a
    candidate trained from those inputs must beat. A candidate is never its own baseline, so an
    unchanged re-run sees the same incumbent as the run that pushed it (and stays cached)."""
    for version in reversed(versions(model_base)):
        if push_record(model_base, version).get(field) != fingerprint:
            return version
    return None
