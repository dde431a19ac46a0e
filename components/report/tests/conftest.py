"""Shared fixtures: the report of the session's end-to-end run, built once, and Chromium."""
import os
import subprocess
from dataclasses import dataclass
from typing import List

import pytest

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def report_data(e2e):
    """``build.collect`` on the real pipeline run."""
    from lensflow.components.report import build

    return build.collect(e2e.config.metadata_path)


@pytest.fixture(scope="session")
def report_file(e2e, tmp_path_factory) -> str:
    """The report of the real run, written by ``lensflow report`` (the click command)."""
    from click.testing import CliRunner

    from lensflow.components.report.cli import report

    path = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(report, ["--home", e2e.home, "--out", str(path)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"report written to {path}" in result.output
    return str(path)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's headless-capable Chromium; installed by set-up (``scripts/system_deps.sh``),
    never by a test."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium missing ({CHROMIUM}), browser test not run: install Debian's "
                    "'chromium' (make test does as root)")
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
