"""One run at a time per home: a second ``lensflow run`` on a busy home refuses before touching
it (exit 1, naming the home and the other process) or, with ``--wait``, queues behind it.

The first run is played by a small helper process holding the real lock, so the tests are cheap;
the refusing and waiting sides are the real command line in a process of its own."""
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from lensflow.pipeline import home_lock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "data", "sample")

HOLDER = """
import sys
from lensflow.pipeline import home_lock
with home_lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def _env():
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _holder(home):
    """A process holding ``home``'s lock until its stdin gets a line."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(home)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _lensflow(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "lensflow.pipeline.cli", *args], env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_the_lock_is_reentrant_in_one_process_and_records_its_holder(tmp_path):
    with home_lock.hold(tmp_path):
        holder = home_lock.read_holder(tmp_path)
        assert holder["pid"] == os.getpid()
        with home_lock.hold(tmp_path):       # e.g. lensflow compare's runs inside its own hold
            pass
        assert home_lock.read_holder(tmp_path)["pid"] == os.getpid()
    assert home_lock.read_holder(tmp_path) == {}


def test_a_second_run_on_a_busy_home_refuses_naming_the_home_and_the_other_run(tmp_path):
    home = tmp_path / "home"
    holder = _holder(home)
    try:
        proc = _lensflow("run", "--home", str(home), "--data", SAMPLE, "--epochs", "1")
        out, err = proc.communicate(timeout=300)
    finally:
        holder.communicate("\n", timeout=60)
    assert proc.returncode == 1, (out, err)
    assert str(home) in err and f"pid {holder.pid}" in err and "started" in err, err
    assert "--wait" in err and "Traceback" not in err, err
    assert sorted(os.listdir(home)) == [home_lock.LOCK_NAME]   # nothing of a run was written


def test_compare_on_a_busy_home_refuses_too(tmp_path):
    home = tmp_path / "home"
    holder = _holder(home)
    try:
        proc = _lensflow("compare", "--home", str(home), "--data", SAMPLE, "--seeds", "1",
                         "--variants", "baseline")
        out, err = proc.communicate(timeout=300)
    finally:
        holder.communicate("\n", timeout=60)
    assert proc.returncode == 1, (out, err)
    assert f"pid {holder.pid}" in err, err
    assert sorted(os.listdir(home)) == [home_lock.LOCK_NAME]


def test_the_lock_dies_with_its_holder(tmp_path):
    holder = _holder(tmp_path)
    assert home_lock.read_holder(tmp_path)["pid"] == holder.pid
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    with home_lock.hold(tmp_path):               # no stale lock after a killed run
        assert home_lock.read_holder(tmp_path)["pid"] == os.getpid()


@pytest.mark.slow  # a real lensflow run process
def test_run_with_wait_queues_behind_the_holder_then_runs(tmp_path):
    """``--wait`` says whom it waits for and starts only once the holder lets go (it then runs:
    here on an empty data folder, which ingestion refuses, so the run is short and fails)."""
    home, data = tmp_path / "home", tmp_path / "empty"
    data.mkdir()
    holder = _holder(home)
    proc = _lensflow("run", "--wait", "--home", str(home), "--data", str(data),
                     "--summary-json", str(tmp_path / "summary.json"))
    waiting, wrote_while_waiting = [], []

    def watch():
        for line in proc.stderr:
            waiting.append(line)
            if line.startswith("waiting:"):
                wrote_while_waiting.append((home / "metadata").exists())
                holder.communicate("\n", timeout=60)
    reader = threading.Thread(target=watch)
    reader.start()
    try:
        proc.stdout.read()
        proc.wait(timeout=600)
    finally:
        reader.join(timeout=60)
        if holder.poll() is None:
            holder.communicate("\n", timeout=60)
    err = "".join(waiting)
    assert any(line.startswith("waiting:") and f"pid {holder.pid}" in line for line in waiting), err
    assert holder.returncode == 0 and wrote_while_waiting == [False]
    assert (home / "metadata").exists(), err      # it ran after the holder released the lock
    assert proc.returncode not in (0, 1), err      # a real run that failed (no images), not refused
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outcome"]["name"] == "failed"
