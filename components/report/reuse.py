"""The report's costly sections, kept beside a report so the same artifacts are not worked again.

Predictions (a pass of the served model over evaluation images), interpretability (gradients)
and the charts (Matplotlib) depend only on a run's artifacts, which never change once written,
and the report's options. RunReport keeps them next to its HTML; when a run re-uses RunReport
from the cache (an unchanged re-run), ``lensflow run`` writes the new run's report with them
instead of computing them again. They are used only when the key — the artifacts' URIs, the
options and lensflow's version — is the same; anything else (the run id, its outcome, what is
serving now) is read afresh.
"""
from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any, Dict, Optional

import tensorflow as tf

from lensflow import installed_version

FILE = "report_sections.json"
FORMAT = 1
SECTIONS = ("predictions", "interpretation")
_SOURCES = ("model_uri", "examples_uri", "evaluation_uri", "model_run_uri")

log = logging.getLogger(__name__)


def key(summary: Dict[str, Any], split: Optional[str], **options) -> Dict[str, Any]:
    """What the sections are computed from: the run's artifacts, the evaluated split and the
    report's options (image budget, counts)."""
    return {"format": FORMAT, "lensflow": installed_version(), "split": split,
            **{name: summary.get(name) for name in _SOURCES}, **options}


def path_beside(report_uri: str) -> str:
    """Where the sections of the report at ``report_uri`` are kept."""
    return os.path.join(os.path.dirname(report_uri), FILE)


def _view(data: Dict[str, Any]) -> Dict[str, Any]:
    """The sections as the template reads them, arrays dropped (the charts hold them drawn)."""
    out: Dict[str, Any] = {}
    preds = data.get("predictions")
    if preds is not None:
        out["predictions"] = {**preds, "wrong": [
            {**w, "thumbnail": base64.b64encode(w["thumbnail"]).decode("ascii")}
            for w in preds["wrong"]]}
    interp = data.get("interpretation")
    if interp is not None:
        bank = interp.get("filter_bank")
        out["interpretation"] = {
            "model_name": interp["model_name"], "cam_layer": interp["cam_layer"],
            "sample_count": len(interp["samples"]),
            "filter_bank": {"bank": bank["bank"], "mode": bank["mode"]} if bank else None}
    return out


def save(path: str, data: Dict[str, Any]) -> None:
    """Keep ``data``'s costly sections and charts (``render`` drew them) under its key."""
    record = {"key": data["sections_key"], **_view(data), "charts": data["charts"],
              "errors": {name: data["errors"][name] for name in SECTIONS
                         if name in data["errors"]}}
    with tf.io.gfile.GFile(path, "w") as fh:
        fh.write(json.dumps(record, sort_keys=True))


def load(path: str) -> Optional[Dict[str, Any]]:
    """The sections kept at ``path`` (thumbnails back to PNG bytes), or None when there are
    none or they cannot be read (the report then computes them)."""
    try:
        with tf.io.gfile.GFile(path, "r") as fh:
            record = json.loads(fh.read())
        for w in (record.get("predictions") or {}).get("wrong", []):
            w["thumbnail"] = base64.b64decode(w["thumbnail"])
        return record
    except (tf.errors.NotFoundError, ValueError, KeyError, TypeError) as err:
        if not isinstance(err, tf.errors.NotFoundError):
            log.warning("report sections at %s not reused: %s", path, err)
        return None
