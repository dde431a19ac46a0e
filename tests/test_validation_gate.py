"""Gating: a worse model after a good one is refused, ``lensflow run`` exits ``not_blessed``,
and the summary says which threshold failed."""
import json
import os

import pytest
from click.testing import CliRunner

from lensflow.pipeline import outcome


def listing(path):
    return sorted((root, tuple(sorted(files))) for root, _, files in os.walk(path))


@pytest.mark.slow
def test_a_worse_model_is_not_pushed_and_the_reason_is_reported(e2e, tmp_path):
    from lensflow.pipeline.cli import main

    serving_before = listing(e2e.config.serving_dir)
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(main, [
        "run", "--home", e2e.home, "--batch-size", str(e2e.config.train.batch_size),
        "--learning-rate", "1e-7", "--epochs", "1", "--set", "train.steps_per_epoch=2",
        "--min-accuracy", "0.0", "--summary-json", str(out)])
    assert result.exit_code == outcome.NOT_BLESSED.code, (result.output[-3000:], result.exception)
    summary = json.loads(out.read_text())
    assert summary["executions"]["Trainer"] == "COMPLETE"
    assert summary["blessed"] is False
    assert summary["pushed_model_dir"] is None
    assert listing(e2e.config.serving_dir) == serving_before
    failures = summary["failed_thresholds"]
    assert failures and any("against the serving model" in f for f in failures), failures
    assert any(k.startswith("baseline/") for k in summary["metrics"]), "baseline not evaluated"
    assert summary["outcome"] == {"name": "not_blessed", "exit_code": outcome.NOT_BLESSED.code,
                                  "reasons": failures}
    assert "outcome: not_blessed (exit code 4)" in result.output
