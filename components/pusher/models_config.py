"""TF Serving's ``models.config`` (ModelServerConfig text proto), kept in step with pushes."""
from __future__ import annotations

import os
import tempfile

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

CONFIG_FILE = "models.config"


def read(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse a models.config file (an empty config when absent)."""
    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            text_format.Parse(fh.read(), config)
    return config


def update(serving_dir: str, model_name: str, base_path: str, keep_versions: int) -> str:
    """Add or refresh ``model_name``'s entry (TF Serving loads the newest ``min(keep_versions, 2)``);
    written atomically and world-readable (a server may run as another user); return the path."""
    path = os.path.join(serving_dir, CONFIG_FILE)
    config = read(path)
    entries = config.model_config_list.config
    entry = next((e for e in entries if e.name == model_name), None) or entries.add()
    entry.name = model_name
    entry.base_path = base_path if "://" in base_path else os.path.abspath(base_path)
    entry.model_platform = "tensorflow"
    entry.model_version_policy.Clear()
    entry.model_version_policy.latest.num_versions = max(1, min(keep_versions, 2))
    os.makedirs(serving_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{CONFIG_FILE}.", dir=serving_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text_format.MessageToString(config))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
