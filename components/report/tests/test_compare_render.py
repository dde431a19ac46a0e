"""The comparison's Markdown table and HTML page, from a hand-made result (no pipeline run)."""
import base64
import json
import re

import pytest
from click.testing import CliRunner

from lensflow.components.report import compare
from lensflow.components.report.cli import report
from lensflow.pipeline.compare.stats import aggregate, execution_counts


def run(variant, seed, accuracy, blessed=True):
    return {"variant": variant, "seed": seed, "run_id": f"run-{variant}-{seed}",
            "accuracy": accuracy, "top_k_accuracy": 0.9, "loss": 0.5, "recall_min": 0.3,
            "recall_min_class": "shirt", "recall_max": 0.99, "recall_max_class": "bag",
            "trainer_seconds": 12.0, "trainer_cached": False, "params": 421642,
            "blessed": blessed, "failed_thresholds": [] if blessed else ["accuracy too low"],
            "executions": {"Transform": "CACHED", "Trainer": "COMPLETE"}}


@pytest.fixture
def result():
    runs = [run("baseline", 42, 0.80), run("baseline", 43, 0.84), run("filter_init", 42, 0.71, False)]
    return {
        "created_at": "2026-01-01T00:00:00+00:00",
        "settings": {"data": "/data/fm", "subset": 200, "seeds": 2, "seed_values": [42, 43],
                     "epochs": 3, "batch_size": 32, "image": {"size": 28, "color_mode": "grayscale"},
                     "variants": ["baseline", "filter_init"], "pipeline_name": "lensflow-compare-x",
                     "metadata_path": "/h/metadata.sqlite", "serving_dir": "/o/serving",
                     "held_out_source": "the data's 'test' split", "subset_warnings": []},
        "variant_info": {"baseline": {"description": "the control"},
                         "filter_init": {"description": "a trainable bank"}},
        "evaluation": {"split": "test", "split_totals": {"train": 200, "eval": 25, "test": 3000},
                       "example_count": 3000.0},
        "variants": aggregate(runs, ["baseline", "filter_init"]),
        "executions": execution_counts(runs), "runs": runs,
        "failures": [{"variant": "filter_init", "seed": 43, "error": "OSError: disk full"}],
    }


def test_markdown_states_the_settings_and_one_row_per_variant(result):
    text = compare.markdown(result)
    assert "subset of 200 training images" in text and "train 200, eval 25" in text
    assert "held-out 'test' split, 3000 images (TFMA): the data's 'test' split" in text
    assert "3 epoch(s), batch 32" in text and "2 per variant (42, 43)" in text
    assert "| `baseline` | the control | 2 | 0.8200 ± 0.0283 | 0.300 / 0.990 | 12.0 | 421,642 | 2/2 |" \
        in text
    assert "| `filter_init` | a trainable bank | 1 | 0.7100 | 0.300 / 0.990 | 12.0 | 421,642 | 0/1 |" \
        in text
    assert "`filter_init` seed 43: OSError: disk full" in text
    assert "--variants baseline,filter_init --seeds 2 --epochs 3 --batch-size 32 --subset 200" in text


def test_the_reproduce_line_carries_the_config_file_and_set_values(result):
    result["settings"].update({"config_file": "/cfg/emoji.yaml",
                               "sets": ["image.size=96", "model.widths=[16, 32]"]})
    assert compare.command(result) == (
        "lensflow compare --config /cfg/emoji.yaml --set image.size=96 "
        "--set 'model.widths=[16, 32]' --data /data/fm --variants baseline,filter_init "
        "--seeds 2 --epochs 3 --batch-size 32 --subset 200")


def test_page_is_self_contained_with_the_chart_and_every_run(result):
    page = compare.html(result)
    chart = re.search(r'id="accuracy-chart"[^>]*src="data:image/png;base64,([^"]+)"', page)
    assert chart and base64.b64decode(chart.group(1)).startswith(b"\x89PNG")
    assert not re.search(r'(src|href)="(http|//)', page)
    assert page.count("<tr><td><code>baseline</code>") == 3
    assert 'id="best-variant">baseline<' in page and "accuracy too low" in page
    assert "OSError: disk full" in page


def test_report_command_re_renders_a_comparison(result, tmp_path):
    (tmp_path / "compare.json").write_text(json.dumps(result))
    out = tmp_path / "page.html"
    done = CliRunner().invoke(report, ["--compare", str(tmp_path), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "comparison report written to" in done.output and 'id="accuracy-chart"' in out.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = CliRunner().invoke(report, ["--compare", str(empty), "--out", str(out)])
    assert missing.exit_code == 1 and "run `lensflow compare` first" in missing.output
