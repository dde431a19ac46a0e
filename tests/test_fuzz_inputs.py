"""The fuzz benchmark on a small fixed-seed run: real mutants through ingestion and the served
decode graph, each path in child processes. No input may crash or raise an unexpected error, and
every input must end as exactly one outcome on both paths."""
import json
import subprocess
import sys

import pytest

from lensflow.pipeline.config import REPO_ROOT


@pytest.mark.slow  # the fuzz benchmark's child processes
def test_fuzz_run_has_no_crash_and_reconciles(tmp_path):
    out = tmp_path / "fuzz"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "fuzz_inputs.py"),
                           "--count", "50", "--seed", "5", "--batch", "25", "--out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    report = json.loads((out / "fuzz.json").read_text())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert report["findings"] == []
    for path in ("ingestion", "serving"):
        counts = report[path]
        assert counts["tried"] == 50 and counts["reconciled"], counts
        assert counts["crashed"] == counts["hung"] == counts["error"] == 0, counts
        assert counts["accepted"] + counts["rejected"] == 50, counts
        assert counts["accepted"] > 0 and counts["rejected"] > 0, counts
        assert sum(counts["rejected_by_reason"].values()) == counts["rejected"]
    assert report["ops"]["zero_length"] == 1
    lines = (out / "serving.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == list(range(50))
