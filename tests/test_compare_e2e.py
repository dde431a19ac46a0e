"""``lensflow compare`` end to end on a 200-image subset of the bundled sample: two variants x two
seeds through the real pipeline, metrics read from TFMA, ingestion and Transform shared."""
import base64
import json
import os
import re

import pytest
from click.testing import CliRunner

from lensflow.pipeline import summary as run_summary
from lensflow.pipeline.config import SAMPLE_DATA

SHARED = ("ImageExampleGen", "StatisticsGen", "Transform")
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    from lensflow.pipeline.cli import main

    home = tmp_path_factory.mktemp("compare_home")
    out = home / "out"
    result = CliRunner().invoke(main, [
        "compare", "--home", str(home), "--data", str(SAMPLE_DATA), "--variants",
        "baseline,filter_fixed", "--seeds", "2", "--subset", "200", "--epochs", "1",
        "--batch-size", "32", "--out", str(out)])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    with open(out / "compare.json", encoding="utf-8") as fh:
        return {"home": home, "out": out, "result": json.load(fh), "output": result.output}


def test_table_has_both_variants_with_two_seeds_and_tfma_accuracies(compared):
    result = compared["result"]
    assert not result["failures"]
    rows = {row["variant"]: row for row in result["variants"]}
    assert list(rows) == ["baseline", "filter_fixed"]
    assert all(row["n"] == 2 and row["seeds"] == [42, 43] for row in rows.values())
    metadata = result["settings"]["metadata_path"]
    for run in result["runs"]:
        summary = run_summary.summarise(metadata, run["run_id"])
        assert run["accuracy"] == summary["metrics"]["accuracy"]
        assert summary["evaluation_split"] == run["evaluation_split"] == "test"
        assert run["recall_min"] <= run["accuracy"] <= run["recall_max"]
        assert run["params"] > 0 and run["trainer_seconds"] > 0
    for name, row in rows.items():
        accuracies = [r["accuracy"] for r in result["runs"] if r["variant"] == name]
        assert row["accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert rows["baseline"]["params"] != rows["filter_fixed"]["params"]


def test_ingestion_and_transform_executed_once_across_the_four_runs(compared):
    result = compared["result"]
    store = run_summary.open_store(result["settings"]["metadata_path"])
    runs = [run_summary.run_artifacts(store, r["run_id"])["executions"] for r in result["runs"]]
    assert len(runs) == 4 and len({r["run_id"] for r in result["runs"]}) == 4
    for component in SHARED:
        states = [run[component] for run in runs]
        assert states.count("COMPLETE") == 1 and states.count("CACHED") == 3, (component, states)
    assert [run["Trainer"] for run in runs] == ["COMPLETE"] * 4
    assert {c: result["executions"][c] for c in SHARED} == \
        {c: {"COMPLETE": 1, "CACHED": 3} for c in SHARED}


def test_subset_trains_on_200_images_and_evaluates_on_the_whole_held_out_split(compared):
    result = compared["result"]
    evaluation = result["evaluation"]
    assert evaluation["split_totals"]["train"] == 200
    assert evaluation["example_count"] == evaluation["split_totals"]["test"] > 100
    markdown = (compared["out"] / "compare.md").read_text()
    assert "subset of 200 training images" in markdown and "held-out 'test' split" in markdown
    assert "1 epoch(s)" in markdown and "2 per variant (42, 43)" in markdown
    assert re.search(r"\| `baseline` \|.*\| 2 \| 0\.\d{4} ± 0\.\d{4} \|", markdown)


def test_pushes_stay_in_the_comparison_and_the_page_has_the_chart(compared, tmp_path):
    from lensflow.pipeline.cli import main

    result, out = compared["result"], compared["out"]
    assert not os.path.exists(compared["home"] / "serving")
    for run in result["runs"]:
        if run["pushed_model_dir"]:
            assert run["pushed_model_dir"].startswith(str(out / "serving"))
    page = (out / "compare.html").read_text()
    chart = re.search(r'id="accuracy-chart"[^>]*src="data:image/png;base64,([^"]+)"', page)
    assert chart and base64.b64decode(chart.group(1)).startswith(b"\x89PNG")
    assert "<code>filter_fixed</code>" in page
    again = CliRunner().invoke(main, ["report", "--compare", str(out), "--out",
                                      str(tmp_path / "again.html")])
    assert again.exit_code == 0, again.output
    assert 'id="accuracy-chart"' in (tmp_path / "again.html").read_text()
