"""Beam's portable services as separate processes on loopback, for the runner tests.

``job_service`` is Beam's pure-Python job service (``local_job_service_main``); ``worker_pool``
is Beam's SDK worker pool (``worker_pool_main``, what the Python SDK container runs with
``--worker_pool``), the other end of ``--environment_type=EXTERNAL``. The pool starts with an
environment of its own: the venv's interpreter (the stand-in for lensflow's image), lensflow
importable from this checkout and nothing else of the test process, in a working directory of
its own. Both are stopped, with every process they started, when the context ends.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

from lensflow.pipeline.config import REPO_ROOT

START_S = 90
STOP_S = 15
# What the worker pool logs (as a warning, so it reaches stderr) for every SDK worker it starts.
POOL_STARTED_WORKER = "Starting worker with command"


def free_port() -> int:
    """A loopback port nobody listens on now; skips the test, saying why, when none can be bound."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]
    except OSError as err:
        pytest.skip(f"cannot bind a loopback port for Beam's services: {err}")


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen) -> None:
    """SIGINT first (the worker pool then stops its SDK workers itself), then the whole group."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_S)


def _start(command, *, log: Path, env: Dict[str, str], cwd: Path) -> subprocess.Popen:
    with open(log, "wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                cwd=cwd, start_new_session=True)


def _fail_or_skip(name: str, process: subprocess.Popen, log: Path) -> None:
    text = log.read_text(errors="replace")
    if "bind" in text.lower() or "address already in use" in text.lower():
        pytest.skip(f"{name} could not bind its loopback port:\n{text[-2000:]}")
    pytest.fail(f"{name} did not start (exit code {process.poll()}):\n{text[-4000:]}")


@contextlib.contextmanager
def job_service(workdir: Path) -> Iterator[str]:
    """Beam's local job service; yields its ``localhost:port`` endpoint."""
    port_file, log = workdir / "port", workdir / "job_service.log"
    command = [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
               "--port", "0", "--port_file", str(port_file)]
    process = _start(command, log=log, env=dict(os.environ), cwd=workdir)
    try:
        deadline = time.monotonic() + START_S
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                _fail_or_skip("Beam's local job service", process, log)
            time.sleep(0.2)
        yield f"localhost:{port_file.read_text().strip()}"
    finally:
        _stop(process)


def worker_env(home: Path) -> Dict[str, str]:
    """What an SDK worker in lensflow's image sees: its Python first on PATH, lensflow importable
    (here from this checkout, in the image installed by kubeflow/Dockerfile), the image's TF
    settings; nothing else of the launching process."""
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "HOME": str(home), "PYTHONPATH": str(REPO_ROOT),
            "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


@contextlib.contextmanager
def worker_pool(workdir: Path) -> Iterator[tuple]:
    """Beam's SDK worker pool; yields (``localhost:port``, its log file)."""
    port, log = free_port(), workdir / "worker_pool.log"
    process = _start([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                      f"--service_port={port}"],
                     log=log, env=worker_env(workdir), cwd=workdir)
    try:
        deadline = time.monotonic() + START_S
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                _fail_or_skip("Beam's worker pool", process, log)
            time.sleep(0.2)
        yield f"localhost:{port}", log
    finally:
        _stop(process)
