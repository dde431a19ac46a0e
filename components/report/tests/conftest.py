"""Shared fixtures: the report of the session's end-to-end run, built once, and Chromium."""
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import List

import pytest

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def report_data(e2e):
    """``build.collect`` on the real pipeline run."""
    from components.report import build

    return build.collect(e2e.config.metadata_path)


@pytest.fixture(scope="session")
def report_file(e2e, tmp_path_factory) -> str:
    """The report of the real run, written by ``lensflow report`` (the click command)."""
    from click.testing import CliRunner

    from components.report.cli import report

    path = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(report, ["--home", e2e.home, "--out", str(path)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"report written to {path}" in result.output
    return str(path)


def _install_chromium() -> str:
    """apt-get install Debian's chromium; returns why it failed ('' on success)."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", "chromium"],
            capture_output=True, text=True, timeout=900, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"apt-get install chromium failed: {err}"
    if done.returncode != 0:
        return f"apt-get install chromium exited {done.returncode}: {done.stderr.strip()[-500:]}"
    return ""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium, installed with apt-get once if missing."""
    if not os.path.exists(CHROMIUM):
        reason = _install_chromium()
        if reason or not os.path.exists(CHROMIUM):
            pytest.skip(f"Chromium unavailable, browser test not run: {reason or 'not installed'}")
    return CHROMIUM



HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--enable-logging=stderr", "--v=0")


@dataclass
class BrowserRun:
    """One headless Chromium invocation: what it printed and the page's console lines."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def console(self) -> List[str]:
        """Console lines of the page; uncaught JavaScript errors show as 'Uncaught ...'."""
        return [line for line in self.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="session")
def headless(chromium, tmp_path_factory):
    """``run(path, *flags) -> BrowserRun``: open a local file in headless Chromium
    (a fresh profile each time)."""

    def run(path: str, *flags: str) -> BrowserRun:
        profile = tmp_path_factory.mktemp("chromium-profile")
        command = [chromium, *HEADLESS_FLAGS, f"--user-data-dir={profile}", *flags,
                   f"file://{os.path.abspath(path)}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        return BrowserRun(done.returncode, done.stdout, done.stderr)

    return run
