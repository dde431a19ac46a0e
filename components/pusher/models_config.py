"""TF Serving's ``models.config`` (ModelServerConfig text proto), kept in step with pushes, and
its version labels (``stable``, ``canary``) that ``lensflow serve labels`` moves.

Without labels a model's entry loads the newest versions (``latest`` policy). Once labels are
set, the entry loads exactly the labelled versions plus the newest push (``specific`` policy, as
in TF Serving's canary recipe), so a new push is loaded and can be labelled, and retention never
deletes a labelled version (``protected_versions``).

On an object store (``serving_dir`` a URI) the file is read and written through
``tf.io.gfile`` (one PUT replaces it whole), and the entry always uses the ``specific`` policy
over complete versions: that list is how a version is published there
(``components/pusher/remote.py``).
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict, Iterable, List, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from lensflow.pipeline.object_store import ensure_filesystem, is_uri

CONFIG_FILE = "models.config"


def read(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse a models.config file (an empty config when absent)."""
    config = model_server_config_pb2.ModelServerConfig()
    text = _read_text(path)
    if text is not None:
        text_format.Parse(text, config)
    return config


def exists(path: str) -> bool:
    """True when ``path`` (a file or a URI) exists."""
    return _read_text(path) is not None


def _read_text(path: str) -> Optional[str]:
    """The file's text, None when absent (a URI through ``tf.io.gfile``)."""
    if not is_uri(path):
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    import tensorflow as tf

    ensure_filesystem(path)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as fh:
        return fh.read().decode("utf-8")


def entry(config: model_server_config_pb2.ModelServerConfig, model_name: str):
    """``model_name``'s ModelConfig in ``config``, or None."""
    return next((e for e in config.model_config_list.config if e.name == model_name), None)


def write(path: str, config: model_server_config_pb2.ModelServerConfig, header: str = "") -> str:
    """Write ``config`` atomically and world-readable (a server may run as another user), after
    ``header`` (comment lines kept from the file it replaces); return the path. On an object
    store one PUT replaces the object whole."""
    if is_uri(path):
        import tensorflow as tf

        ensure_filesystem(path)
        with tf.io.gfile.GFile(path, "w") as fh:
            fh.write(header + text_format.MessageToString(config))
        return path
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(header + text_format.MessageToString(config))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def leading_comments(path: str) -> str:
    """The comment lines at the top of ``path`` (kept when the file is rewritten)."""
    lines = []
    for line in (_read_text(path) or "").splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def set_policy(model, keep_versions: int, newest: Optional[int] = None,
               complete: Optional[List[int]] = None) -> None:
    """Labels absent: the newest ``min(keep_versions, 2)``; present: the labelled versions and
    ``newest`` (``specific``). With ``complete`` (the complete versions on an object store):
    always ``specific``, naming the labelled versions and the newest ``min(keep_versions, 2)``
    complete ones, so a version being uploaded is never named."""
    model.model_version_policy.Clear()
    labelled = set(model.version_labels.values())
    if complete is not None:
        wanted = labelled | set(complete[-max(1, min(keep_versions, 2)):])
        model.model_version_policy.specific.versions.extend(sorted(wanted))
        return
    if not labelled:
        model.model_version_policy.latest.num_versions = max(1, min(keep_versions, 2))
        return
    wanted = labelled | ({newest} if newest is not None else set())
    model.model_version_policy.specific.versions.extend(sorted(wanted))


def update(serving_dir: str, model_name: str, base_path: str, keep_versions: int,
           newest: Optional[int] = None, complete: Optional[List[int]] = None) -> str:
    """Add or refresh ``model_name``'s entry after a push of ``newest``, keeping its labels
    (``complete``: see ``set_policy``); return the path."""
    path = os.path.join(serving_dir, CONFIG_FILE)
    config = read(path)
    model = entry(config, model_name) or config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path if "://" in base_path else os.path.abspath(base_path)
    model.model_platform = "tensorflow"
    set_policy(model, keep_versions, newest, complete)
    return write(path, config, leading_comments(path))


def protected_versions(serving_dir: str, model_name: str) -> List[int]:
    """Versions that ``models.config`` labels for ``model_name`` (never pruned)."""
    model = entry(read(os.path.join(serving_dir, CONFIG_FILE)), model_name)
    return sorted(set(model.version_labels.values())) if model is not None else []


def set_labels(path: str, model_name: str, assign: Dict[str, int], remove: Iterable[str] = (),
               on_disk: Optional[List[int]] = None, keep_versions: int = 2) -> Dict[str, int]:
    """Move (``assign``) or drop (``remove``) version labels of ``model_name`` in ``path`` and
    set the policy to match; ``on_disk`` (complete versions, when the base path is readable
    here) must hold every labelled version. Returns the labels now set; ValueError names what
    is wrong."""
    config = read(path)
    model = entry(config, model_name)
    if model is None:
        known = [e.name for e in config.model_config_list.config]
        raise ValueError(f"{path} has no model named {model_name!r} (models: {known or 'none'})")
    for label, version in assign.items():
        if not label or not label.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"label {label!r}: use letters, digits, '-' and '_'")
        if int(version) < 1:
            raise ValueError(f"label {label}={version}: versions are positive integers")
        if on_disk is not None and int(version) not in on_disk:
            raise ValueError(f"label {label}={version}: no complete version {version} under "
                             f"{model.base_path} (versions: {on_disk or 'none'})")
    for label in remove:
        if label not in model.version_labels:
            raise ValueError(f"label {label!r} is not set (labels: {dict(model.version_labels)})")
        del model.version_labels[label]
    for label, version in assign.items():
        model.version_labels[label] = int(version)
    set_policy(model, keep_versions, on_disk[-1] if on_disk else None,
               on_disk if is_uri(path) and on_disk is not None else None)
    write(path, config, leading_comments(path))
    return dict(model.version_labels)
