"""The report's data, assembled from the real end-to-end run, cross-checked against the
artifacts themselves (TFMA's stored metrics, the ingestion report, class_names.json)."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from lensflow.components.report import thresholds


@pytest.fixture(scope="module")
def ev(report_data):
    return report_data["evaluation"]


@pytest.fixture(scope="module")
def names(e2e):
    path = os.path.join(e2e.summary["model_uri"], "Format-Serving", "assets.extra",
                        "class_names.json")
    with open(path) as fh:
        return json.load(fh)


def test_every_section_was_built(report_data):
    assert report_data["errors"] == {}
    for section in ("data", "evaluation", "training", "predictions", "interpretation"):
        assert report_data[section], section


def test_data_counts_per_split_and_class_reconcile(report_data, e2e):
    data, summary = report_data["data"], e2e.summary
    assert data["splits"] == list(summary["splits"])
    assert data["split_totals"] == [summary["splits"][s]["total"] for s in data["splits"]]
    assert sum(row["total"] for row in data["rows"]) == summary["ingested"]
    for row in data["rows"]:
        for split, count in zip(data["splits"], row["counts"]):
            assert count == summary["splits"][split]["per_class"].get(row["name"], 0)
    assert data["found"] == data["ingested"] + len(data["rejected"]) + len(data["ignored"])


def test_class_names_come_from_the_model(report_data, names):
    assert report_data["class_names"] == names
    assert [row["name"] for row in report_data["evaluation"]["per_class"]] == names


def test_confusion_rows_match_tfma_label_slices(ev, names, e2e):
    """Row i of the matrix must be the examples whose label is class i's name: the label
    slices count them independently of the class-id mapping."""
    counts = ev["confusion"]
    by_slice = e2e.summary["metrics_by_slice"]
    assert counts.shape == (len(names), len(names))
    assert counts.sum() == ev["example_count"]
    for i, name in enumerate(names):
        label_slice = by_slice.get(f"label={name}")
        if label_slice is None:
            assert counts[i].sum() == 0
            continue
        assert counts[i].sum() == label_slice["example_count"]
        assert counts[i, i] / counts[i].sum() == pytest.approx(
            label_slice["sparse_categorical_accuracy"], abs=1e-6)
    assert np.trace(counts) / counts.sum() == pytest.approx(ev["accuracy"], abs=1e-6)


def test_per_class_recall_is_the_accuracy_of_the_label_slice(ev, e2e, names):
    slices = e2e.summary["metrics_by_slice"]
    for row in ev["per_class"]:
        label_slice = slices.get(f"label={row['name']}")
        if label_slice is None:
            assert row["support"] == 0 and row["recall"] is None
            continue
        assert row["support"] == label_slice["example_count"]
        assert row["recall"] == pytest.approx(label_slice["sparse_categorical_accuracy"], abs=1e-6)
        if row["precision"] and row["recall"]:
            assert row["f1_score"] == pytest.approx(
                2 * row["precision"] * row["recall"] / (row["precision"] + row["recall"]))


def test_calibration_buckets_hold_each_example_once_by_its_top1_confidence(ev, names):
    """One entry per example; the right ones add up to TFMA's accuracy; a top-1 probability
    is never below 1 / classes."""
    calibration = ev["calibration"]
    buckets = calibration["top1"]
    assert sum(b["count"] for b in buckets) == pytest.approx(ev["example_count"])
    assert all(1 / len(names) - 1e-6 <= b["mean_prediction"] <= 1 and 0 <= b["observed"] <= 1
               for b in buckets)
    right = sum(b["observed"] * b["count"] for b in buckets)
    assert right / ev["example_count"] == pytest.approx(ev["accuracy"], abs=1e-6)
    assert 0 <= calibration["ece"] <= 1


def test_threshold_outcomes_agree_with_the_blessing(ev, e2e):
    uri = e2e.summary["evaluation_uri"]
    overall_accuracy = [t for t in ev["thresholds"]
                        if t["metric"] == "sparse_categorical_accuracy" and t["slice"] == "overall"
                        and t["kind"] == "value"]
    assert len(overall_accuracy) == 1
    outcome = overall_accuracy[0]
    bound = e2e.config.evaluation.min_accuracy
    assert outcome["value"] == ev["accuracy"]
    assert outcome["margin"] == pytest.approx(ev["accuracy"] - bound)
    assert outcome["passed"] == (ev["accuracy"] >= bound)
    failed = {(t["metric"], t["slice"]) for t in ev["thresholds"] if not t["passed"]}
    assert failed == thresholds.validation_failures(uri)
    assert ev["all_thresholds_passed"] == e2e.summary["blessed"]


def test_no_baseline_in_a_first_run(ev):
    assert ev["comparison"] == []


def test_predictions_reproduce_tfma_accuracy(report_data, ev, e2e):
    pred = report_data["predictions"]
    split = report_data["evaluation_split"]
    assert split in e2e.summary["splits"]
    assert pred["split"] == split
    if pred["scanned"] == e2e.summary["splits"][split]["total"]:
        assert pred["accuracy"] == pytest.approx(ev["accuracy"], abs=1e-6)


def test_confidently_wrong_are_wrong_and_most_confident_first(report_data):
    wrong = report_data["predictions"]["wrong"]
    assert wrong, "a 2-epoch model makes mistakes on the test split"
    confidences = [w["confidence"] for w in wrong]
    assert confidences == sorted(confidences, reverse=True)
    for item in wrong:
        assert item["predicted"] != item["label"]
        assert item["label_probability"] < item["confidence"]
        with Image.open(io.BytesIO(item["thumbnail"])) as thumb:
            assert thumb.format == "PNG" and max(thumb.size) <= 112


def test_training_history_and_tensorboard_logs(report_data, e2e):
    training = report_data["training"]
    history = training["history"]
    assert len(history["loss"]) == len(history["val_accuracy"]) == e2e.config.train.epochs
    assert training["logdir"] == e2e.summary["model_run_uri"]
    assert training["tensorboard_command"] == f"tensorboard --logdir {training['logdir']}"
    assert tf.io.gfile.glob(os.path.join(training["logdir"], "*", "events.out.tfevents.*"))


def test_interpretation_maps_cover_the_model_input(report_data):
    interp = report_data["interpretation"]
    assert interp["filter_bank"] is None  # baseline_cnn has no handcrafted bank
    assert any(s["label"] != s["predicted"] for s in interp["samples"])
    assert any(s["label"] == s["predicted"] for s in interp["samples"])
    for sample in interp["samples"]:
        height, width = sample["image"].shape[:2]
        for key in ("saliency", "grad_cam"):
            assert sample[key].shape == (height, width)
            assert sample[key].min() >= 0
            # normalised to a peak of 1, or all zero where the gradient vanished (a saturated
            # softmax: p = 1.0 in float32 has no gradient)
            assert sample[key].max() in (pytest.approx(1.0), 0.0)
    for key in ("saliency", "grad_cam"):
        assert any(s[key].max() == pytest.approx(1.0) for s in interp["samples"]), key
