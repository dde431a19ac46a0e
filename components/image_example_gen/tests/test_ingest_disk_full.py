"""Ingestion that runs out of room (a file-size limit in a child process) fails with one clear
error naming the cause and the output folder, leaves no partial examples and records no counts."""
import os

import pytest

from lensflow.components.image_example_gen.tests.badfiles import make_bad_tree
from tests.disk_limit import run_limited

LIMIT = 16 * 1024    # bytes per file: the train split's examples do not fit

INGEST = """
from lensflow.components.image_example_gen.executor import IngestionWriteError
from lensflow.components.image_example_gen.tests.test_executor import run_executor
try:
    run_executor(sys.argv[1], sys.argv[2])
except IngestionWriteError as err:
    print("ERROR", err, file=sys.stderr)
    sys.exit(9)
print("ingested")
"""


@pytest.mark.slow  # ingestion pipelines in child processes
def test_ingestion_that_hits_the_limit_fails_clearly_and_leaves_nothing(tmp_path):
    make_bad_tree(tmp_path / "data", good_per_class=40)
    out = tmp_path / "out"
    out.mkdir()
    result = run_limited(INGEST, LIMIT, argv=(tmp_path / "data", out))
    assert result.returncode == 9, result.stderr[-3000:]
    line = next(l for l in result.stderr.splitlines() if l.startswith("ERROR "))
    assert "file too large" in line and str(out) in line, line
    assert os.listdir(out) == []        # no partial split files, no report, no counts


@pytest.mark.slow  # ingestion pipelines in child processes
def test_the_same_ingestion_within_the_limit_succeeds(tmp_path):
    """The limit, not the data, is what failed above."""
    make_bad_tree(tmp_path / "data", good_per_class=40)
    out = tmp_path / "out"
    out.mkdir()
    result = run_limited(INGEST, 64 * 1024 * 1024, argv=(tmp_path / "data", out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ingestion_report.json" in os.listdir(out)
