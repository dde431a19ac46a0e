"""Rendering without a full run: partial runs still give a page, and file names are escaped."""
import pytest

from lensflow.components.report import render


def _partial_run(rejected):
    """What ``build.collect`` returns for a run that stopped after ingestion."""
    return {
        "run_id": "2026-01-01T00:00:00", "generated_at": "2026-01-01T00:10:00+00:00",
        "summary": {}, "executions": {}, "blessed": None, "pushed_model_dir": None,
        "class_names": None,
        "errors": {"model": "the run produced no model artifact"},
        "data": {"splits": ["eval", "train"], "split_totals": [1, 3], "found": 5, "ingested": 4,
                 "rows": [{"name": "cat", "counts": [1, 2], "total": 3},
                          {"name": "dog", "counts": [0, 1], "total": 1}],
                 "rejected": rejected, "ignored": [], "warnings": []},
    }


def test_a_run_without_model_still_renders_what_it_has():
    html = render.render(_partial_run([{"path": "cat/broken.png", "reason": "cannot decode"}]))
    assert 'id="verdict" class="neutral">no verdict' in html
    assert '<strong id="overall-accuracy">not evaluated</strong>' in html
    assert "the run produced no model artifact" in html
    assert "<code>cat/broken.png</code></td><td>cannot decode</td>" in html
    assert 'id="thresholds-table"' not in html


def test_file_names_and_reasons_are_escaped():
    hostile = '<img src=x onerror="alert(1)">.png'
    html = render.render(_partial_run([{"path": hostile, "reason": "<b>bad</b>"}]))
    assert hostile not in html
    assert "&lt;img src=x onerror=" in html and "&lt;b&gt;bad&lt;/b&gt;" in html


def test_write_report_refuses_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="must be a file path"):
        render.write_report(str(tmp_path / "metadata.sqlite"), None, str(tmp_path))


def test_a_refused_serving_check_says_why_the_model_was_not_pushed():
    run = {**_partial_run([]), "blessed": True, "serving_check": {
        "passed": False, "server": "lensflow serve (TF Serving stand-in)",
        "reason": "could not load the candidate: warmup request 0 failed <here>"}}
    html = render.render(run)
    assert 'id="serving-check" class="fail">FAILED' in html
    assert "warmup request 0 failed &lt;here&gt;" in html
    assert "not pushed" in html


def test_duplicate_groups_and_label_conflicts_are_listed():
    """The ingestion report's duplicates section, as ``duplicates.summary`` writes it."""
    from lensflow.components.image_example_gen import duplicates

    def entry(path, label, split, dropped=None):
        return {"path": path, "label": label, "source_split": None, "split": split,
                "hash_distance": 2, "similarity": 0.9981, "dropped": dropped,
                "dropped_for": "label_conflict" if dropped else None}

    groups = [{"group": "dup-aaaa", "labels": {"bag": 1, "coat": 1}, "label_conflict": True,
               "straddles_splits": False,
               "members": [entry("bag/1.png", "bag", None, "label conflict <both>"),
                           entry("coat/1.jpg", "coat", None, "label conflict <both>")]},
              {"group": "dup-bbbb", "labels": {"bag": 2}, "label_conflict": False,
               "straddles_splits": False,
               "members": [entry("bag/2.png", "bag", "train"), entry("bag/2.jpg", "bag", "train")]}]
    run = _partial_run([])
    run["data"]["duplicates"] = duplicates.summary(groups, duplicates.Settings())
    html = render.render(run)
    assert "Duplicates (2 groups, 1 label conflicts)" in html
    assert html.count("<code>bag/2.jpg</code>") == 1 and "label conflict &lt;both&gt;" in html
    assert "2 files dropped" in html
    from lensflow.components.report import markdown

    assert "duplicate groups 2, label conflicts 1, copies dropped 2" in markdown.summary(run)


def _drift_verdict(policy):
    """A real drift verdict: TFDV's comparison of generated statistics whose labels moved."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from lensflow.components.data_validation import drift
    from lensflow.pipeline.config import DriftConfig

    def stats(labels):
        n = len(labels)
        return tfdv.generate_statistics_from_dataframe(pd.DataFrame({
            "label": labels, "size_bucket": ["<=32px"] * n, "brightness_bucket": ["dark"] * n,
            "width": [28] * n, "height": [28] * n, "channels": [1] * n}))

    anomalies = drift.compare(stats(["cat"] * 80 + ["dog"] * 20), stats(["cat", "dog"] * 50),
                              DriftConfig(policy=policy))
    return drift.verdict(drift.measurements(anomalies), "1700000000", policy)


@pytest.mark.parametrize("policy, says", [("gate", "the run stops"),
                                          ("report-only", "reported only")])
def test_the_drift_verdict_is_in_the_report_and_the_markdown(policy, says):
    from lensflow.components.report import markdown

    verdict = _drift_verdict(policy)
    html = render.render({**_partial_run([]), "drift": verdict})
    assert 'id="drift-verdict" class="fail">1 of 6 compared features drifted' in html
    assert says in html and "serving version 1700000000" in html
    assert html.count("<b class=\"fail\">yes</b>") == 1
    assert "<td>label</td><td>L-infinity distance</td><td class=\"num\">0.3000</td>" in html
    text = markdown.summary({**_partial_run([]), "drift": verdict})
    assert "## Drift against the serving model's data" in text
    assert "feature 'label' drifted from the data serving version 1700000000" in text
