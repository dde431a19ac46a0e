"""The version folders of one model, served the way TF Serving serves them.

``ModelStore`` polls ``<serving_dir>/<model_name>/`` for numeric version folders, loads the newest
(``num_versions`` of them, TF Serving's "latest" policy) before unloading the one it replaces,
keeps the previous version when a new one fails to load, and unloads a version whose folder
disappears (the next newest takes over). A version's warmup requests
(``assets.extra/tf_serving_warmup_requests``) are replayed before it is AVAILABLE; a failing one
fails the load. Given a ``models.config`` (TF Serving's ``--model_config_file``), its version
policy (``latest`` or ``specific``) and version labels are honoured and re-read on every poll.
Version states use TF Serving's names.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from lensflow.components.pusher import models_config
from lensflow.components.pusher.versions import versions as list_versions
from lensflow.serving import warmup
from lensflow.serving.errors import BadRequest, ModelNotFound, NotFound
from lensflow.serving.saved_model import LoadedModel, is_version_dir

log = logging.getLogger("lensflow.serving")

LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"


@dataclass(frozen=True)
class VersionStatus:
    """One version's state (``LOADING``/``AVAILABLE``/``END``) and error, as TF Serving reports it."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


def resolve_model_base(path: str, model_name: str) -> str:
    """The folder holding numeric versions: ``path`` itself or ``path/<model_name>``."""
    path = os.path.abspath(os.path.expanduser(path))
    if is_version_dir(path):
        raise ModelNotFound(f"{path} is a version folder; give the folder that holds the "
                            f"numeric versions (its parent)")
    nested = os.path.join(path, model_name)
    if not list_versions(path) and os.path.isdir(nested):
        return nested
    return path


def resolve_version_dir(path: str, model_name: str) -> str:
    """``path`` if it is a SavedModel, else the newest version under it (or ``path/<model_name>``)."""
    path = os.path.abspath(os.path.expanduser(path))
    if is_version_dir(path):
        return path
    base = resolve_model_base(path, model_name)
    found = list_versions(base)
    if not found:
        raise ModelNotFound(f"no SavedModel at {path} and no numeric version folder under {base}")
    return os.path.join(base, str(found[-1]))


