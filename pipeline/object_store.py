"""Object stores through ``tf.io.gfile``, set up once for every lensflow process that needs them.

``gs://`` is built into TensorFlow. ``s3://`` is known only once tensorflow-io is imported (it
registers its S3 filesystem; endpoint and credentials come from ``S3_ENDPOINT``,
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``), and a process that used it can abort at
exit after its work is done ("pure virtual method called", exit code 134: tensorflow-io 0.37.1's
S3 filesystem on TF 2.16.2, tensorflow/io#2039, #1912). ``exit_now`` ends such a process with
its own status once its output is flushed.

``is_uri`` and ``ensure_filesystem`` let every reader and writer of data, models and
``models.config`` take one path through ``tf.io.gfile`` for local paths and URIs alike:
``ensure_filesystem`` registers what a URI's scheme needs before the first call.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from typing import NoReturn


class ObjectStoreUnavailable(RuntimeError):
    """The filesystem a URI needs is not installed."""


_URI = re.compile(r"^[a-z][a-z0-9+.-]*://.")


def uses_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def is_uri(path) -> bool:
    """True for ``scheme://...`` (``s3://``, ``gs://``...), False for a local path."""
    return bool(path) and bool(_URI.match(str(path)))


def ensure_filesystem(path) -> None:
    """Make ``tf.io.gfile`` able to reach ``path`` (registers ``s3://``; a no-op otherwise)."""
    if path and uses_s3(path):
        register_s3()


def register_s3() -> None:
    """Make ``s3://`` known to ``tf.io.gfile`` (idempotent)."""
    try:
        import tensorflow_io  # noqa: F401 - the import registers the s3 filesystem
    except ImportError as err:
        raise ObjectStoreUnavailable(
            "s3:// needs tensorflow-io installed (and S3_ENDPOINT, AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY set)") from err


def exit_now(status: int) -> NoReturn:
    """Flush and end the process without interpreter teardown (tensorflow/io#2039)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
