"""Publishing versions to a model base on an object store (``s3://``, ``gs://``).

An object store has no atomic rename of a folder (tensorflow-io's S3 "rename" copies and
deletes object by object), so the local stage-and-rename of ``versions.py`` cannot make a
version appear whole. Two facts do, together:

- a single object PUT is atomic: a reader sees the old object or the new one;
- TF Serving loads from a ``models.config`` whose policy is ``specific { versions: ... }``
  only the versions it names (``models_config.update`` with ``complete=``).

So a version is uploaded under its numeric prefix with ``saved_model.pb`` last (its presence is
the completion marker ``versions.versions`` checks, on every store), and only then is
``models.config`` rewritten (one PUT) to name it. A push that dies part-way leaves a prefix
without ``saved_model.pb`` that ``models.config`` never names; ``prune`` removes it once stale.
A push that fails with an error removes what it uploaded. TF Serving must run with
``--model_config_file=<serving_dir>/models.config`` (and ``--model_config_file_poll_wait_seconds``
to follow pushes), not with a bare ``--model_base_path``, whose ``latest`` policy would try a
half-uploaded version.

Not covered: two pushes to the same model base at the same moment. The store offers no
create-if-absent through ``tf.io.gfile``, so the version number cannot be claimed atomically as
the local rename claims it; the push reads its own record back and fails loudly if another push
overwrote the version. ``lensflow run`` holds its home's lock; give each concurrent pipeline
its own model name.
"""
from __future__ import annotations

import errno
import json
import os
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from lensflow.components.pusher import versions
from lensflow.pipeline.object_store import ensure_filesystem

MARKER = "saved_model.pb"


def _upload(model_dir: str, final: str, record: Optional[dict],
            added: Optional[Dict[str, bytes]] = None) -> None:
    """Copy every file of ``model_dir`` under ``final``, then the ``added`` files, the push
    record next to last and ``saved_model.pb`` last."""
    files = versions.files_of(model_dir)
    if MARKER not in files:
        raise FileNotFoundError(errno.ENOENT, f"no {MARKER} in the model to push", model_dir)
    for relative in [name for name in files if name not in (MARKER, versions.PUSH_RECORD)]:
        tf.io.gfile.copy(os.path.join(model_dir, relative), f"{final}/{relative}", overwrite=True)
    for relative, content in (added or {}).items():
        if not relative.startswith(versions.ADDED_PREFIX):
            raise ValueError(f"{relative}: files added to a version go under "
                             f"{versions.ADDED_PREFIX}")
        with tf.io.gfile.GFile(f"{final}/{relative}", "wb") as fh:
            fh.write(content)
    if record is not None:
        with tf.io.gfile.GFile(f"{final}/{versions.PUSH_RECORD}", "w") as fh:
            fh.write(json.dumps(record, sort_keys=True))
    tf.io.gfile.copy(os.path.join(model_dir, MARKER), f"{final}/{MARKER}", overwrite=True)


def publish_next(model_dir: str, model_base: str, now: Optional[float] = None,
                 record: Optional[dict] = None, added: Optional[Dict[str, bytes]] = None
                 ) -> Tuple[int, str]:
    """Upload ``model_dir`` as the next free version under ``model_base``; return it and its
    URI. On an error what was uploaded is removed and ``versions.PushWriteError`` raised."""
    ensure_filesystem(model_base)
    model_base = model_base.rstrip("/")
    version = versions.next_version(model_base, now)
    final = f"{model_base}/{version}"
    push_id = uuid.uuid4().hex
    record = {**(record or {}), "push_id": push_id}
    try:
        _upload(model_dir, final, record, added)
    except (OSError, tf.errors.OpError) as err:
        _remove(final)
        raise versions.PushWriteError(
            getattr(err, "errno", None) or errno.EIO,
            f"could not upload the model {model_dir} to {final} "
            f"({getattr(err, 'message', None) or err}); what was uploaded was removed, nothing "
            "was published and models.config is unchanged") from err
    except BaseException:
        _remove(final)
        raise
    if versions.push_record(model_base, version).get("push_id") != push_id:
        raise versions.PushWriteError(
            errno.EEXIST, f"another push wrote version {version} under {model_base} at the same "
            "time; its models.config entry was not changed by this push")
    return version, final


def _remove(prefix: str) -> None:
    """Delete everything under ``prefix``, ``saved_model.pb`` first so that the version stops
    being complete before its other files go."""
    marker = f"{prefix}/{MARKER}"
    if tf.io.gfile.exists(marker):
        tf.io.gfile.remove(marker)
    if tf.io.gfile.isdir(prefix):
        tf.io.gfile.rmtree(prefix)


def withdraw(model_base: str, version: int) -> None:
    """Take ``version`` back out (a push whose models.config update failed)."""
    _remove(f"{model_base.rstrip('/')}/{version}")


def prune(model_base: str, keep: int, stale_after: float = versions.STALE_STAGING_SECONDS,
          protected: Sequence[int] = ()) -> List[int]:
    """Delete all but the newest ``keep`` complete versions (never a ``protected`` one), and
    incomplete numeric prefixes whose number (the push's unix time) is older than
    ``stale_after`` seconds: left by killed pushes; younger ones may be in progress."""
    model_base = model_base.rstrip("/")
    complete = versions.versions(model_base)
    removed = []
    for version in complete[:-keep] if keep > 0 else []:
        if version not in protected:
            _remove(f"{model_base}/{version}")
            removed.append(version)
    cutoff = time.time() - stale_after
    for version in versions.numeric_names(model_base):
        if version not in complete and version < cutoff:
            _remove(f"{model_base}/{version}")
    return removed