class ModelStore:
    """Loaded versions of one model plus their states; ``refresh`` is one poll of the folder."""

    def __init__(self, model_base: str, model_name: str, num_versions: int = 1,
                 loader: Callable[[str, int], LoadedModel] = LoadedModel,
                 model_config_file: Optional[str] = None):
        self.model_base = model_base
        self.model_name = model_name
        self.num_versions = max(1, num_versions)
        self.model_config_file = model_config_file
        self.specific_versions: Optional[List[int]] = None
        self.labels: Dict[str, int] = {}
        self.batcher = None         # a serving.batching.Batcher when batching is on
        self._loader = loader
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._loaded: Dict[int, LoadedModel] = {}
        self._states: Dict[int, VersionStatus] = {}

    def refresh(self) -> None:
        """Load the newest loadable versions, then unload the ones no longer wanted or on disk.

        A version that fails to load is skipped (and not retried), so the previous one keeps
        serving; new versions are loaded before the ones they replace are unloaded."""
        with self._refresh_lock:
            self._read_model_config()
            on_disk = list_versions(self.model_base)
            while True:
                wanted = self._wanted(on_disk)
                pending = [v for v in wanted if self._should_load(v)]
                if not pending:
                    break
                for version in pending:
                    self._load(version)
            for version in sorted(self._loaded):
                if version not in wanted:
                    self._unload(version, "folder removed" if version not in on_disk else "superseded")

    def _read_model_config(self) -> None:
        """Version policy and labels of this model's entry in ``model_config_file``; a config
        that cannot be read keeps the previous one (as TF Serving keeps a running config)."""
        if not self.model_config_file:
            return
        try:
            entry = models_config.entry(models_config.read(self.model_config_file),
                                        self.model_name)
        except Exception as err:  # noqa: BLE001 - a bad edit must not stop serving
            log.error("ignoring %s: %s", self.model_config_file, err)
            return
        if entry is None:
            log.error("ignoring %s: no entry for model %r", self.model_config_file, self.model_name)
            return
        policy = entry.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        with self._lock:
            self.specific_versions = sorted(policy.specific.versions) if kind == "specific" \
                else None
            if kind == "latest":
                self.num_versions = max(1, policy.latest.num_versions)
            elif kind == "all":
                self.num_versions = 1 << 30
            self.labels = dict(entry.version_labels)

    def _wanted(self, on_disk: List[int]) -> List[int]:
        with self._lock:
            failed = {v for v, s in self._states.items() if s.error_code != "OK"}
            specific = self.specific_versions
        candidates = [v for v in on_disk if v not in failed]
        if specific is not None:
            return [v for v in candidates if v in specific]
        return candidates[-self.num_versions:]

    def predict(self, model: LoadedModel, inputs, signature: Optional[str] = None,
                output_filter: Optional[List[str]] = None):
        """``model.predict``, through ``self.batcher`` when batching is on."""
        if self.batcher is not None:
            return self.batcher.predict(model, inputs, signature, output_filter)
        return model.predict(inputs, signature, output_filter)

    def version_of_label(self, label: str) -> int:
        """The version ``label`` names in the model config (BadRequest when unknown)."""
        with self._lock:
            if label in self.labels:
                return self.labels[label]
            known = sorted(self.labels)
        raise BadRequest(f"Unrecognized servable version label: {label}"
                         + (f" (labels: {', '.join(known)})" if known else
                            " (no version labels configured; serve with --model-config-file)"))

    def get(self, version: Optional[int] = None) -> LoadedModel:
        """The newest loaded version, or ``version`` (NotFound, in TF Serving's words, if absent)."""
        with self._lock:
            if version is None and self._loaded:
                return self._loaded[max(self._loaded)]
            if version is not None and version in self._loaded:
                return self._loaded[version]
        request = f"Latest({self.model_name})" if version is None else \
            f"Specific({self.model_name}, {version})"
        raise NotFound(f"Servable not found for request: {request}")

    def loaded_versions(self) -> List[int]:
        """Versions ready to answer, oldest first."""
        with self._lock:
            return sorted(self._loaded)

    def status(self, version: Optional[int] = None) -> List[VersionStatus]:
        """States of all known versions, newest first, or of one (NotFound if never seen)."""
        with self._lock:
            states = dict(self._states)
        if version is not None:
            if version not in states:
                raise NotFound(f"Could not find version {version} of model {self.model_name}")
            return [states[version]]
        if not states:
            raise NotFound(f"Could not find any versions of model {self.model_name}")
        return [states[v] for v in sorted(states, reverse=True)]

    def _should_load(self, version: int) -> bool:
        """Never seen, or unloaded cleanly earlier; a version that failed to load is not retried."""
        with self._lock:
            status = self._states.get(version)
        return status is None or (status.state == END and status.error_code == "OK")

    def _set(self, status: VersionStatus) -> None:
        with self._lock:
            self._states[status.version] = status

    def _load(self, version: int) -> None:
        path = os.path.join(self.model_base, str(version))
        self._set(VersionStatus(version, LOADING))
        log.info("loading %s version %d from %s", self.model_name, version, path)
        try:
            model = self._loader(path, version)
            replayed = warmup.replay(model, warmup.predict_requests(path))
        except Exception as err:  # a broken version must not take the server down
            log.error("failed to load %s version %d: %s", self.model_name, version, err)
            self._set(VersionStatus(version, END, "UNKNOWN", f"{type(err).__name__}: {err}"))
            return
        with self._lock:
            self._loaded[version] = model
            self._states[version] = VersionStatus(version, AVAILABLE)
        log.info("%s version %d is AVAILABLE (%d warmup requests replayed)", self.model_name,
                 version, replayed)

    def _unload(self, version: int, reason: str) -> None:
        with self._lock:
            self._loaded.pop(version, None)
            self._states[version] = VersionStatus(version, END)
        log.info("unloaded %s version %d (%s)", self.model_name, version, reason)


class Watcher:
    """A daemon thread calling ``store.refresh()`` every ``poll_seconds`` until stopped."""

    def __init__(self, store: ModelStore, poll_seconds: float):
        self._store = store
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lensflow-model-watcher", daemon=True)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self._store.refresh()
            except Exception:  # keep polling: the folder may be mid-change or briefly unreadable
                log.exception("polling %s failed", self._store.model_base)
