"""A model server in its own process on loopback: the real ``tensorflow_model_server`` when it is
on PATH, otherwise ``lensflow serve`` (the TF Serving stand-in), both on free ports over one
version folder, stopped (and its log kept) when done."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import List, Optional, Sequence

REAL_BINARY = "tensorflow_model_server"
STAND_IN = "lensflow serve (TF Serving stand-in)"
LOG_TAIL_CHARS = 2000


class ServerError(RuntimeError):
    """The server did not start, did not load the version, or died; the message says which."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary() -> Optional[str]:
    """``tensorflow_model_server`` on PATH, or None."""
    return shutil.which(REAL_BINARY)


class ModelServer:
    """One server process serving ``model_base`` (holding numeric versions) as ``model_name``."""

    def __init__(self, model_base: str, model_name: str, log_path: str,
                 binary: Optional[str] = None, extra_args: Sequence[str] = ()):
        self.model_base, self.model_name, self.log_path = model_base, model_name, log_path
        self.binary = binary
        self.extra_args = list(extra_args)
        self.kind = REAL_BINARY if binary else STAND_IN
        self.rest_port, self.grpc_port = free_port(), free_port()
        self._proc: Optional[subprocess.Popen] = None
        self._log = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self) -> List[str]:
        if self.binary:
            return [self.binary, f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
                    f"--model_name={self.model_name}", f"--model_base_path={self.model_base}",
                    "--file_system_poll_wait_seconds=1", *self.extra_args]
        return [sys.executable, "-m", "lensflow.pipeline.cli", "serve", "--model-dir", self.model_base,
                "--model-name", self.model_name, "--host", "127.0.0.1",
                "--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port),
                "--poll-seconds", "0.5", *self.extra_args]

    def start(self) -> "ModelServer":
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_available(self, deadline: float, version: int = 1) -> float:
        """Seconds until ``version`` is AVAILABLE (after its warmup); ServerError when it fails
        to load, the process exits, or ``deadline`` (time.monotonic) passes."""
        started = time.monotonic()
        url = f"{self.rest_url}/v1/models/{self.model_name}/versions/{version}"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with code {self._proc.returncode} before "
                                  f"the model was available: {self.log_tail()}")
            state, error = self._state(url)
            if state == "AVAILABLE":
                return time.monotonic() - started
            if state == "END" and error:
                raise ServerError(f"{self.kind} could not load the candidate: {error}")
            time.sleep(0.25)
        raise ServerError(f"{self.kind} did not report the candidate AVAILABLE within the time "
                          f"limit: {self.log_tail()}")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def state(self, version: int):
        """(state, error message) of ``version`` as the server reports it, or (None, None)."""
        return self._state(f"{self.rest_url}/v1/models/{self.model_name}/versions/{version}")

    @staticmethod
    def _state(url: str):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                payload = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None, None
        for status in payload.get("model_version_status", []):
            error = status.get("status", {})
            message = error.get("error_message") if error.get("error_code", "OK") != "OK" else ""
            return status.get("state"), message
        return None, None

    def log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            with open(self.log_path, "rb") as fh:
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return text[-LOG_TAIL_CHARS:].strip() or "(empty log)"

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
