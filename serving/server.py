"""``lensflow serve``: TF Serving's REST and gRPC APIs over the pushed version folders.

This is a stand-in for local development and tests; production serving is TF Serving itself
(``tensorflow_model_server --model_config_file=<serving_dir>/models.config``). It answers real TF
Serving clients the same way, loads the newest version and picks up new or removed ones by
polling.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from lensflow.serving.batching import Batcher, BatchingConfig
from lensflow.serving.grpc_service import make_grpc_server
from lensflow.serving.model_store import ModelStore, Watcher
from lensflow.serving.rest import DEFAULT_MAX_REQUEST_BYTES, RestApi, make_http_server

log = logging.getLogger("lensflow.serving")

STAND_IN_NOTICE = ("lensflow serve is a TF Serving stand-in for local development and tests; "
                   "production serving is TF Serving itself")


class StandInServer:
    """REST + gRPC TF Serving stand-in for one model; ports 0 pick free ones (see ``rest_port``)."""

    def __init__(self, model_base: str, model_name: str, host: str = "127.0.0.1",
                 rest_port: int = 8501, grpc_port: int = 8500, poll_seconds: float = 2.0,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 model_config_file: Optional[str] = None,
                 batching: Optional[BatchingConfig] = None):
        self.store = ModelStore(model_base, model_name, model_config_file=model_config_file)
        self._batching = batching
        self.host = host
        self._ports = (rest_port, grpc_port)
        self._poll_seconds = poll_seconds
        self._max_request_bytes = max_request_bytes
        self._http = None
        self._http_thread: Optional[threading.Thread] = None
        self._grpc = None
        self._watcher: Optional[Watcher] = None
        self.rest_port = self.grpc_port = 0

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def start(self) -> "StandInServer":
        """Load the newest version (if any), then start polling and both front ends."""
        log.warning(STAND_IN_NOTICE)
        self.store.refresh()
        if self._batching is not None:
            self.store.batcher = Batcher(self._batching)
        try:
            self._http = make_http_server(RestApi(self.store), self.host, self._ports[0],
                                          self._max_request_bytes)
            self.rest_port = self._http.server_address[1]
            self._grpc, self.grpc_port = make_grpc_server(self.store, self.host, self._ports[1],
                                                          max_message_bytes=self._max_request_bytes)
        except Exception:
            self.stop()
            raise
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="lensflow-rest",
                                             daemon=True)
        self._http_thread.start()
        self._grpc.start()
        self._watcher = Watcher(self.store, self._poll_seconds).start()
        log.info("serving %s from %s: REST %s, gRPC %s", self.store.model_name,
                 self.store.model_base, self.rest_url, self.grpc_address)
        if not self.store.loaded_versions():
            log.warning("no loadable version under %s yet; looking again every %ss",
                        self.store.model_base, self._poll_seconds)
        return self

    def stop(self) -> None:
        """Stop polling and both front ends (idempotent)."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self.store.batcher is not None:
            self.store.batcher.stop()
            self.store.batcher = None
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
            self._grpc = None
        if self._http_thread is not None:
            self._http.shutdown()
            self._http_thread.join(timeout=10)
            self._http_thread = None
        if self._http is not None:
            self._http.server_close()
            self._http = None

    def __enter__(self) -> "StandInServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
